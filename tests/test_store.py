"""Artifact store: cache hits, corruption detection, atomic writes under injected failures, pickle refusal."""

from __future__ import annotations

import os
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
