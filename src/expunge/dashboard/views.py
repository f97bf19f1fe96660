"""The JSON payloads of the per-model views, computed from a model's cached outputs (:mod:`expunge.dashboard.outputs`).

Which views a run gets depends on its task and data (:func:`applicable`): class-wise accuracy and prediction matrices
need classes; the attack's entropy and confidence features need class probabilities (a regression keeps the loss);
example images need image-shaped inputs. A view that does not apply says why instead of drawing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from expunge.dashboard import attack
from expunge.dashboard.outputs import ModelOutputs
from expunge.errors import ExpungeError
from expunge.tasks import get_task

SPLITS = ("train", "test", "forget", "retain")
EXPOSED = 8  # most exposed forget examples shown with their images


class ViewNotApplicable(ExpungeError, ValueError):
    """The view does not apply to this run's task or data (the message says which views do)."""


def is_image(out: ModelOutputs) -> bool:
    return is_image_data(out.dataset)


def is_image_data(dataset: Any) -> bool:
    shape = tuple(dataset.input_shape)
    return len(shape) in (2, 3) and min(shape[-2:]) >= 4


def label_of(dataset: Any, v: Any) -> str:
    """A class name, or a regression target's value."""
    return str(dataset.class_names[int(v)]) if dataset.task == "classification" else f"{float(v):.4g}"


# Tasks whose models the per-model views can run on the dataset's plain inputs (``model(x)``); a graph model needs its
# graph, a recommender its interaction matrix, so their runs get the screening table, the timeline and Build only.
MODEL_VIEW_TASKS = frozenset({"classification", "regression"})
MODEL_VIEWS = ("classwise", "predictions", "layers", "embeddings", "attack")


def applicable(task: str, image: bool | None = None) -> dict[str, str | None]:
    """View name -> None when it applies, else why not."""
    classes = None if task == "classification" else f"a {task} task has no classes"
    out: dict[str, str | None] = {"screening": None, "timeline": None, "classwise": classes, "predictions": classes,
                                  "attack": None, "layers": None, "embeddings": None, "build": None}
    if task not in MODEL_VIEW_TASKS:
        why = (f"a {task} model does not run on plain inputs (it needs its graph or interaction data), and the "
               "per-model views of this version run models on the dataset's inputs")
        out.update(dict.fromkeys(MODEL_VIEWS, why))
    if image is False:
        out["attack_images"] = "the inputs are not images"
    return out


def require(task: str, view: str) -> None:
    """:class:`ViewNotApplicable` naming the views that do apply when ``view`` does not apply to ``task``."""
    views = applicable(task)
    if why := views[view]:
        ok = ", ".join(v for v, reason in views.items() if reason is None)
        raise ViewNotApplicable(f"the {view} view does not apply: {why}. The views that do: {ok}")


def _require(out: ModelOutputs, view: str) -> None:
    require(out.dataset.task, view)


def _positions(out: ModelOutputs, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, labels) of ``split``: train/forget/retain are positions in the training set, test its own."""
    if split == "test":
        return out.test, out.dataset.test.y.numpy()
    pos = {"train": slice(None), "forget": out.splits.forget, "retain": out.splits.retain}[split]
    return out.train[pos], out.dataset.train.y.numpy()[pos]


def classwise(out: ModelOutputs) -> dict[str, Any]:
    """Per-class accuracy on the training set (and its forget and retain parts) and the test set; the forgotten
    classes; per-class counts. A class absent from a split has None."""
    _require(out, "classwise")
    k = out.dataset.num_classes
    payload: dict[str, Any] = {"classes": list(out.dataset.class_names),
                               "forget_classes": [int(c) for c in out.splits.forget_classes]}
    for split in SPLITS:
        z, y = _positions(out, split)
        pred = z.argmax(axis=1) if len(z) else np.zeros(0, dtype=np.int64)
        counts = np.bincount(y.astype(np.int64), minlength=k)[:k]
        hits = np.bincount(y[pred == y].astype(np.int64), minlength=k)[:k]
        payload[split] = [None if n == 0 else round(float(h / n), 6) for h, n in zip(hits, counts, strict=True)]
        payload[f"n_{split}"] = counts.tolist()
    return payload


def predictions(out: ModelOutputs, split: str) -> dict[str, Any]:
    """The prediction matrix of ``split``: per true class (rows), the share of examples predicted as each class and
    the mean softmax confidence of those predictions (None where a cell is empty)."""
    _require(out, "predictions")
    if split not in SPLITS:
        raise ExpungeError(f"split {split!r} is not one of {list(SPLITS)}. Fix: pass split=test (or train, forget, "
                           "retain)")
    k = out.dataset.num_classes
    z, y = _positions(out, split)
    y = y.astype(np.int64)
    p = _softmax(z) if len(z) else np.zeros((0, k))
    pred = p.argmax(axis=1)
    conf = p.max(axis=1) if len(p) else np.zeros(0)
    share = np.zeros((k, k))
    mean_conf: list[list[float | None]] = [[None] * k for _ in range(k)]
    for t in range(k):
        rows = y == t
        if not rows.any():
            continue
        share[t] = np.bincount(pred[rows], minlength=k)[:k] / rows.sum()
        for c in range(k):
            cell = rows & (pred == c)
            if cell.any():
                mean_conf[t][c] = round(float(conf[cell].mean()), 6)
    return {"split": split, "classes": list(out.dataset.class_names), "n": np.bincount(y, minlength=k)[:k].tolist(),
            "forget_classes": [int(c) for c in out.splits.forget_classes],
            "share": np.round(share, 6).tolist(), "confidence": mean_conf}


def attack_sides(out: ModelOutputs, feature: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forget values, test values, forget positions) of one attack feature."""
    task = get_task(out.dataset.task)
    y_train, y_test = out.dataset.train.y.numpy(), out.dataset.test.y.numpy()
    classification = out.dataset.task == "classification"
    sides = []
    for z, y in ((out.train[out.splits.forget], y_train[out.splits.forget]), (out.test, y_test)):
        feats = attack.features(z, y, task.example_losses(z, y), classification=classification)
        if feature not in feats:
            raise ViewNotApplicable(f"attack feature {feature!r} does not apply to a {out.dataset.task} task. Fix: "
                                    f"pick one of {sorted(feats)}")
        sides.append(feats[feature])
    return sides[0], sides[1], out.splits.forget


