"""``expunge report DIR``: one self-contained HTML page of a bench grid's results, readable offline.

The page holds the screening table — each method beside the Original and the Retrain on every request, the task's
parity metrics as mean ± 95% Student-t half-width over seeds, the signed gap to the Retrain, parity per seed ("k/n
seeds", with the criteria that had no power), speed-up, amortised speed-up and precompute — and Plotly figures
(:mod:`expunge.harness.report_plots`): the accuracy-vs-speed-up trade-off, class-wise metric bars, gap closure on
random requests and sequential-request curves — and, from the per-example summaries stored beside each cell
(:mod:`expunge.harness.distributions`, drawn by :mod:`expunge.harness.report_dists`), the loss-MIA score
distributions forget vs test and the per-class test accuracy of every model (Original, Retrain, each method).

Every verdict, speed-up and precompute comes from :mod:`expunge.harness.rules` (``GridRules`` over the whole
grid, ``seed_parity``, ``gap_closure``); this module only groups records and lays them out. Plotly's JavaScript
bundle is inlined once (~4.6 MB), so the file opens in a browser with no network; plotly is the ``report`` extra and
is imported only when a report is written.

What the store does not hold is not drawn: a store written before the summaries were stored has none, and the page
says so instead of plotting something else under their name.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expunge._io import atomic_write_text
from expunge.errors import ExpungeError
from expunge.harness.rules import GridRules, SeedParity, seed_parity
from expunge.metrics.aggregate import format_mean_ci
from expunge.record import RunRecord
from expunge.tasks.base import get_task


class MissingPlotly(ExpungeError, ImportError):
    """The HTML report needs plotly (the ``report`` extra)."""


@dataclass
class Group:
    """One method (label) on one request of one dataset and model, over seeds; a sequential request's records hold
    every step of every seed."""

    dataset: str
    model: str
    request: str
    label: str
    records: list[RunRecord] = field(default_factory=list)
    keys: list[tuple[str, str | None]] = field(default_factory=list)  # (run_key, request_key) of each record

    @property
    def kind(self) -> str:
        """The request's kind: "class", "random", ... or the scenario's name ("sequential")."""
        first = self.records[0]
        return str(first.extra.get("scenario") or first.request.get("kind") or self.request.split(":", 1)[0])

    @property
    def sequential(self) -> bool:
        return any("step" in r.extra for r in self.records)

    def finals(self) -> list[RunRecord]:
        """One record per seed: the last step of a sequential stream (what the table reports), else the record."""
        last: dict[int, RunRecord] = {}
        for r in self.records:
            if r.seed not in last or int(r.extra.get("step", 0)) >= int(last[r.seed].extra.get("step", 0)):
                last[r.seed] = r
        return [last[s] for s in sorted(last)]


def load_groups(directory: str | Path) -> tuple[list[Group], dict[str, Any]]:
    """The stored records of a bench folder (or of its exported JSON Lines) grouped by (dataset, model, request,
    label), in grid order, and the store's counts ``{"runs", "records", "failed"}``. A missing folder or store, or one
    without a single record, is a :class:`~expunge.harness.results.NoResults`."""
    from expunge.harness.compact import open_results
    from expunge.harness.results import NoResults

    with open_results(directory) as rs:  # a bench folder, or a committed one (runs.jsonl)
        rows = rs.conn.execute("SELECT request, status, record, run_key, request_key FROM runs ORDER BY id").fetchall()
    groups: dict[tuple[str, ...], Group] = {}
    for request, _, doc, run_key, req_key in rows:
        if doc is None:
            continue
        rec = RunRecord.from_json(json.loads(doc))
        key = (rec.dataset, rec.model, str(request), rec.label or rec.method)
        group = groups.setdefault(key, Group(*key))
        group.records.append(rec)
        group.keys.append((run_key, req_key))
    counts = {"runs": len(rows), "records": sum(r[2] is not None for r in rows),
              "failed": sum(r[1] == "failed" for r in rows)}
    if not groups:
        raise NoResults(f"{directory} holds no run record to report ({counts['runs']} stored run(s), all failed or "
                        "none). Fix: run the grid with `expunge bench CONFIG --out DIR` (or --resume it) first")
    return list(groups.values()), counts


@dataclass(frozen=True)
class Row:
    """One line of the screening table, every cell already formatted."""

    group: Group
    parity: SeedParity
    cells: dict[str, str]


def key_metrics(groups: Sequence[Group]) -> list[str]:
    """The parity criteria of the grid's tasks, in order (classification: forget_acc, test_acc, mia_loss_auc), then
    the per-example criteria some record carries (ulira_auc, klom_p95_forget)."""
    out: list[str] = []
    records = [r for g in groups for r in g.records]
    for task in dict.fromkeys(r.task for r in records):
        out += [m for m in get_task(task).parity_criteria if m not in out]
        out += [m for m in get_task(task).per_example_criteria if m not in out and any(m in r.metrics for r in records)]
    return out


def screening_rows(groups: Sequence[Group], rules: GridRules, metrics: Sequence[str]) -> list[Row]:
    """The table: per group, each key metric of the unlearned model, the Original and the Retrain (mean ± 95% CI
    over seeds; a sequential stream's last step), the signed gap unlearned − retrain, parity per seed over every
    record (each step of a stream), and the rules' speed-ups and precompute."""
    rows = []
    for g in groups:
        finals = g.finals()
        cells: dict[str, str] = {"seeds": str(len(finals))}
        for m in metrics:
            u = [r.metrics.get(m) for r in finals]
            o = [r.original.get(m) for r in finals]
            t = [r.retrain.get(m) for r in finals]
            cells[f"{m}:unlearned"] = format_mean_ci(u)
            cells[f"{m}:original"] = format_mean_ci(o)
            cells[f"{m}:retrain"] = format_mean_ci(t)
            gaps = [None if a is None or b is None else a - b for a, b in zip(u, t, strict=True)]
            cells[f"{m}:gap"] = _signed(format_mean_ci(gaps))
        cells["speed_up"] = _times(format_mean_ci([rules.speed_up(r) for r in finals], 1))
        cells["amortised"] = _times(format_mean_ci([rules.amortised_speed_up(r) for r in finals], 1))
        cells["precompute"] = precompute_cell(rules, finals)
        rows.append(Row(g, seed_parity(g.records), cells))
    return rows


def precompute_cell(rules: GridRules, records: Iterable[RunRecord]) -> str:
    """"none", or the scope and the mean seconds over seeds ("one-off 2.1 s", "per-request unknown")."""
    pres = [rules.precompute(r) for r in records]
    if all(p.scope == "none" for p in pres):
        return "none"
    scope = "per-request" if any(p.scope == "per-request" for p in pres) else "one-off"
    secs = [p.seconds for p in pres if p.seconds is not None]
    if not secs:
        return f"{scope} unknown"
    note = f" (unknown on {len(pres) - len(secs)}/{len(pres)})" if len(secs) < len(pres) else ""
    mean = sum(secs) / len(secs)
    return f"{scope} {mean:.1f} s{note}" if mean >= 10 else f"{scope} {mean:.2g} s{note}"


def _signed(cell: str) -> str:
    return cell if cell.startswith(("-", "—")) else "+" + cell


def _times(cell: str) -> str:
    return cell if cell.startswith("—") else cell.replace(" ±", "× ±", 1) if " ±" in cell else cell + "×"


def table_html(rows: Sequence[Row], metrics: Sequence[str]) -> str:
    """The screening table as an HTML ``<table id="screening">``, one ``<tr class="row">`` per method and request."""
    e = html.escape
    head1 = "".join(f'<th colspan="4">{e(m)}</th>' for m in metrics)
    head2 = "".join("<th>unlearned</th><th>original</th><th>retrain</th><th>gap</th>" for _ in metrics)
    out = ['<table id="screening"><thead>',
           f'<tr><th rowspan="2">data/model</th><th rowspan="2">request</th><th rowspan="2">method</th>'
           f'<th rowspan="2">seeds</th>{head1}<th rowspan="2">parity</th><th rowspan="2">speed-up</th>'
           f'<th rowspan="2">amortised speed-up</th><th rowspan="2">precompute</th></tr>',
           f"<tr>{head2}</tr></thead><tbody>"]
    for row in rows:
        g, p, c = row.group, row.parity, row.cells
        cls = "parity" if p.all_seeds else "partial" if p.at_parity else "miss"
        why = "; ".join(f"seed {s}: {', '.join(v.label for v in vs)}" for s, vs in sorted(p.verdicts.items()))
        metric_cells = "".join(f"<td>{e(c[f'{m}:{part}'])}</td>" for m in metrics
                               for part in ("unlearned", "original", "retrain", "gap"))
        out.append(f'<tr class="row"><td>{e(g.dataset)}/{e(g.model)}</td><td>{e(g.request)}</td>'
                   f"<td>{e(g.label)}</td><td>{c['seeds']}</td>{metric_cells}"
                   f'<td class="{cls}" title="{e(why)}">{e(p.label)}{e(p.power_note)}{e(p.measure_note)}</td>'
                   f"<td>{e(c['speed_up'])}</td><td>{e(c['amortised'])}</td><td>{e(c['precompute'])}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f2f2f2}td:nth-child(-n+3){text-align:left}.parity{background:#d9f2d9}.partial{background:#fff2cc}
.miss{background:#f8d7d7}.note{color:#555;font-size:13px;max-width:70em}.plot{margin:1em 0}"""


def render(groups: Sequence[Group], *, title: str, counts: dict[str, Any],
           store_costs: Mapping[tuple[str, str], float] | None = None,
           distributions: Mapping[tuple[str, str, str], Mapping[str, Any]] | None = None) -> str:
    """The whole page as one string: CSS, Plotly's JavaScript and every figure inline (no external reference).
    ``distributions``: the store's per-example summaries (:meth:`ResultStore.distributions`), None for a store
    written before they existed."""
    try:
        import plotly.offline
    except ImportError as exc:
        raise MissingPlotly("the HTML report draws its plots with plotly, which is not installed. Fix: pip install "
                            "'expunge[report]' (or pip install plotly)") from exc
    from expunge.harness import report_dists
    from expunge.harness.report_plots import figures

    records = [r for g in groups for r in g.records]
    rules = GridRules(records, store_costs or {})
    metrics = key_metrics(groups)
    rows = screening_rows(groups, rules, metrics)
    e = html.escape
    drawn = [*figures(groups, rules), *report_dists.figures(groups, distributions)]
    parts = [f"<h2>{e(name)}</h2>\n{note}\n" + ("" if fig is None else fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=f"plot-{i}", config={"displaylogo": False}))
             for i, (name, note, fig) in enumerate(drawn)]
    failed = f", {counts['failed']} failed cell(s) without a record (see `expunge results`)" if counts["failed"] else ""
    summary = (f"{len(records)} run record(s) in {len(groups)} method × request group(s){failed}. Table cells: mean ± "
               "95% Student-t half-width over seeds (a sequential stream: its last step); gap = unlearned − retrain; "
               "parity is judged per seed (every step of a stream), criteria without power are listed and never "
               "count as met; speed-up = fastest like-for-like retrain / unlearning time; amortised speed-up adds the "
               "precompute (one-off: shared by the grid's requests on the Original; per-request: paid in full).")
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style>", f"<script>{plotly.offline.get_plotlyjs()}</script>", "</head><body>",
        f"<h1>{e(title)}</h1>", f'<p class="note">{e(summary)}</p>', "<h2>Screening table</h2>",
        table_html(rows, metrics), f'<p class="note" id="distributions">{e(report_dists.page_note(distributions))}</p>',
        *parts,
        "</body></html>"])


def write_report(directory: str | Path, out: str | Path, *, title: str | None = None,
                 store_costs: Mapping[tuple[str, str], float] | None = None) -> dict[str, Any]:
    """Read the bench folder ``directory``, write the report to ``out`` atomically; return ``{"out", "bytes",
    "groups", "records", "plots"}``. ``store_costs`` (:func:`expunge.harness.rules.statistic_costs` of the grid's
    artifact store) prices the precompute that a cache hit hid and no run of the grid measured; without it such a
    precompute reads "unknown". Nothing is written when the folder holds no record or plotly is missing."""
    from expunge.harness.report_dists import load_distributions

    groups, counts = load_groups(directory)
    text = render(groups, title=title or f"expunge bench report: {Path(directory).name}", counts=counts,
                  store_costs=store_costs, distributions=load_distributions(directory))
    atomic_write_text(out, text)
    return {"out": str(out), "bytes": len(text.encode()), "groups": len(groups), "records": counts["records"],
            "plots": text.count('class="plotly-graph-div"')}
