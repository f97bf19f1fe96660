"""The artifact store: cached models and tensors keyed by what produced them.

Layout: ``ROOT/<kind>/<key>/tensors.safetensors`` and ``ROOT/<kind>/<key>/manifest.json``. The key is a hash of
everything that determines the artifact (dataset fingerprint, model spec, recipe, seed and, for a retrain oracle,
the forget set), so a second identical request is a cache hit and any change is a miss. The manifest is written last
and records the tensor file's sha256 and size: loading verifies both before touching the tensors, so a truncated or
corrupted file is detected (:class:`~expunge.errors.CorruptArtifact`) and recomputed, never half-loaded. Every write
is atomic (temp file + fsync + rename). Tensors are stored with safetensors; pickle-based formats are refused unless
the caller opts in explicitly (:func:`import_weights`).

Kinds and keys are plain names (letters, digits, ``-``, ``_``; keys are hex hashes): anything path-like is refused
(:class:`~expunge.errors.InvalidArtifactKey`), so no key reaches outside its ``ROOT/<kind>/`` folder. Every manifest
carries ``forget_derived`` (:mod:`expunge.store.lineage`): whether and how the artifact encodes a forget set. Opening a
store removes what killed writers left behind (:meth:`ArtifactStore.clean`): their temp files, folders a purge had
moved out of the tree, and artifact folders whose manifest was never written; none of them is ever loaded.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from expunge._io import (
    STALE_TEMP_S,
    atomic_write_bytes,
    atomic_write_json,
    remove_stale_temp_files,
    sha256_bytes,
    stable_hash,
)
from expunge.errors import CorruptArtifact, InvalidArtifactKey, UnsafeFormat
from expunge.store import lineage

log = logging.getLogger(__name__)
TENSORS, MANIFEST = "tensors.safetensors", "manifest.json"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt"}
TRASH = ".expunge-trash"  # where a purge moves an artifact folder (atomically) before deleting it
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_TRASHED = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[0-9]+\.[0-9a-f]{8}")  # purge's <kind>.<key>.<pid>.<random>
_cleaned: set[Path] = set()  # roots cleaned by this process (once each: cleaning walks the whole tree)


def default_store_root() -> Path:
    env = os.environ.get("EXPUNGE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "expunge"


def environment_info() -> dict[str, Any]:
    import numpy
    import sklearn

    from expunge._version import __version__

    return {
        "expunge": __version__, "python": sys.version.split()[0], "torch": torch.__version__,
        "numpy": numpy.__version__, "sklearn": sklearn.__version__, "platform": platform.platform(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "device": "cpu",
    }


def state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """A model's state as independent contiguous CPU tensors (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def state_hash(model: nn.Module) -> str:
    return sha256_bytes(st_save(state_tensors(model)))