def attack_view(models: Sequence[tuple[str, ModelOutputs]], feature: str, threshold: float | None) -> dict[str, Any]:
    """For each (name, model): the attack summary of ``feature`` (strategies, TPR at low FPR, the sweep the slider
    reads), the values of both sides (for the histograms), the accuracy at the custom ``threshold`` and at the
    common threshold, and its most exposed forget examples with their images and predictions."""
    if feature not in attack.MEMBER_IF:
        raise ExpungeError(f"attack feature {feature!r} is not one of {list(attack.MEMBER_IF)}. Fix: pass "
                           "feature=loss, entropy or confidence")
    member_if = attack.MEMBER_IF[feature]
    sides = {name: attack_sides(out, feature) for name, out in models}
    common = attack.common_threshold([(f, t) for f, t, _ in sides.values()], member_if)
    result: dict[str, Any] = {"feature": feature, "member_if": member_if, "common_threshold": common, "models": {}}
    for name, out in models:
        forget, test, pos = sides[name]
        summary = attack.summary(forget, test, member_if)
        summary["common"] = attack.evaluate(forget, test, common, member_if)
        if threshold is not None:
            summary["custom"] = attack.evaluate(forget, test, threshold, member_if)
        summary["forget_values"] = _round(forget)
        summary["test_values"] = _round(test)
        summary["exposed"] = _exposed(out, forget, pos, member_if)
        result["models"][name] = summary
    return result


def _exposed(out: ModelOutputs, values: np.ndarray, pos: np.ndarray, member_if: str) -> list[dict[str, Any]]:
    order = attack.exposure_order(values, member_if)[:EXPOSED]
    has_image = is_image(out)
    classification = out.dataset.task == "classification"
    items = []
    for i in order:
        p = int(pos[i])
        item: dict[str, Any] = {"id": int(out.dataset.train.ids[p]), "value": float(f"{values[i]:.6g}"),
                                "label": _label(out, out.dataset.train.y[p].item(), classification)}
        if classification:
            item["prediction"] = _label(out, int(out.train[p].argmax()), True)
        if has_image:
            item["image"] = image(out.dataset.train.x[p].numpy())
        items.append(item)
    return items


def _label(out: ModelOutputs, v: Any, classification: bool) -> str:
    return label_of(out.dataset, v)


def image(x: np.ndarray) -> dict[str, Any]:
    """An input as 8-bit pixels for a canvas: (H, W) grey or (H, W, 3), min-max scaled (inputs may be
    standardised)."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)
    lo, hi = float(a.min()), float(a.max())
    a = np.zeros_like(a) if hi <= lo else (a - lo) / (hi - lo)
    px = (a * 255).round().astype(np.uint8)
    return {"height": px.shape[0], "width": px.shape[1], "channels": 1 if px.ndim == 2 else px.shape[2],
            "pixels": px.reshape(-1).tolist()}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _round(v: np.ndarray) -> list[float | None]:
    return [float(f"{x:.4g}") if np.isfinite(x) else None for x in np.asarray(v, dtype=np.float64)]
