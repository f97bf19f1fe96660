"""Named hyperparameter presets found by ``expunge tune``, one JSON file per (dataset, model, scenario).

A preset is named ``DATASET/MODEL/SCENARIO`` and stored as ``<dataset>__<model>__<scenario>.json``::

    {"ssd": {"params": {...}, "objective": 0.031, "n_trials": 20, "tuned_at": "...", "versions": {...}, ...}, ...}

Files shipped with the package live next to this module; ``$EXPUNGE_PRESETS`` names a further folder, searched first
(its entries override the shipped ones method by method) and written by ``expunge tune`` when set. Writes are atomic
(:mod:`expunge._io`) and serialised by a lock on the folder, so two tuning runs updating different methods of one
preset both land.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from expunge._hparams import Hyperparams
from expunge._io import atomic_write_json
from expunge.errors import ExpungeError, InvalidHyperparameter

PACKAGE_DIR = Path(__file__).parent
ENV = "EXPUNGE_PRESETS"
SUFFIX = ".json"


class UnknownPreset(ExpungeError, KeyError):
    """No preset of that name, or none for that method."""

    def __str__(self) -> str:
        return str(self.args[0])


def search_dirs() -> list[Path]:
    """Folders holding presets, highest priority first: ``$EXPUNGE_PRESETS``, then the package's."""
    env = os.environ.get(ENV)
    return [Path(env), PACKAGE_DIR] if env else [PACKAGE_DIR]


def default_dir() -> Path:
    """Where ``expunge tune`` writes: ``$EXPUNGE_PRESETS`` if set, else the package's folder (the shipped presets)."""
    return search_dirs()[0]


def file_name(dataset: str, model: str, scenario: str) -> str:
    return f"{dataset}__{model}__{scenario}{SUFFIX}"


def parse_name(name: str) -> tuple[str, str, str]:
    parts = name.strip().split("/")
    if len(parts) != 3 or not all(parts):
        raise UnknownPreset(f"a preset is named DATASET/MODEL/SCENARIO, e.g. digits/cnn/full-class; got {name!r}. "
                            f"Available: {', '.join(available()) or 'none'}")
    return parts[0], parts[1], parts[2]


def available() -> list[str]:
    names = set()
    for d in search_dirs():
        for path in d.glob(f"*__*__*{SUFFIX}"):
            parts = path.name[: -len(SUFFIX)].split("__")
            if len(parts) == 3:
                names.add("/".join(parts))
    return sorted(names)


def read(name: str) -> dict[str, dict[str, Any]]:
    """All method entries of preset ``name`` (entries of higher-priority folders win)."""
    fname = file_name(*parse_name(name))
    merged: dict[str, dict[str, Any]] = {}
    found = False
    for d in reversed(search_dirs()):
        path = d / fname
        if path.is_file():
            found = True
            merged.update(_load(path))
    if not found:
        raise UnknownPreset(f"unknown preset {name!r}; available: {', '.join(available()) or 'none'} "
                            "(create one with `expunge tune`)")
    return merged


def method_values(name: str, method: str) -> dict[str, Any]:
    """The tuned parameter values of ``method`` in preset ``name`` (JSON lists back to tuples)."""
    entries = read(name)
    if method not in entries:
        raise UnknownPreset(f"preset {name!r} has no values for method {method!r}; it has: "
                            f"{', '.join(sorted(entries)) or 'none'}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in entries[method]["params"].items()}


def params_with_preset(params_cls: type[Hyperparams], preset: str | None, method: str,
                       overrides: Mapping[str, Any]) -> Hyperparams:
    """Defaults, then the preset's values (if any), then ``overrides`` (``--param``): later wins."""
    base = None
    if preset:
        try:
            base = params_cls.from_overrides(method_values(preset, method))
        except InvalidHyperparameter as exc:  # the method's parameters changed since it was tuned
            raise InvalidHyperparameter(f"preset {preset!r} no longer fits {method}: {exc} Re-tune it: expunge tune "
                                        f"--methods {method} (or pass --param values instead)") from None
    return params_cls.from_overrides(overrides, base=base)


def write_entries(path: Path, entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Add or replace ``entries`` (method → entry) in the preset file ``path``, atomically; return the whole file."""
    with _locked(path.parent):
        current = _load(path) if path.is_file() else {}
        current.update({k: dict(v) for k, v in entries.items()})
        atomic_write_json(path, current)
    return current


def _load(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ExpungeError(f"preset file {path} is unreadable ({exc}); rerun `expunge tune` to rewrite it") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "params" in v for v in data.values()):
        raise ExpungeError(f"preset file {path} is not a {{method: {{params: ...}}}} mapping")
    return data


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` (POSIX flock on the directory itself: no lock file is left behind)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: atomic replace only
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
