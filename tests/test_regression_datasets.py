"""The regression datasets of issue 25: ``synthetic-regression`` (known function), ``fashion-rotation`` (image
regressor) and a user's CSV (``csv:PATH?target=COL``, ``--target``): contents, determinism, typed errors that name the
bad column / line, and the input file left untouched."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from expunge.cli.main import app
from expunge.cli.options import with_target
from expunge.data import csv_file, fashion_rotation, synthetic_regression
from expunge.data.datasets import DATASETS, load_dataset
from expunge.errors import DatasetNotFound, ExpungeError, InvalidDataset


# ----------------------------------------------------------------------------------------------- synthetic-regression
def test_synthetic_targets_are_the_known_function_plus_the_stated_noise():
    ds = load_dataset("synthetic-regression")
    assert ds.task == "regression" and (len(ds.train), len(ds.test)) == (750, 250) and ds.input_shape == (8,)
    x, y = synthetic_regression.raw_arrays()
    assert np.allclose(ds.train.x.numpy(), x[:750], atol=1e-6)
    residual = y - synthetic_regression.true_function(x)
    assert residual.std() == pytest.approx(synthetic_regression.NOISE_STD, rel=0.06)
    assert abs(residual.mean()) < 0.1
    t = ds.train.y.numpy().astype(np.float64)
    assert t.mean() == pytest.approx(0.0, abs=1e-6) and t.std() == pytest.approx(1.0, abs=1e-5)  # standardized
    # the standardized targets are an affine map of f(x) + noise
    assert np.corrcoef(t, y[:750])[0, 1] == pytest.approx(1.0, abs=1e-6)


def test_synthetic_set_is_the_same_on_every_load():
    a = synthetic_regression.load_synthetic_regression()
    b = synthetic_regression.load_synthetic_regression()
    assert a.fingerprint == b.fingerprint and np.array_equal(a.train.owners, b.train.owners)


def test_new_datasets_are_registered():
    assert {"synthetic-regression", "fashion-rotation", "csv:"} <= set(DATASETS.names())


# --------------------------------------------------------------------------------------------------- fashion-rotation
def test_rotating_by_zero_changes_nothing_and_by_ninety_is_a_transpose():
    img = np.random.default_rng(0).random((1, 28, 28)).astype(np.float32)
    assert np.allclose(fashion_rotation.rotate_images(img, np.array([0.0])), img, atol=1e-6)
    assert np.allclose(fashion_rotation.rotate_images(img, np.array([90.0]))[0], np.rot90(img[0]), atol=1e-5)


@pytest.mark.skipif(not Path(fashion_rotation.FASHION_DEFAULT_DIR).is_dir() and not os.environ.get("EXPUNGE_DATA"),
                    reason="Fashion-MNIST files not installed")
def test_fashion_rotation_targets_are_standardized_angles_of_real_images():
    ds = load_dataset("fashion-rotation")
    assert ds.task == "regression" and ds.input_shape == (1, 28, 28)
    assert (len(ds.train), len(ds.test)) == (fashion_rotation.N_TRAIN, fashion_rotation.N_TEST)
    t = ds.train.y.numpy().astype(np.float64)
    assert t.mean() == pytest.approx(0.0, abs=1e-5) and t.std() == pytest.approx(1.0, abs=1e-4)
    # uniform on ±45° standardized: the range is ±45/std(θ) = ±√3 (a uniform's max / std)
    assert np.abs(t).max() <= np.sqrt(3) + 0.05
    assert ds.train.ids.max() < 60000 <= ds.test.ids.min()  # the source images' fashion-mnist ids


# ------------------------------------------------------------------------------------------------------- user's CSV
def write_csv(path: Path, rows: int = 40, *, extra: str = "") -> Path:
    rng = np.random.default_rng(1)
    lines = ["id,a,b,price"]
    for i in range(rows):
        a, b = rng.normal(size=2)
        lines.append(f"{i},{a:.5f},{b:.5f},{3 * a - b + 0.1 * rng.normal():.5f}")
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def digest(path: Path) -> tuple[str, float]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime


def test_csv_loads_standardized_and_leaves_the_file_untouched(tmp_path: Path):
    path = write_csv(tmp_path / "houses.csv")
    before = digest(path)
    ds = load_dataset(f"csv:{path}?target=price&drop=id")
    assert digest(path) == before
    assert ds.task == "regression" and ds.input_shape == (2,) and len(ds.train) + len(ds.test) == 40
    assert len(ds.test) == 10 and set(ds.train.ids) | set(ds.test.ids) == set(range(40))
    t = ds.train.y.numpy().astype(np.float64)
    assert t.mean() == pytest.approx(0.0, abs=1e-5) and t.std() == pytest.approx(1.0, abs=1e-4)
    same = csv_file.load_csv(spec=f"{path}?target=price&drop=id")
    assert same.fingerprint == ds.fingerprint
    other = csv_file.load_csv(spec=f"{path}?target=a&drop=id")  # another target, another dataset
    assert other.fingerprint != ds.fingerprint


@pytest.mark.parametrize(("extra", "spec", "match"), [
    ("", "?drop=id", r"no target column named.*columns: id, a, b, price"),
    ("", "?target=cost", r"no column 'cost'.*pick one of id, a, b, price"),
    ("", "?target=price&drop=zip", r"no column 'zip'"),
    ("", "?target=price&drop=price", "also dropped"),
    ("", "?target=price&colour=red", "unknown option 'colour'"),
    ("", "?target=price&test=1.5", r"test='1.5' is not a share"),
    ("40,0.1,oops,1.0\n", "?target=price", r"column 'b', line 42 holds 'oops', not a finite number"),
    ("40,0.1,,1.0\n", "?target=price", r"column 'b', line 42 is empty"),
    ("40,0.1,0.2,nan\n", "?target=price", r"column 'price', line 42 holds 'nan'"),
    ("40,0.1,0.2\n", "?target=price", r"line 42 has 3 cells but the header has 4"),
])
def test_bad_csv_input_is_refused_naming_what_is_wrong(tmp_path: Path, extra: str, spec: str, match: str):
    path = write_csv(tmp_path / "d.csv", extra=extra)
    before = digest(path)
    with pytest.raises(InvalidDataset, match=match):
        csv_file.load_csv(spec=f"{path}{spec}")
    assert digest(path) == before


def test_bad_csv_files(tmp_path: Path):
    with pytest.raises(DatasetNotFound, match="not found"):
        csv_file.load_csv(spec=f"{tmp_path / 'missing.csv'}?target=y")
    dup = tmp_path / "dup.csv"
    dup.write_text("a,a,y\n" + "1,2,3\n" * 10)
    with pytest.raises(InvalidDataset, match=r"duplicate column name.*'a'"):
        csv_file.load_csv(spec=f"{dup}?target=y")
    few = tmp_path / "few.csv"
    few.write_text("a,y\n1,2\n3,4\n")
    with pytest.raises(InvalidDataset, match=r"2 data row.*at least 8"):
        csv_file.load_csv(spec=f"{few}?target=y")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("caf\xe9,y\n".encode("latin-1") + b"1,2\n" * 10)
    with pytest.raises(InvalidDataset, match="not UTF-8"):
        csv_file.load_csv(spec=f"{latin}?target=y")
    only = tmp_path / "only.csv"
    only.write_text("y\n" + "1\n" * 10)
    with pytest.raises(InvalidDataset, match="no feature column"):
        csv_file.load_csv(spec=f"{only}?target=y")


def test_target_option_folds_into_the_name():
    assert with_target("csv:d.csv", "price") == "csv:d.csv?target=price"
    assert with_target("csv:d.csv?drop=id", "sale price") == "csv:d.csv?drop=id&target=sale%20price"
    assert with_target("diabetes", None) == "diabetes"
    with pytest.raises(ExpungeError, match="--target names the column"):
        with_target("diabetes", "y")


def test_cli_refuses_a_bad_target_before_training(tmp_path: Path):
    path = write_csv(tmp_path / "d.csv")
    runner = CliRunner()
    env = {"EXPUNGE_CACHE": str(tmp_path / "cache")}
    res = runner.invoke(app, ["unlearn", "--data", f"csv:{path}", "--target", "cost", "--model", "mlp",
                              "--forget", "random:0.1", "--method", "finetune"], env=env)
    assert isinstance(res.exception, InvalidDataset) and "no column 'cost'" in str(res.exception)  # main(): exit 2
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


def test_cli_unlearns_a_csv_and_the_record_names_the_dataset_fully(tmp_path: Path):
    import json

    path = write_csv(tmp_path / "d.csv", rows=60)
    before = digest(path)
    res = CliRunner().invoke(app, ["unlearn", "--data", f"csv:{path}?drop=id", "--target", "price", "--model", "mlp",
                                   "--forget", "random:0.1", "--method", "blindspot_regression",
                                   "--param", "epochs=2", "--store", str(tmp_path / "store"), "--json"])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    rec = json.loads(res.stdout)
    assert rec["dataset"] == f"csv:{path}?drop=id&target=price" and rec["task"] == "regression"
    assert rec["metrics"]["forget_mse"] is not None and rec["request"]["n_forget"] == 4
    assert digest(path) == before


def test_a_harness_config_accepts_a_csv_dataset(tmp_path: Path):
    from expunge.harness.config import load_config
    from expunge.harness.grid import expand

    path = write_csv(tmp_path / "d.csv")
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(f"name: mine\ndatasets: ['csv:{path}?target=price&drop=id']\nmodels: [mlp]\n"
                   "requests: [{forget: 'random:0.1'}]\nmethods: [blindspot_regression]\nseeds: [0]\n")
    cells = expand(load_config(cfg))
    assert [c.dataset for c in cells] == [f"csv:{path}?target=price&drop=id"]
