"""Purge: remove the forget-derived artifacts of a request or of a retired Original (``expunge purge``).

What a purge removes (each artifact's ``forget_derived`` mark, :mod:`expunge.store.lineage`, says why):

* **a request** (:func:`plan_request`, or :func:`plan_run` for the request an unlearned run names): every artifact
  that belongs to it — its unlearned models and their manifests (which list every forget id), the method's repeated
  tier-2 runs, request-specific statistics — and its retrain oracle. The oracle's weights never saw the forget set,
  but its manifest describes the request and its key hashes the forget set, and an oracle next to an Original is
  itself a two-version pair; it is a cache entry that a later run retrains, so it goes too unless ``keep_oracle``.
  The Original is shared by every request on it and stays: the plan names it (``pairs``) with how to retire it.
* **an Original** (:func:`plan_original`): the Original and everything derived from it (its unlearned models and
  repeated runs, its training-set statistics), at any depth. Oracles are not derived from it and stay.
* **unlinked** artifacts (:func:`plan_unlinked`): forget-derived artifacts that name no request and no parent —
  U-LiRA shadows and their unlearned copies, relearn-time results, manifests written before the marks existed.

Deleting is two steps per artifact: its folder is renamed out of the tree (``ROOT/.expunge-trash/``, atomic on one file
system), then removed. A kill between the steps leaves no half-deleted artifact that loads: the folder is either
whole in place or gone from it (the next opening of the store empties the trash). Re-running a purge finishes one
that was interrupted.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expunge.errors import ArtifactError, InvalidArtifactKey
from expunge.store import lineage
from expunge.store.artifacts import TRASH, ArtifactStore

log = logging.getLogger("expunge.store")
_warned: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Item:
    """One stored artifact and how it encodes a forget set."""

    kind: str
    key: str
    path: Path
    nbytes: int
    lineage: Mapping[str, Any]
    recorded: bool  # False: the manifest predates the marks (treated as forget-derived)

    @property
    def why(self) -> str:
        return lineage.why(self.kind, self.lineage, self.recorded)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "path": str(self.path), "bytes": self.nbytes, "why": self.why,
                "forget_derived": dict(self.lineage), "marked": self.recorded}


@dataclass
class Plan:
    """What a purge removes (``items``, children before their parents) and the Originals that stay beside a removed
    child (``pairs``: the two-version difference attack needs only a copy of the child taken earlier)."""

    store: ArtifactStore
    selector: dict[str, Any]
    items: list[Item]
    pairs: list[dict[str, str]] = field(default_factory=list)
    unlinked: int = 0  # forget-derived artifacts no selector reaches (see plan_unlinked)
    removed: bool = False

    @property
    def total_bytes(self) -> int:
        return sum(i.nbytes for i in self.items)

    def to_json(self) -> dict[str, Any]:
        return {"store": str(self.store.root), "selector": self.selector, "dry_run": not self.removed,
                "removed": self.removed, "artifacts": [i.to_json() for i in self.items],
                "total_bytes": self.total_bytes, "pairs": self.pairs, "unlinked_forget_derived": self.unlinked}

    def execute(self) -> Plan:
        """Delete every item (rename out of the tree, then remove); returns the plan marked as executed."""
        trash = self.store.root / TRASH
        trash.mkdir(parents=True, exist_ok=True)
        for item in self.items:
            dest = trash / f"{item.kind}.{item.key}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            try:
                os.rename(item.path, dest)  # atomic: from here on the artifact is absent, never half-present
            except FileNotFoundError:
                continue  # removed meanwhile (another purge)
            shutil.rmtree(dest, ignore_errors=True)
            log.info("purged %s/%s (%s)", item.kind, item.key, item.why)
        self.removed = True
        return self


def scan(store: ArtifactStore) -> list[Item]:
    """Every complete artifact of the store with its lineage (unmarked manifests inferred, conservatively)."""
    items = []
    for kind, key, folder in store.artifacts():
        manifest = store.read_manifest(kind, key) or {}
        marks, recorded = lineage.of_manifest(kind, manifest)
        nbytes = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        items.append(Item(kind, key, folder, nbytes, marks, recorded))
    return items


def _closure(items: list[Item], chosen: Callable[[Item], bool]) -> list[Item]:
    """``chosen`` items and, transitively, every item whose parent is among them (children listed first)."""
    picked = {(i.kind, i.key) for i in items if chosen(i)}
    keys = {k for _, k in picked}
    grew = True
    while grew:
        grew = False
        for i in items:
            if (i.kind, i.key) not in picked and i.lineage.get("parent") in keys:
                picked.add((i.kind, i.key))
                keys.add(i.key)
                grew = True
    out = [i for i in items if (i.kind, i.key) in picked]
    return sorted(out, key=lambda i: i.kind == "original")  # the Original last: children never outlive it


def _unlinked(items: Iterable[Item]) -> list[Item]:
    return [i for i in items if lineage.is_forget_derived(i.lineage) and not i.lineage.get("request")
            and not i.lineage.get("parent") and i.kind != "original"]


def _pairs(store: ArtifactStore, items: list[Item]) -> list[dict[str, str]]:
    gone = {i.key for i in items}
    out = []
    for i in items:
        parent = i.lineage.get("parent")
        if parent and parent not in gone and i.kind == "unlearned" and store.exists("original", parent):
            out.append({"original": parent, "original_path": str(store.path("original", parent)),
                        "child": f"{i.kind}/{i.key}", "purge": f"expunge purge --original {parent} --yes"})
    return out


def _check_hex(value: str, what: str, min_len: int) -> str:
    v = value.strip().lower()
    if len(v) < min_len or any(c not in "0123456789abcdef" for c in v):
        raise InvalidArtifactKey(f"{what} {value!r} is not a hex fingerprint of at least {min_len} characters. Fix: "
                                 "copy `request.fingerprint` from a run record (`expunge unlearn --json`)")
    return v


def plan_request(store: ArtifactStore, fingerprint: str, *, keep_oracle: bool = False) -> Plan:
    """The artifacts of the request ``fingerprint`` (a full request fingerprint or an unambiguous prefix of at least
    8 characters). Nothing matching is an empty plan, not an error (a finished purge re-run)."""
    fp = _check_hex(fingerprint, "request fingerprint", 8)
    store.clean()
    items = scan(store)
    found = {str(i.lineage["request"]) for i in items if str(i.lineage.get("request") or "").startswith(fp)}
    if len(found) > 1:
        raise InvalidArtifactKey(f"request fingerprint prefix {fp!r} matches {len(found)} requests "
                                 f"({', '.join(sorted(f[:16] for f in found))}). Fix: give more characters")
    full = found.pop() if found else fp
    picked = _closure(items, lambda i: i.lineage.get("request") == full and not (keep_oracle and i.kind == "oracle"))
    return Plan(store, {"request": full, "keep_oracle": keep_oracle}, picked, _pairs(store, picked),
                len(_unlinked(items)))


def request_of_run(store: ArtifactStore, key: str) -> str:
    """The request fingerprint an unlearned run's manifest names."""
    manifest = store.read_manifest("unlearned", key)
    if manifest is None:
        raise ArtifactError(f"no unlearned run {key!r} in {store.root}. Fix: pass the `unlearned_key` of a run record "
                            "and the --store it was written to")
    fp = lineage.of_manifest("unlearned", manifest)[0].get("request")
    if not fp:
        raise ArtifactError(f"unlearned run {key!r} names no request fingerprint. Fix: purge it with --request "
                            "FINGERPRINT or with its Original (--original)")
    return str(fp)


