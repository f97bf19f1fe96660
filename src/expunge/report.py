"""Side-by-side tables of run records: markdown for files, rich for the terminal.

Rows: Original, Retrain, then each method; columns: the headline metrics, each method cell followed by its gap to
Retrain, then unlearning time and its ratio to the retrain time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from expunge.experiment import HEADLINE_METRICS


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def table_rows(records: Sequence[dict[str, Any]], metrics: Sequence[str] = HEADLINE_METRICS) -> \
        tuple[list[str], list[list[str]]]:
    header = ["model", *metrics, "time (s)", "time / retrain"]
    if not records:
        return header, []
    first = records[0]
    rows = [["Original", *(_fmt(first["original"].get(m)) for m in metrics), "—", "—"],
            ["Retrain", *(_fmt(first["retrain"].get(m)) for m in metrics), _fmt(first["retrain_time_s"], 2), "1"]]
    for r in records:
        cells = []
        for m in metrics:
            v, g = r["metrics"].get(m), r["gap_to_retrain"].get(m)
            cells.append(_fmt(v) if g is None else f"{_fmt(v)} (Δ{g:.3f})")
        ratio = r.get("time_ratio_to_retrain")
        label = f"{r['method']} [tuned]" if r.get("preset") else r["method"]  # a preset's values, not the paper's
        rows.append([label, *cells, _fmt(r["time_s"], 2), "—" if ratio is None else f"{ratio:.4f}"])
    return header, rows


def markdown_table(records: Sequence[dict[str, Any]], metrics: Sequence[str] = HEADLINE_METRICS) -> str:
    header, rows = table_rows(records, metrics)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def print_table(records: Sequence[dict[str, Any]], title: str, metrics: Sequence[str] = HEADLINE_METRICS) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    header, rows = table_rows(records, metrics)
    table = Table(title=title, caption="Δ = absolute gap to Retrain (lower is better)")
    for h in header:
        table.add_column(h, justify="left" if h == "model" else "right")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))  # "ssd [tuned]": rich would take "[tuned]" for markup
    console = Console(stderr=False)
    if not console.is_terminal or console.width < 140:
        console = Console(width=160)  # the table is wide; do not squeeze it into 80 columns in logs
    console.print(table)
