"""Artifact store: cache hits, corruption detection, atomic writes under injected failures, pickle refusal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from expunge import _io
from expunge.errors import CorruptArtifact, UnsafeFormat
from expunge.store import ArtifactStore, import_weights
from expunge.store.artifacts import MANIFEST, TENSORS, state_hash
from expunge.train.loop import TrainRecipe
from expunge.train.oracle import model_spec_for, train_original

FAST = TrainRecipe(epochs=3, batch_size=64, optimizer="adam", lr=2e-3)


def _train(digits, store):
    return train_original(digits, model_spec_for(digits, "mlp"), FAST, seed=3, store=store, progress=False)


def test_second_identical_call_is_a_cache_hit(digits, store):
    first = _train(digits, store)
    second = _train(digits, store)
    assert not first.cache_hit and second.cache_hit
    assert state_hash(first.model) == state_hash(second.model)
    m = second.manifest
    assert m["dataset"]["fingerprint"] == digits.fingerprint and m["seed"] == 3
    assert {"torch", "python", "numpy"} <= set(m["env"]) and m["train_log"]["wall_s"] > 0
    assert m["train_log"]["peak_rss_bytes"] > 0


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_corrupted_cache_is_detected_and_retrained(digits, store, damage, caplog):
    first = _train(digits, store)
    folder = store.path("original", first.key)
    blob = (folder / TENSORS).read_bytes()
    if damage == "truncate":
        (folder / TENSORS).write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        (folder / TENSORS).write_bytes(blob[:-1] + bytes([blob[-1] ^ 0xFF]))
    elif damage == "delete":
        (folder / TENSORS).unlink()
    else:
        (folder / MANIFEST).write_text("{not json")
    with pytest.raises(CorruptArtifact):
        store.load_model_into("original", first.key, model_spec_for(digits, "mlp").build(seed=0))
    again = _train(digits, store)
    assert not again.cache_hit  # retrained, never half-loaded
    assert state_hash(again.model) == state_hash(first.model)  # deterministic retraining
    assert "corrupted" in caplog.text
    assert store.load_tensors("original", first.key)  # and the entry is healthy again


def test_atomic_write_keeps_old_file_when_replace_fails(tmp_path: Path, monkeypatch):
    target = tmp_path / "f.json"
    _io.atomic_write_json(target, {"v": 1})

    def boom(src, dst):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="injected"):
        _io.atomic_write_json(target, {"v": 2})
    assert target.read_text().strip().endswith("}") and '"v": 1' in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp file left behind


def test_atomic_write_keeps_old_file_when_write_fails(tmp_path: Path, monkeypatch):
    target = tmp_path / "w.bin"
    _io.atomic_write_bytes(target, b"old")
    real_fsync = os.fsync
    calls = {"n": 0}

    def failing_fsync(fd):
        calls["n"] += 1
        raise OSError("fsync failed (injected)")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="injected"):
        _io.atomic_write_bytes(target, b"new")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_bytes() == b"old" and calls["n"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["w.bin"]


def test_store_save_failure_leaves_previous_artifact_loadable(digits, store, monkeypatch):
    first = _train(digits, store)
    model = model_spec_for(digits, "mlp").build(seed=9)

    def boom(src, dst):
        raise OSError("crash during save (injected)")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.save_model("original", first.key, model, {"dataset": {}})
    monkeypatch.undo()
    m2 = model_spec_for(digits, "mlp").build(seed=0)
    store.load_model_into("original", first.key, m2)
    assert state_hash(m2) == state_hash(first.model)


def test_pickles_are_refused_by_default(tmp_path: Path):
    p = tmp_path / "w.pt"
    torch.save({"a": torch.ones(2)}, p)
    with pytest.raises(UnsafeFormat, match="pickle"):
        import_weights(p)
    assert torch.equal(import_weights(p, allow_pickle=True)["a"], torch.ones(2))


def test_safetensors_import(tmp_path: Path):
    from safetensors.torch import save_file

    p = tmp_path / "w.safetensors"
    save_file({"a": torch.arange(3.0)}, p)
    assert torch.equal(import_weights(p)["a"], torch.arange(3.0))


def test_store_key_is_order_independent():
    assert ArtifactStore.key({"a": 1, "b": [1, 2]}) == ArtifactStore.key({"b": [1, 2], "a": 1})
    assert ArtifactStore.key({"a": 1}) != ArtifactStore.key({"a": 2})


def test_read_manifest_without_tensors(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    saved = store.save_tensors("stats", "k1", {"a": torch.ones(3)}, {"note": "x"})
    got = store.read_manifest("stats", "k1")
    assert got == saved and got["note"] == "x" and got["env"]["torch_threads"] >= 1
    assert store.read_manifest("stats", "missing") is None
    (store.path("stats", "k1") / MANIFEST).write_text("{broken")
    assert store.read_manifest("stats", "k1") is None


def _leave_temp_file_like_a_kill(target: Path) -> Path:
    """Run atomic_write_bytes in a child that dies (os._exit, like kill -9) between writing the temp file and the
    rename: what a killed writer really leaves behind."""
    code = ("import os, sys\nfrom expunge import _io\nos.replace = lambda *a: os._exit(9)\n"
            "_io.atomic_write_bytes(sys.argv[1], b'x' * 1000)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code, str(target)], env=env, timeout=60)
    assert done.returncode == 9
    (left,) = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    return left


def test_opening_the_store_removes_stale_temp_files_and_keeps_fresh_ones(tmp_path: Path):
    root = tmp_path / "store"
    folder = root / "original" / ("a" * 32)
    stale = _leave_temp_file_like_a_kill(folder / TENSORS)
    fresh = _leave_temp_file_like_a_kill(folder / MANIFEST)  # a concurrent writer's, still being written
    old = time.time() - _io.STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    assert _io.is_temp_name(stale.name) and _io.is_temp_name(fresh.name)
    store = ArtifactStore(root)  # the first opening in this process cleans
    assert not stale.exists() and fresh.exists()
    assert not store.exists("original", "a" * 32)  # a temp file is never taken for an artifact
    assert list(store.artifacts()) == []


def test_clean_removes_folders_a_kill_left_without_manifest(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    store.save_tensors("unlearned", "b" * 32, {"w": torch.ones(2)}, {})
    (store.path("unlearned", "b" * 32) / MANIFEST).unlink()  # killed between the tensors and the manifest
    store.save_tensors("unlearned", "c" * 32, {"w": torch.ones(2)}, {})
    (store.path("unlearned", "c" * 32) / MANIFEST).unlink()  # ... or a writer still between the two
    old = time.time() - _io.STALE_TEMP_S - 60
    os.utime(store.path("unlearned", "b" * 32) / TENSORS, (old, old))
    removed = store.clean()
    assert removed == [store.path("unlearned", "b" * 32)]
    assert not store.path("unlearned", "b" * 32).exists() and store.path("unlearned", "c" * 32).exists()


def test_every_saved_manifest_is_marked_conservatively_for_unknown_kinds(tmp_path: Path):
    store = ArtifactStore(tmp_path)
    m = store.save_tensors("something_new", "k2", {"a": torch.ones(1)}, {"forget_ids": [1, 2]})
    assert m["forget_derived"] == {"trained_on_forget": True, "lists_forget_ids": True, "request": None,
                                   "parent": None}
    mine = {"trained_on_forget": False, "lists_forget_ids": False, "request": None, "parent": None}
    assert store.save_tensors("x", "k3", {}, {"forget_derived": mine})["forget_derived"] == mine  # writer's word


def test_cached_models_record_the_thread_count_that_trained_them(digits, store):
    from expunge.train.oracle import cache_info

    threads = torch.get_num_threads()
    first = _train(digits, store)
    assert first.manifest["train_threads"] == threads == first.threads
    try:
        torch.set_num_threads(threads + 1)
        again = _train(digits, store)  # the same key: thread count is recorded, not keyed
        info = cache_info(again, again)
    finally:
        torch.set_num_threads(threads)
    assert again.cache_hit and info["threads"] == {"run": threads + 1, "original": threads, "oracle": threads}
    assert info["thread_mismatch"] == ["original", "oracle"]
    assert cache_info(first, first)["thread_mismatch"] == []  # trained now: no mismatch


def test_cleaning_a_folder_that_is_not_a_store_touches_nothing(tmp_path: Path):
    """`--store .` by mistake: only store-shaped leftovers may go, never a user's files."""
    files = [tmp_path / "proj" / "src" / "main.py", tmp_path / ".notes.ab12.tmp", tmp_path / "proj" / ".x.ab12.tmp",
             tmp_path / "proj" / "src" / ".main.py.ab12.tmp", tmp_path / ".expunge-trash" / "mine.txt"]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("keep")
    (tmp_path / "proj" / "empty").mkdir()
    old = time.time() - _io.STALE_TEMP_S - 60
    for p in [*files, tmp_path / "proj" / "empty"]:
        os.utime(p, (old, old))
    assert ArtifactStore(tmp_path).clean() == []
    assert all(f.read_text() == "keep" for f in files) and (tmp_path / "proj" / "empty").is_dir()