def plan_run(store: ArtifactStore, key: str, *, keep_oracle: bool = False) -> Plan:
    """The artifacts of the request that the unlearned run ``key`` was made for (the run itself included)."""
    plan = plan_request(store, request_of_run(store, key), keep_oracle=keep_oracle)
    plan.selector["run"] = key
    return plan


def plan_original(store: ArtifactStore, key: str) -> Plan:
    """A retired Original and every artifact derived from it."""
    store.check_name("original", key)
    store.clean()
    items = scan(store)
    if not any(i.kind == "original" and i.key == key for i in items) \
            and not any(i.lineage.get("parent") == key for i in items):
        raise ArtifactError(f"no Original {key!r} (nor anything derived from it) in {store.root}. Fix: pass a "
                            "record's `original_key` and the --store it was written to")
    picked = _closure(items, lambda i: i.kind == "original" and i.key == key)
    return Plan(store, {"original": key}, picked, [], len(_unlinked(items)))


def plan_unlinked(store: ArtifactStore) -> Plan:
    """Forget-derived artifacts that name no request and no parent, and what derives from them."""
    store.clean()
    items = scan(store)
    chosen = {(i.kind, i.key) for i in _unlinked(items)}
    picked = _closure(items, lambda i: (i.kind, i.key) in chosen)
    return Plan(store, {"unlinked": True}, picked, _pairs(store, picked), 0)


def original_in_store(store: ArtifactStore, original_key: str | None) -> dict[str, Any]:
    """``{"original_in_store": {...}}`` for a run record's ``extra`` when the run's Original is in the store beside
    its unlearned child (anyone holding both can diff them: the two-version difference attack), else ``{}``.
    Logged once per process and Original as a warning (the command line's stderr)."""
    if not original_key or not store.exists("original", original_key):
        return {}
    info = {"original_key": original_key, "path": str(store.path("original", original_key)),
            "purge": f"expunge purge --original {original_key} --yes",
            "warning": "the Original (trained on the forget set) is still in the store beside its unlearned model: "
                       "anyone holding both can diff them. Retire it when the deletion is final"}
    if (str(store.root), original_key) not in _warned:
        _warned.add((str(store.root), original_key))
        log.warning("warning: %s (%s). Fix: `%s --store %s` removes it and everything derived from it.",
                    info["warning"], info["path"], info["purge"].removesuffix(" --yes"), store.root)
    return {"original_in_store": info}


def plans_from(selector: Mapping[str, Any], store: ArtifactStore) -> Plan:
    """A plan from exactly one of ``request``, ``run``, ``original`` or ``unlinked`` (the command line's options)."""
    given = {k: v for k, v in selector.items() if v not in (None, False) and k != "keep_oracle"}
    if len(given) != 1:
        raise InvalidArtifactKey(f"purge needs exactly one of --request, --run, --original, --unlinked; got "
                                 f"{sorted(given) or 'none'}. Fix: name one request, run or Original")
    keep = bool(selector.get("keep_oracle"))
    if "request" in given:
        return plan_request(store, str(given["request"]), keep_oracle=keep)
    if "run" in given:
        store.check_name("unlearned", str(given["run"]))
        return plan_run(store, str(given["run"]), keep_oracle=keep)
    if "original" in given:
        return plan_original(store, str(given["original"]))
    return plan_unlinked(store)
