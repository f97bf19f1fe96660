"""Side-by-side tables of run records: markdown for files, rich for the terminal.

Rows: Original, Retrain, then each run; columns: the task's headline metrics (each run's cell followed by its gap to
Retrain), the parity verdict (:mod:`expunge.verdict`), unlearning time and the speed-up over retraining (×). A run
whose status is "no change" or "diverged" (:mod:`expunge.record`) shows the status as its verdict, in upper case,
and :func:`status_lines` says why under the table.
"""

from __future__ import annotations

from collections.abc import Sequence

from expunge.record import RunRecord
from expunge.tasks import get_task
from expunge.verdict import judge


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def speed_up_text(value: float | None) -> str:
    """A speed-up as people read it: ``12×``, ``1.4×``, ``0.8×``."""
    if value is None:
        return "—"
    return f"{value:,.0f}×" if value >= 10 else f"{value:.1f}×"


def headline_metrics(records: Sequence[RunRecord]) -> tuple[str, ...]:
    return get_task(records[0].task).headline_metrics if records else ()


def table_rows(records: Sequence[RunRecord], metrics: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    metrics = tuple(metrics or headline_metrics(records))
    header = ["model", *metrics, "verdict", "time (s)", "speed-up"]
    if not records:
        return header, []
    first = records[0]
    rows = [["Original", *(_fmt(first.original.get(m)) for m in metrics), "", "—", "—"],
            ["Retrain", *(_fmt(first.retrain.get(m)) for m in metrics), "", _fmt(first.retrain_time_s, 2), "1×"]]
    for r in records:
        cells = []
        for m in metrics:
            v, g = r.metrics.get(m), r.gap_to_retrain.get(m)
            cells.append(_fmt(v) if g is None else f"{_fmt(v)} (Δ{g:.3f})")
        verdict = judge(r).label.upper() if r.failed else judge(r).label
        rows.append([r.label, *cells, verdict, _fmt(r.time_s, 2), speed_up_text(r.speed_up)])
    return header, rows


EXIT_NOT_UNLEARNED = 3  # `expunge unlearn` / `scenario`: some run's status is "no change" or "diverged"


def failed_exit_code(records: Sequence[RunRecord], *, to_stderr: bool = False) -> int:
    """:data:`EXIT_NOT_UNLEARNED` when any run unlearned nothing or diverged (its :func:`status_lines` also go to
    stderr with ``to_stderr``: a ``--json`` caller gets them beside the JSON), else 0."""
    lines = status_lines(records)
    if lines and to_stderr:
        import sys

        sys.stderr.write("".join(f"{line}\n" for line in lines))
    return EXIT_NOT_UNLEARNED if lines else 0


def status_lines(records: Sequence[RunRecord]) -> list[str]:
    """One line per run that unlearned nothing ("no change") or diverged, saying why; empty when every run is ok."""
    return [f"{r.label}: {r.status.upper()} — {r.status_reason or 'no reason recorded'}" for r in records if r.failed]


def fastest_at_parity(records: Sequence[RunRecord]) -> RunRecord | None:
    """The record at parity with the highest speed-up (exact retraining methods included), or None."""
    at_parity = [r for r in records if judge(r).at_parity and r.speed_up is not None]
    return max(at_parity, key=lambda r: r.speed_up or 0.0, default=None)


def summary_line(records: Sequence[RunRecord]) -> str:
    """One line naming the fastest method at parity with the Retrain (or saying that none is)."""
    best = fastest_at_parity(records)
    if best is None:
        return "No method reached parity with the Retrain on this request."
    return (f"Fastest at parity with the Retrain: {best.label} — {speed_up_text(best.speed_up)} faster than "
            f"retraining ({best.time_s:.2f} s vs {best.retrain_time_s:.2f} s).")


def markdown_table(records: Sequence[RunRecord], metrics: Sequence[str] | None = None) -> str:
    header, rows = table_rows(records, metrics)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    notes = [f"\n**{line}**" for line in status_lines(records)]
    return "\n".join(lines) + "\n" + "".join(f"{n}\n" for n in notes)


def print_table(records: Sequence[RunRecord], title: str, metrics: Sequence[str] | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    header, rows = table_rows(records, metrics)
    table = Table(title=title, caption="Δ = absolute gap to Retrain (lower is better); verdict: retrain parity on "
                                       "the task's criteria (expunge.verdict)")
    for h in header:
        table.add_column(h, justify="left" if h in ("model", "verdict") else "right")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))  # "ssd [tuned]": rich would take "[tuned]" for markup
    console = Console(stderr=False)
    if not console.is_terminal or console.width < 140:
        console = Console(width=170)  # the table is wide; do not squeeze it into 80 columns in logs
    console.print(table)
    for line in status_lines(records):
        console.print(escape(line), style="bold red")