class ArtifactStore:
    """A directory of verified artifacts. Safe to share between processes (atomic, content-checked writes)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_root()
        resolved = self.root.resolve()
        if resolved not in _cleaned and self.root.is_dir():
            _cleaned.add(resolved)
            try:
                self.clean()
            except OSError as exc:  # best effort: a store we cannot tidy is still usable
                log.warning("could not clean %s: %s", self.root, exc)

    @staticmethod
    def key(parts: Mapping[str, Any]) -> str:
        return stable_hash(dict(parts))[:32]

    @staticmethod
    def check_name(kind: str, key: str) -> None:
        """Refuse a kind or key that is not a plain name (``../x``, ``a/b``, ``.hidden``, empty)."""
        for what, value in (("kind", kind), ("key", key)):
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise InvalidArtifactKey(f"artifact {what} {value!r} is not a store {what} (letters, digits, '-' and "
                                         "'_' only; keys are hex hashes such as a record's `unlearned_key`). Fix: "
                                         "pass the key exactly as a run record or `expunge purge` prints it")

    def path(self, kind: str, key: str) -> Path:
        self.check_name(kind, key)
        return self.root / kind / key

    def artifacts(self) -> Iterator[tuple[str, str, Path]]:
        """(kind, key, folder) of every complete artifact (its manifest written), in a stable order."""
        if not self.root.is_dir():
            return
        for kind_dir in sorted(self.root.iterdir()):
            if not kind_dir.is_dir() or not _NAME.fullmatch(kind_dir.name):
                continue
            for folder in sorted(kind_dir.iterdir()):
                if folder.is_dir() and _NAME.fullmatch(folder.name) and (folder / MANIFEST).is_file():
                    yield kind_dir.name, folder.name, folder

    def clean(self, max_age_s: float = STALE_TEMP_S) -> list[Path]:
        """Remove what killed processes left behind; returns the removed paths. In each ``ROOT/<kind>/<key>/``
        folder: temp files of the tensors' and the manifest's atomic writes, and the folder itself when it holds
        nothing else but a tensor file — killed between the tensors and the manifest —, once untouched for
        ``max_age_s`` (a live writer's are fresher and kept). Folders a purge moved to its trash always (they are
        never read). Nothing else is touched, even when ``ROOT`` is not a store."""
        removed: list[Path] = []
        trash = self.root / TRASH
        if trash.is_dir():
            for entry in trash.iterdir():
                if _TRASHED.fullmatch(entry.name):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry)
        cutoff = time.time() - max_age_s
        for kind_dir in (d for d in self.root.iterdir() if _NAME.fullmatch(d.name) and d.is_dir()):
            for folder in (f for f in kind_dir.iterdir() if _NAME.fullmatch(f.name) and f.is_dir()):
                removed += remove_stale_temp_files(folder, max_age_s, targets=(TENSORS, MANIFEST))
                try:
                    entries = list(folder.iterdir())
                    if {e.name for e in entries} == {TENSORS} and entries[0].stat().st_mtime < cutoff:
                        shutil.rmtree(folder, ignore_errors=True)
                        removed.append(folder)
                except FileNotFoundError:
                    continue
        if removed:
            log.info("store %s: removed %d leftover(s) of killed writes", self.root, len(removed))
        return removed

    def exists(self, kind: str, key: str) -> bool:
        return (self.path(kind, key) / MANIFEST).is_file()

    def read_manifest(self, kind: str, key: str) -> dict[str, Any] | None:
        """An artifact's JSON manifest without loading (or verifying) its tensors; None if absent or unreadable."""
        try:
            return dict(json.loads((self.path(kind, key) / MANIFEST).read_text()))
        except (OSError, ValueError, TypeError):  # absent, not JSON (ValueError covers decoding), not an object
            return None

    def save_tensors(self, kind: str, key: str, tensors: Mapping[str, torch.Tensor],
                     manifest: Mapping[str, Any]) -> dict[str, Any]:
        blob = st_save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})
        folder = self.path(kind, key)
        atomic_write_bytes(folder / TENSORS, blob)
        marked = manifest.get(lineage.FIELD) or lineage.describe(kind, manifest)
        full = {**manifest, lineage.FIELD: marked, "kind": kind, "key": key,
                "tensors_sha256": sha256_bytes(blob), "tensors_nbytes": len(blob),
                "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "env": environment_info()}
        atomic_write_json(folder / MANIFEST, full)  # written last: its presence marks a complete artifact
        return full

    def load_tensors(self, kind: str, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        folder = self.path(kind, key)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except FileNotFoundError:
            raise CorruptArtifact(f"{folder} has no manifest") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorruptArtifact(f"{folder / MANIFEST} is not valid JSON ({exc})") from None
        try:
            blob = (folder / TENSORS).read_bytes()
        except FileNotFoundError:
            raise CorruptArtifact(f"{folder / TENSORS} is missing") from None
        if len(blob) != manifest.get("tensors_nbytes") or sha256_bytes(blob) != manifest.get("tensors_sha256"):
            raise CorruptArtifact(f"{folder / TENSORS} does not match its recorded sha256/size (truncated or "
                                  "modified)")
        return st_load(blob), manifest

    def save_model(self, kind: str, key: str, model: nn.Module, manifest: Mapping[str, Any]) -> dict[str, Any]:
        return self.save_tensors(kind, key, state_tensors(model), manifest)

    def load_model_into(self, kind: str, key: str, model: nn.Module) -> dict[str, Any]:
        tensors, manifest = self.load_tensors(kind, key)
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise CorruptArtifact(f"{self.path(kind, key)} does not fit the model: {exc}") from None
        return manifest

    def get_or_create_model(self, kind: str, key: str, build: Callable[[], nn.Module],
                            train: Callable[[nn.Module], Mapping[str, Any]]) -> tuple[nn.Module, dict[str, Any], bool]:
        """Load a cached model or build, train and store it. Returns (model, manifest, cache_hit).

        A corrupted or truncated cache entry is logged and recomputed."""
        model = build()
        if self.exists(kind, key):
            try:
                return model, self.load_model_into(kind, key, model), True
            except CorruptArtifact as exc:
                log.warning("cache entry corrupted, recomputing: %s", exc)
                model = build()
        manifest = train(model)
        return model, self.save_model(kind, key, model, manifest), False

    def get_or_create_tensors(self, kind: str, key: str, compute: Callable[[], tuple[dict[str, torch.Tensor],
                              Mapping[str, Any]]]) -> tuple[dict[str, torch.Tensor], dict[str, Any], bool]:
        if self.exists(kind, key):
            try:
                return (*self.load_tensors(kind, key), True)
            except CorruptArtifact as exc:
                log.warning("cache entry corrupted, recomputing: %s", exc)
        tensors, manifest = compute()
        return tensors, self.save_tensors(kind, key, tensors, manifest), False


def import_weights(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path``. safetensors always; pickle-based ``.pt``/``.pth``/``.bin`` only with
    ``allow_pickle=True`` and then through ``torch.load(weights_only=True)``."""
    p = Path(path)
    if p.suffix == ".safetensors":
        return st_load(p.read_bytes())
    if not allow_pickle:
        kind = "pickle-based checkpoints" if p.suffix in PICKLE_SUFFIXES else "files that are not safetensors"
        raise UnsafeFormat(f"refusing to load {p}: {kind} can execute code when loaded. Fix: convert it to "
                           "safetensors, or pass allow_pickle=True if you trust the file.")
    loaded = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(loaded, dict):
        raise UnsafeFormat(f"{p} does not hold a state dict")
    return loaded
