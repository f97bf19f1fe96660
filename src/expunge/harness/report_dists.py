"""The report's per-example figures (:mod:`expunge.harness.report`), drawn from the summaries that
:mod:`expunge.harness.distributions` stored beside each cell; plotly is imported by the caller first.

Per request (dataset/model and request), for the Original, the Retrain and each method:

* **MIA loss distributions** — box plots of the per-example loss that ``mia_loss_auc`` attacks, on the forget set
  and on the test set (and on the test examples of the forget set's own classes when ``mia_loss_auc_matched``
  restricts the test side). Box: the quartiles; whiskers: the 5th and 95th percentiles; dashed line: the mean. Over
  seeds each percentile is averaged (the Vincentized distribution; Ratcliff, Psychological Bulletin 1979) — the
  stored summaries are percentiles, not raw losses. Log axis: losses span 1e-8 to 100; a value below
  :data:`LOG_FLOOR` is drawn at it. A sequential stream shows its last step (as the table does).
* **per-class test accuracy** — bars per class for each model, mean ± 95% Student-t half-width over seeds; the
  forgotten classes are shaded and their names marked "(forgotten)". Classification only.

The Original and the Retrain enter once per seed (their request), not once per method. A store written before the
summaries existed, a request without any, and the runs whose summaries failed are named in the page, not drawn.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expunge.harness.report_plots import LAYOUT, _colour, by_request, interval, note_html

if TYPE_CHECKING:
    from expunge.harness.report import Group

Dists = Mapping[tuple[str, str, str], Mapping[str, Any]]
SETS = {"forget": "forget", "test": "test (all)", "test_matched": "test (forget set's classes)"}
SET_COLOURS = {"forget": "#d62728", "test": "#1f77b4", "test_matched": "#17becf"}
LOG_FLOOR = 1e-6
BOX_LEVELS = {"lowerfence": 5, "q1": 25, "median": 50, "q3": 75, "upperfence": 95}

OLD_STORE = ("This store was written before per-example summaries were stored (it has no distributions table): MIA "
             "score distributions and per-class accuracies are not drawn. Run the grid into a new --out folder to "
             "get them.")
NONE_STORED = "No per-example summary is stored in this folder: MIA score distributions and per-class accuracies " \
              "are not drawn."
ABOUT = ("MIA score distributions: the per-example loss that mia_loss_auc attacks (cross-entropy clipped to [0, 100]; "
         "squared error for regression), forget set vs test set, stored as percentiles 0–100 per model and seed. "
         "Boxes: quartiles, whiskers 5th–95th percentile, dashed: mean; each percentile averaged over seeds "
         "(Vincentized). Per-class accuracy: test accuracy of each class, mean ± 95% CI over seeds, forgotten "
         "classes shaded.")


def load_distributions(directory: str | Path) -> dict[tuple[str, str, str], dict[str, Any]] | None:
    """Every stored summary ``{(key, role, kind): payload}``, or None for a store without the table (a committed
    folder of exported JSON Lines carries no summaries: it reads as a store without any)."""
    from expunge.harness.compact import open_results

    with open_results(directory) as rs:
        return rs.distributions() if rs.has_distributions() else None


def page_note(dists: Dists | None) -> str:
    """What the page says about the per-example figures before the figures."""
    return OLD_STORE if dists is None else NONE_STORED if not dists else ABOUT


def payloads(groups: Sequence[Group], dists: Dists, kind: str) -> dict[str, list[Mapping[str, Any]]]:
    """``{model: [payload per seed]}`` of one kind for a request's groups: the Original and the Retrain (once per
    request key, i.e. per seed), then each method; the final record of each seed (a stream's last step)."""
    runs: dict[str, list[str]] = {}
    requests: dict[str, None] = {}
    for g in groups:
        key_of = {id(r): k for r, k in zip(g.records, g.keys, strict=False)}
        for r in g.finals():
            run_key, request_key = key_of.get(id(r), (None, None))
            if run_key is not None:
                runs.setdefault(g.label, []).append(run_key)
            if request_key is not None:
                requests[request_key] = None
    out: dict[str, list[Mapping[str, Any]]] = {}
    for role, name in (("original", "Original"), ("retrain", "Retrain")):
        out[name] = [p for q in requests if (p := dists.get((q, role, kind))) is not None]
    for label, keys in runs.items():
        out[label] = [p for k in keys if (p := dists.get((k, "unlearned", kind))) is not None]
    return out


def problems(groups: Sequence[Group], dists: Dists) -> list[str]:
    """The errors and reasons recorded for a request's runs and baselines, one line per distinct message with the
    models it concerns ("class_acc: a regression task has no classes (Original, Retrain, finetune)")."""
    out: dict[str, dict[str, None]] = {}
    for kind in ("error", "mia_loss", "class_acc"):
        for model, ps in payloads(groups, dists, kind).items():
            for p in ps:
                if p.get("error") or p.get("reason"):
                    out.setdefault(f"{kind}: {p.get('error') or p.get('reason')}", {})[model] = None
    return [f"{message} ({', '.join(models)})" for message, models in out.items()]


def figures(groups: Sequence[Group], dists: Dists | None) -> Iterator[tuple[str, str, Any]]:
    """``(title, note HTML, figure or None)`` per request: the MIA box plot and the per-class bars, or a note."""
    if not dists:
        return
    for where, gs in by_request(groups).items():
        issues = problems(gs, dists)
        trouble = note_html("Not computed for: " + "; ".join(issues[:5]) + (" …" if len(issues) > 5 else "")) \
            if issues else ""
        mia, acc = mia_boxes(payloads(gs, dists, "mia_loss")), class_bars(payloads(gs, dists, "class_acc"))
        if mia is None and acc is None:
            yield f"Per-example distributions: {where}", note_html(
                "No per-example summary is stored for this request.") + trouble, None
            continue
        if mia is not None:
            yield f"MIA loss distributions, forget vs test: {where}", note_html(
                "Per-example loss (log scale) of each model on the forget and test sets: box = quartiles, whiskers "
                "= 5th–95th percentile, averaged over seeds.") + trouble, mia
            trouble = ""
        if acc is not None:
            yield f"Per-class test accuracy: {where}", note_html(
                "Mean ± 95% CI over seeds; shaded: the forgotten classes.") + trouble, acc


def vincentized(summaries: Sequence[Mapping[str, Any]]) -> tuple[list[float] | None, float | None]:
    """The level-by-level mean of the seeds' percentile vectors, and the mean of their means (None when none)."""
    qs = [s["q"] for s in summaries if s.get("q")]
    if not qs:
        return None, None
    levels = [[q[i] for q in qs if q[i] is not None] for i in range(len(qs[0]))]
    means = [s["mean"] for s in summaries if s.get("mean") is not None]
    return ([sum(v) / len(v) if v else float("nan") for v in levels],
            sum(means) / len(means) if means else None)


def mia_boxes(by_model: Mapping[str, Sequence[Mapping[str, Any]]]) -> Any:
    """Grouped box plots from stored percentiles, one trace per set; None when no model has a loss summary."""
    import plotly.graph_objects as go

    traces = []
    for name, label in SETS.items():
        stats: dict[str, list[Any]] = {"x": [], "mean": [], **{k: [] for k in BOX_LEVELS}}
        for model, ps in by_model.items():
            q, mean = vincentized([p["sets"][name] for p in ps if name in (p.get("sets") or {})])
            if q is None:
                continue
            stats["x"].append(model)
            stats["mean"].append(max(mean, LOG_FLOOR) if mean is not None else None)
            for k, level in BOX_LEVELS.items():
                stats[k].append(max(q[level], LOG_FLOOR))
        if stats["x"]:
            traces.append(go.Box(name=label, marker_color=SET_COLOURS[name], boxmean=True, **stats))
    if not traces:
        return None
    fig = go.Figure(traces)
    fig.update_layout(**LAYOUT, boxmode="group", yaxis={"type": "log", "title": "per-example loss"})
    return fig


def class_bars(by_model: Mapping[str, Sequence[Mapping[str, Any]]]) -> Any:
    """Bars of per-class test accuracy per model (mean ± 95% CI over seeds), forgotten classes shaded; None when no
    model has a per-class vector (no summary, or a regression task)."""
    import plotly.graph_objects as go

    usable = {m: [p for p in ps if p.get("test")] for m, ps in by_model.items()}
    usable = {m: ps for m, ps in usable.items() if ps}
    if not usable:
        return None
    first = next(iter(usable.values()))[0]
    classes = [str(c) for c in first["classes"]]
    forgotten = sorted({int(c) for ps in usable.values() for p in ps for c in p.get("forget_classes") or []})
    ticks = [f"{c} (forgotten)" if i in forgotten else c for i, c in enumerate(classes)]
    fig = go.Figure()
    for i, (model, ps) in enumerate(usable.items()):
        cols = [interval([p["test"][c] for p in ps if c < len(p["test"])]) for c in range(len(classes))]
        fig.add_trace(go.Bar(x=ticks, y=[m for m, _ in cols], name=model,
                             error_y={"type": "data", "array": [hw for _, hw in cols]},
                             marker_color="#444" if model == "Original" else "#999" if model == "Retrain"
                             else _colour(i)))
    for c in forgotten:
        fig.add_vrect(x0=c - 0.5, x1=c + 0.5, fillcolor="#f8d7d7", opacity=0.5, line_width=0, layer="below")
    fig.update_layout(**LAYOUT, barmode="group", yaxis={"title": "test accuracy", "range": [0, 1.05]},
                      xaxis={"title": "class", "type": "category"})
    return fig
