"""The Plotly figures of the bench report (:mod:`expunge.harness.report`); plotly is imported by the caller first.

:func:`figures` yields ``(title, note HTML, figure)`` for what the grid holds, and nothing for what it does not:

* **trade-off**: test accuracy against speed-up (log x), one point per method and request, mean over seeds, the
  Retrain's test accuracy as a dashed line per request;
* **class-wise accuracy** (class requests with class-wise metrics): grouped bars of the metrics whose name starts
  with ``classwise_acc`` or ``test_acc_`` for each method, the Original and the Retrain;
* **gap closure** (random requests): signed share of the Original→Retrain gap closed on forget accuracy and the
  loss-MIA AUC (:func:`~expunge.harness.rules.gap_closure`), mean ± 95% CI over seeds, with 0 and 1 marked;
* **sequential curves** (sequential scenarios): forget and test accuracy of each method against the step, the
  Retrain's as dashed lines.
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from expunge.errors import DegenerateInputWarning
from expunge.harness.rules import GridRules, gap_closure
from expunge.metrics.functional.stats import mean_ci

if TYPE_CHECKING:
    from expunge.harness.report import Group

CLOSURE_METRICS = ("forget_acc", "mia_loss_auc")
CURVE_METRICS = ("forget_acc", "test_acc")
LAYOUT: dict[str, Any] = {"template": "plotly_white", "height": 420, "margin": {"l": 60, "r": 20, "t": 40, "b": 60}}


def interval(values: Sequence[float | None]) -> tuple[float | None, float]:
    """(mean, 95% Student-t half-width) of the values present; (None, 0) when none is (one value: half-width 0)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, 0.0
    with warnings.catch_warnings():  # one seed or no spread: the interval collapses, which the bars show
        warnings.simplefilter("ignore", DegenerateInputWarning)
        ci = mean_ci(vals)
    return ci["mean"], (ci["high"] - ci["low"]) / 2


def request_title(g: Group) -> str:
    """How the report titles a request's figures: dataset/model and the request (shared with report_dists)."""
    return f"{g.dataset}/{g.model} {g.request}"


def figures(groups: Sequence[Group], rules: GridRules) -> Iterator[tuple[str, str, Any]]:
    yield "Accuracy vs speed-up", note_html("Test accuracy (mean over seeds) against the rules' speed-up (log scale); "
                                        "dashed: the Retrain's test accuracy per request."), tradeoff(groups, rules)
    for where, gs in by_request(groups).items():
        kind = gs[0].kind
        if kind == "class" and (fig := classwise(gs)) is not None:
            yield f"Class-wise accuracy: {where}", note_html("Mean over seeds of the stored class-wise metrics."), fig
        if kind == "random":
            yield (f"Gap closure: {where}",
                   note_html("(unlearned − original) / (retrain − original): 1 = at the Retrain, 0 = still at the "
                             "Original, > 1 = overshoot; mean ± 95% CI over seeds; a missing bar has no gap to close "
                             "(no power)."),
                   closure(gs))
        if any(g.sequential for g in gs):
            yield f"Sequential requests: {where}", note_html("Mean over seeds at each step; dashed: the Retrain."), \
                curves(gs)


def note_html(text: str) -> str:
    """A figure's explanatory note as escaped HTML."""
    return f'<p class="note">{html.escape(text)}</p>'


def by_request(groups: Sequence[Group]) -> dict[str, list[Group]]:
    """The groups of each request, by :func:`request_title`, in first-seen order."""
    out: dict[str, list[Group]] = {}
    for g in groups:
        out.setdefault(request_title(g), []).append(g)
    return out


