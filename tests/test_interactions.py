"""Interaction datasets: the MovieLens-format reader (u.data, ratings.csv, ratings.dat, RecBole .inter), its typed
errors naming the line and the fix, the input file left untouched, the per-user split and the synthetic default."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from expunge.data.datasets import load_dataset
from expunge.data.interactions import find_interaction_file, load_movielens, read_interactions
from expunge.errors import DatasetNotFound, InvalidInteractionFile

U_DATA = "".join(f"{u}\t{i}\t{(u + i) % 5 + 1}\t88125{u}{i}\n" for u in range(1, 9) for i in range(10, 10 + u + 2))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("name", "text"), [
    ("u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n"),
    ("ratings.csv", "userId,movieId,rating,timestamp\n196,242,3.5,881250949\n186,302,3,891717742\n"),
    ("ratings.dat", "196::242::3::881250949\n186::302::3::891717742\n"),
    ("ml.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n"
                 "186\t302\t3\t891717742\n"),
])
def test_reads_every_movielens_layout(tmp_path: Path, name: str, text: str) -> None:
    users, items = read_interactions(write(tmp_path, name, text))
    assert users.tolist() == ["196", "186"] and items.tolist() == ["242", "302"]


@pytest.mark.parametrize(("text", "line", "what"), [
    ("1\t10\t3\t5\n2\tx\t4\t6\n", 2, "not both integers"),
    ("1\t10\t3\t5\n2\n", 2, "field"),
    ("userId,movieId,rating\n1,10,3\n2,11,good\n", 3, "not a number"),
])
def test_bad_rows_name_the_line_and_the_fix_and_the_file_is_untouched(tmp_path: Path, text: str, line: int,
                                                                      what: str) -> None:
    path = write(tmp_path, "u.data", text)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(InvalidInteractionFile, match=f"line {line}.*{what}.*Fix:"):
        read_interactions(path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_movielens_dataset_from_a_folder(tmp_path: Path) -> None:
    path = write(tmp_path, "u.data", U_DATA + U_DATA.splitlines(keepends=True)[0])  # one duplicate row
    before = path.read_bytes()
    ds = load_movielens(data_dir=str(tmp_path))
    assert path.read_bytes() == before
    n_rows = len(U_DATA.splitlines())
    assert len(ds.train) + len(ds.test) == n_rows  # the duplicate is dropped
    assert ds.task == "recsys" and ds.model_kwargs == {"n_users": 8} and ds.num_outputs == len(ds.class_names)
    assert np.intersect1d(ds.train.ids, ds.test.ids).size == 0
    # per user: floor(20%) held out, so users with >= 5 interactions have test rows and keep most in training
    per_user_test = np.bincount(ds.test.x[:, 0].numpy(), minlength=8)
    per_user_all = np.bincount(np.r_[ds.train.x[:, 0].numpy(), ds.test.x[:, 0].numpy()], minlength=8)
    assert (per_user_test == np.floor(0.2 * per_user_all)).all()
    assert (ds.train.owners == ds.train.x[:, 0].numpy()).all()  # owner = user
    assert ds.class_names[int(ds.train.y[0])] in {str(i) for i in range(10, 20)}  # items keep their file ids


def test_missing_file_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFound, match="--data-dir"):
        find_interaction_file(str(tmp_path))


def test_synthetic_default_is_seeded_and_has_structure() -> None:
    ds = load_dataset("recsys-synth")
    assert ds.task == "recsys" and ds.num_outputs == 400 and ds.model_kwargs["n_users"] == 300
    assert len(np.unique(ds.train.owners)) == 300
    counts = np.bincount(ds.train.owners)
    assert counts.max() > 8 * counts.min()  # heavy and light users: CURE4Rec's core and edge differ
    from expunge.data.interactions import load_recsys_synth
    assert load_recsys_synth().fingerprint == ds.fingerprint  # rebuilt from scratch: same content


def test_recbole_copy_is_found_without_importing_recbole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pip install recbole` ships MovieLens-100K as recbole/dataset_example/ml-100k/ml-100k.inter: found by location
    (importing recbole would pull in its dependencies; here importing it would raise)."""
    pkg = tmp_path / "site" / "recbole"
    (pkg / "dataset_example" / "ml-100k").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('recbole must not be imported')\n")
    inter = pkg / "dataset_example" / "ml-100k" / "ml-100k.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + U_DATA)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv("EXPUNGE_DATA", raising=False)
    assert find_interaction_file(None) == inter
    assert load_movielens().model_kwargs == {"n_users": 8}
