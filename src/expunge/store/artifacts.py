"""The artifact store: cached models and tensors keyed by what produced them.

Layout: ``ROOT/<kind>/<key>/tensors.safetensors`` and ``ROOT/<kind>/<key>/manifest.json``. The key is a hash of
everything that determines the artifact (dataset fingerprint, model spec, recipe, seed and, for a retrain oracle,
the forget set), so a second identical request is a cache hit and any change is a miss. The manifest is written last
and records the tensor file's sha256 and size: loading verifies both before touching the tensors, so a truncated or
corrupted file is detected (:class:`~expunge.errors.CorruptArtifact`) and recomputed, never half-loaded. Every write
is atomic (temp file + fsync + rename). Tensors are stored with safetensors; pickle-based formats are refused unless
the caller opts in explicitly (:func:`import_weights`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from expunge._io import atomic_write_bytes, atomic_write_json, sha256_bytes, stable_hash
from expunge.errors import CorruptArtifact, UnsafeFormat

log = logging.getLogger(__name__)
TENSORS, MANIFEST = "tensors.safetensors", "manifest.json"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt"}


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

    @staticmethod
    def key(parts: Mapping[str, Any]) -> str:
        return stable_hash(dict(parts))[:32]

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def exists(self, kind: str, key: str) -> bool:
        return (self.path(kind, key) / MANIFEST).is_file()

    def read_manifest(self, kind: str, key: str) -> dict[str, Any] | None:
        """An artifact's JSON manifest without loading (or verifying) its tensors; None if absent or unreadable."""
        try:
            return dict(json.loads((self.path(kind, key) / MANIFEST).read_text()))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None

    def save_tensors(self, kind: str, key: str, tensors: Mapping[str, torch.Tensor],
                     manifest: Mapping[str, Any]) -> dict[str, Any]:
        blob = st_save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})
        folder = self.path(kind, key)
        atomic_write_bytes(folder / TENSORS, blob)
        full = {**manifest, "kind": kind, "key": key, "tensors_sha256": sha256_bytes(blob), "tensors_nbytes": len(blob),
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