def tradeoff(groups: Sequence[Group], rules: GridRules) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    colours: dict[str, str] = {}
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for where, gs in by_request(groups).items():
        colour = colours.setdefault(where, palette[len(colours) % len(palette)])
        xs, ys, names = [], [], []
        for g in gs:
            finals = g.finals()
            x, _ = interval([rules.speed_up(r) for r in finals])
            y, _ = interval([r.metrics.get("test_acc") for r in finals])
            if x is not None and y is not None and x > 0:
                xs.append(x)
                ys.append(y)
                names.append(g.label)
        fig.add_trace(go.Scatter(x=xs, y=ys, text=names, mode="markers+text", textposition="top center",
                                 name=where, marker={"size": 10, "color": colour}))
        retrain, _ = interval([r.retrain.get("test_acc") for g in gs for r in g.finals()])
        if retrain is not None:
            fig.add_hline(y=retrain, line_dash="dash", line_color=colour, opacity=0.6)
    fig.update_layout(**LAYOUT, xaxis={"type": "log", "title": "speed-up vs retrain (×)"},
                      yaxis={"title": "test accuracy"})
    return fig


def classwise(groups: Sequence[Group]) -> Any:
    """Grouped bars (one per class-wise metric) for each method, then the Original and the Retrain; None when the
    records hold no class-wise metric."""
    import plotly.graph_objects as go

    names = sorted({m for g in groups for r in g.records for m, v in r.metrics.items()
                    if v is not None and (m.startswith("classwise_acc") or m.startswith("test_acc_"))})
    if not names:
        return None
    finals = {g.label: g.finals() for g in groups}
    per_seed: dict[int, Any] = {}  # the Original and Retrain once per seed: every method shares them (and a pooled
    for rs in finals.values():     # copy per method would narrow their interval)
        for r in rs:
            per_seed.setdefault(r.seed, r)
    every = list(per_seed.values())
    fig = go.Figure()
    for m in names:
        xs, ys, err = [], [], []
        for label, rs in [*finals.items(), ("Original", None), ("Retrain", None)]:
            values = [r.metrics.get(m) for r in rs] if rs is not None else \
                [(r.original if label == "Original" else r.retrain).get(m) for r in every]
            mean, hw = interval(values)
            xs.append(label)
            ys.append(mean)
            err.append(hw)
        fig.add_trace(go.Bar(x=xs, y=ys, name=m, error_y={"type": "data", "array": err}))
    fig.update_layout(**LAYOUT, barmode="group", yaxis={"title": "accuracy", "range": [0, 1.05]})
    return fig


def closure(groups: Sequence[Group]) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    for m in CLOSURE_METRICS:
        xs, ys, err = [], [], []
        for g in groups:
            mean, hw = interval([gap_closure(r, m) for r in g.finals()])
            xs.append(g.label)
            ys.append(mean)
            err.append(hw)
        fig.add_trace(go.Bar(x=xs, y=ys, name=m, error_y={"type": "data", "array": err}))
    for level in (0.0, 1.0):
        fig.add_hline(y=level, line_dash="dot", line_color="#555")
    fig.update_layout(**LAYOUT, barmode="group", yaxis={"title": "gap closed (signed)"})
    return fig


def curves(groups: Sequence[Group]) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(CURVE_METRICS), subplot_titles=CURVE_METRICS)
    for col, m in enumerate(CURVE_METRICS, start=1):
        retrain: dict[int, list[float | None]] = {}
        for i, g in enumerate(groups):
            by_step: dict[int, list[float | None]] = {}
            for r in g.records:
                step = int(r.extra.get("step", 0))
                by_step.setdefault(step, []).append(r.metrics.get(m))
                retrain.setdefault(step, []).append(r.retrain.get(m))
            steps = sorted(by_step)
            fig.add_trace(go.Scatter(x=steps, y=[interval(by_step[s])[0] for s in steps], mode="lines+markers",
                                     name=g.label, legendgroup=g.label, showlegend=col == 1,
                                     line={"color": _colour(i)}), row=1, col=col)
        steps = sorted(retrain)
        fig.add_trace(go.Scatter(x=steps, y=[interval(retrain[s])[0] for s in steps], mode="lines", name="Retrain",
                                 legendgroup="Retrain", showlegend=col == 1,
                                 line={"dash": "dash", "color": "#000"}), row=1, col=col)
    fig.update_layout(**LAYOUT)
    fig.update_xaxes(title_text="step", dtick=1)
    return fig


def _colour(i: int) -> str:
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    return palette[i % len(palette)]
