"""Atomic file writes and content hashes.

Every file expunge writes goes through :func:`atomic_write_bytes`: write to a temporary file in the same directory,
flush and fsync it, then ``os.replace`` it over the target (atomic on POSIX) and fsync the directory. A crash at any
point leaves either the old file or the new one, never a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# atomic_write_bytes' temp files: ".<target name>.<mkstemp's random part>.tmp", beside their target.
TEMP_NAME = re.compile(r"\..+\.[A-Za-z0-9_]+\.tmp")
# A live writer rewrites its temp file's mtime on every write and renames it right after fsync, so a temp file
# untouched for this long was left by a killed process (kill -9, power loss). The margin is generous: fsync of a
# large file on a slow disk takes seconds, not minutes, and an mtime-based rule works on a store shared by several
# machines, where a writer's pid means nothing.
STALE_TEMP_S = 600.0


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results and presets are meant to be readable by others
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one of :func:`atomic_write_bytes`' temp files (never a file to load)."""
    return TEMP_NAME.fullmatch(name) is not None


def remove_stale_temp_files(directory: str | os.PathLike[str], max_age_s: float = STALE_TEMP_S,
                            targets: Iterable[str] | None = None) -> list[Path]:
    """Delete the temp files in ``directory`` (not below it) that a killed writer left behind: names of
    :func:`atomic_write_bytes`' temp files (of the ``targets`` file names only, when given), last modified more than
    ``max_age_s`` ago. Fresher ones may belong to a writer still running and are kept. Returns the removed paths;
    files that vanish meanwhile (another process cleaning) are skipped."""
    removed: list[Path] = []
    cutoff = time.time() - max_age_s
    names = None if targets is None else tuple(f".{t}." for t in targets)
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        if not is_temp_name(entry.name) or (names is not None and not entry.name.startswith(names)):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except FileNotFoundError:
            continue
    return removed


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def to_json_bytes(obj: Any) -> bytes:
    """Strict JSON (``allow_nan=False``): a NaN or ±inf raises ``ValueError`` instead of printing the bare ``NaN``
    that Python's json writes by default and no other JSON parser reads. Records replace non-finite values by None
    with a reason before they get here (:class:`expunge.record.RunRecord`)."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=False) + "\n").encode()


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_bytes(path, to_json_bytes(obj))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON form of ``obj`` (sorted keys): a cache key that survives process restarts."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, default=_json_default, separators=(",", ":")).encode())
