"""Which artifacts encode a forget set, and how: the ``forget_derived`` field of every manifest.

A deletion workflow must know what it may not leave behind. Every manifest the store writes carries::

    "forget_derived": {"trained_on_forget": bool,   # the tensors were computed from the forget examples
                       "lists_forget_ids": bool,    # the manifest lists the forget ids themselves
                       "request": str | None,       # the request fingerprint it belongs to (Splits.fingerprint)
                       "parent": str | None}        # the key of the model its tensors derive from

An artifact is *forget-derived* when it was trained on the forget set or lists its ids, or when it belongs to a
request (its manifest describes it). The writer may set the field; otherwise :func:`describe` infers it from the kind
and the manifest by the rules of :data:`RULES`. A manifest written before the field existed is treated
conservatively (:func:`of_manifest`): the same inference for ``request`` and ``parent``, but trained on and listing
the forget set, so a purge never spares it for lack of a mark.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

FIELD = "forget_derived"
Lineage = dict[str, Any]


def mark(*, trained_on_forget: bool, lists_forget_ids: bool = False, request: str | None = None,
         parent: str | None = None) -> Lineage:
    return {"trained_on_forget": trained_on_forget, "lists_forget_ids": lists_forget_ids, "request": request,
            "parent": parent}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _request_fp(m: Mapping[str, Any]) -> str | None:
    request = m.get("request")
    return _str(request.get("fingerprint")) if isinstance(request, Mapping) else None


# kind -> manifest -> lineage. Why each kind is (or is not) forget-derived:
RULES: dict[str, Callable[[Mapping[str, Any]], Lineage]] = {
    # trained on every training example, hence on every future forget set
    "original": lambda m: mark(trained_on_forget=True),
    # trained on the retain set only, but its manifest describes the request and its key hashes the forget set
    "oracle": lambda m: mark(trained_on_forget=False, request=_request_fp(m)),
    # weights derived from the Original; the manifest lists every forget id (`expunge evaluate` rebuilds from it)
    "unlearned": lambda m: mark(trained_on_forget=True, lists_forget_ids="forget_ids" in m, request=_request_fp(m),
                                parent=_str(m.get("original_key"))),
    # the method re-run with other seeds on the run's Original (tier 2): key parts name the forget set's fingerprint
    "tier2_unlearned": lambda m: mark(trained_on_forget=True, request=_str(m.get("forget")),
                                      parent=_str(m.get("original"))),
    # full-training-set statistics of an Original (SSD importances, SISA shards, amnesiac update logs, ...)
    "train_stats": lambda m: mark(trained_on_forget=True, parent=_str(m.get("original"))),
    # U-LiRA shadows: each trained on a random half of train+test, so on about half of the forget examples
    "shadow": lambda m: mark(trained_on_forget=True),
    # the method run on a shadow (its share of the forget set and held-out targets)
    "shadow_unlearned": lambda m: mark(trained_on_forget=True, parent=_str(m.get("original"))),
    # the shadows' membership matrix depends only on (K, pool size, seed)
    "shadow_pool": lambda m: mark(trained_on_forget=False),
    # offline-LiRA references: random halves of the retain set (never a forget example)
    "lira_reference": lambda m: mark(trained_on_forget=False),
    # relearn-time results: a model fine-tuned on the forget set, the step count kept
    "metric_relearn": lambda m: mark(trained_on_forget=True),
}


def describe(kind: str, manifest: Mapping[str, Any]) -> Lineage:
    """The lineage of a new artifact of ``kind`` (an unknown kind is assumed trained on the forget set)."""
    rule = RULES.get(kind)
    if rule is None:
        return mark(trained_on_forget=True, lists_forget_ids="forget_ids" in manifest)
    return rule(manifest)


def of_manifest(kind: str, manifest: Mapping[str, Any]) -> tuple[Lineage, bool]:
    """A stored artifact's lineage and whether its manifest recorded it (False: written before the field existed,
    inferred, and assumed trained on and listing the forget set)."""
    recorded = manifest.get(FIELD)
    if isinstance(recorded, Mapping) and {"trained_on_forget", "lists_forget_ids"} <= set(recorded):
        return {**mark(trained_on_forget=True), **dict(recorded)}, True
    return {**describe(kind, manifest), "trained_on_forget": True, "lists_forget_ids": True}, False


def is_forget_derived(lineage: Mapping[str, Any]) -> bool:
    return bool(lineage.get("trained_on_forget") or lineage.get("lists_forget_ids") or lineage.get("request"))


def why(kind: str, lineage: Mapping[str, Any], recorded: bool = True) -> str:
    """One line saying how an artifact encodes the forget set."""
    parts = []
    if not recorded:
        parts.append("manifest predates forget-derived marks: treated as forget-derived")
    if lineage.get("lists_forget_ids") and recorded:
        parts.append("manifest lists every forget id")
    if lineage.get("trained_on_forget") and recorded:
        if kind == "original":
            parts.append("trained on every training example, so on every forget set")
        elif lineage.get("parent") is None:
            parts.append("computed from the forget examples")
        else:
            parts.append(f"derives from model {str(lineage['parent'])[:12]}, trained on the forget set")
    elif lineage.get("parent"):
        parts.append(f"derives from model {str(lineage['parent'])[:12]}")
    if lineage.get("request"):
        parts.append(f"belongs to request {str(lineage['request'])[:12]}")
    if kind == "oracle" and not lineage.get("trained_on_forget"):
        parts.append("weights never saw the forget set")
    return "; ".join(parts) or "not forget-derived"
