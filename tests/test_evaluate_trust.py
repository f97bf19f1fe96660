"""`evaluate` does not trust the store blindly: edited forget ids and path-like keys are refused with typed errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import expunge
from expunge.errors import ArtifactError, ForgetSetMismatch, InvalidArtifactKey
from expunge.evaluation import evaluate_run
from expunge.store import ArtifactStore
from expunge.store.artifacts import MANIFEST
from expunge.train.loop import TrainRecipe

TINY = TrainRecipe(epochs=2, batch_size=64, optimizer="adam", lr=2e-3)


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, expunge.RunRecord]:
    root = tmp_path_factory.mktemp("trust") / "store"
    prep = expunge.prepare("digits", "mlp", "random:0.05", store=ArtifactStore(root), recipe=TINY, progress=False)
    record, _ = expunge.unlearn(prep, "finetune", {"epochs": 1}, metrics=["forget_acc"])
    return root, record


@pytest.fixture
def run(stored_run, tmp_path: Path) -> tuple[ArtifactStore, expunge.RunRecord]:
    """A private copy of the stored run (tests edit it)."""
    root, record = stored_run
    shutil.copytree(root, tmp_path / "store")
    return ArtifactStore(tmp_path / "store"), record


def _edit(store: ArtifactStore, kind: str, key: str, change) -> None:
    path = store.path(kind, key) / MANIFEST
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _other_train_id(manifest) -> int:
    forget = set(manifest["forget_ids"])
    return next(i for i in range(10_000) if i not in forget)


def test_an_untouched_run_evaluates_as_recorded(run):
    store, record = run
    again = evaluate_run(record.unlearned_key, store=store, metrics=["forget_acc"])
    assert again.metrics["forget_acc"] == pytest.approx(record.metrics["forget_acc"], abs=1e-12)


def test_edited_forget_ids_are_refused_naming_the_key_and_the_fingerprints(run):
    store, record = run
    _edit(store, "unlearned", record.unlearned_key, lambda m: m["forget_ids"].__setitem__(0, _other_train_id(m)))
    with pytest.raises(ForgetSetMismatch, match=record.unlearned_key) as err:
        expunge.evaluate(record, store=store, metrics=["forget_acc"])  # the public API's path
    msg = str(err.value)
    assert "request.fingerprint" in msg and f"oracle {record.oracle_key}" in msg and "re-run the unlearning" in msg


def test_ids_and_fingerprint_edited_together_are_caught_by_the_oracle(run):
    """An editor who also rewrites the run's recorded fingerprint is caught by the oracle's manifest."""
    store, record = run

    def change(m):
        from expunge._io import stable_hash

        m["forget_ids"][0] = _other_train_id(m)
        m["forget_ids"].sort()
        m["request"]["fingerprint"] = stable_hash({"dataset": m["dataset_fingerprint"], "forget": m["forget_ids"]})

    _edit(store, "unlearned", record.unlearned_key, change)
    with pytest.raises(ForgetSetMismatch, match=f"its oracle {record.oracle_key}") as err:
        evaluate_run(record.unlearned_key, store=store, metrics=["forget_acc"])
    assert "request.fingerprint" not in str(err.value)  # the run's own record was made consistent


@pytest.mark.parametrize("bad", [[-5], ["x"], "dup"])
def test_invalid_stored_ids_are_a_typed_error(run, bad):
    store, record = run

    def change(m):
        m["forget_ids"] = m["forget_ids"] + [m["forget_ids"][0]] if bad == "dup" else bad

    _edit(store, "unlearned", record.unlearned_key, change)
    with pytest.raises(ForgetSetMismatch, match="not a valid request"):
        evaluate_run(record.unlearned_key, store=store, metrics=["forget_acc"])


def test_a_path_like_oracle_key_in_the_manifest_does_not_escape(run):
    """Old code loaded ``oracle/../original/KEY`` — the Original scored as the Retrain, rc 0."""
    store, record = run
    _edit(store, "unlearned", record.unlearned_key, lambda m: m.__setitem__("oracle_key",
                                                                             f"../original/{record.original_key}"))
    with pytest.raises(InvalidArtifactKey, match=r"'\.\./original/"):
        evaluate_run(record.unlearned_key, store=store, metrics=["forget_acc"])


@pytest.mark.parametrize("run_arg", ["../x", "../../etc/passwd", "unlearned/../original", "", "a/b"])
def test_path_like_run_keys_are_refused(run, run_arg):
    store, _ = run
    with pytest.raises(InvalidArtifactKey, match="neither a run key"):
        evaluate_run(run_arg, store=store)


def test_only_real_unlearned_folders_are_accepted(run, tmp_path, monkeypatch):
    store, record = run
    folder = store.path("unlearned", record.unlearned_key)
    monkeypatch.chdir(folder.parent)  # a relative path with `..` naming the real folder works
    for form in (str(folder), f"../unlearned/{record.unlearned_key}"):
        assert evaluate_run(form, store=ArtifactStore(tmp_path / "elsewhere"),
                            metrics=["forget_acc"]).unlearned_key == record.unlearned_key
    # another kind's folder, or a copy outside a store layout, is not a run folder
    for other in (store.path("original", record.original_key), store.path("oracle", record.oracle_key)):
        with pytest.raises(InvalidArtifactKey):
            evaluate_run(str(other), store=store)
    copy = tmp_path / "loose" / "run"
    shutil.copytree(folder, copy)
    with pytest.raises(InvalidArtifactKey):
        evaluate_run(str(copy), store=store)
    with pytest.raises(ArtifactError, match="no unlearned run"):
        evaluate_run("0" * 32, store=store)


def test_store_refuses_path_like_kinds_and_keys(tmp_path):
    store = ArtifactStore(tmp_path)
    for kind, key in (("unlearned", "../x"), ("../original", "k"), ("unlearned", ".hidden"), ("unlearned", "a/b"),
                      ("unlearned", ""), ("unlearned", "k\x00")):
        with pytest.raises(InvalidArtifactKey):
            store.path(kind, key)
        with pytest.raises(InvalidArtifactKey):
            store.exists(kind, key)
    assert not any(tmp_path.iterdir())  # nothing written


def test_cli_evaluate_refuses_a_path_like_key_with_one_error_line(run):
    store, _ = run
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-m", "expunge.cli.main", "evaluate", "../x", "--store", str(store.root)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
