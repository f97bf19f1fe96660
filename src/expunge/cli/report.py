"""``expunge report DIR --out report.html``: the offline HTML report of a bench folder (:mod:`expunge.harness.report`).

Hooked into :mod:`expunge.cli.main` by :func:`register`. A missing folder, one without results, or a missing plotly is
one ``error: ...`` line and exit status 2, and nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from expunge.cli.options import JsonOpt, StoreOpt, check_folder, emit_json
from expunge.errors import InvalidPath


def report_cmd(
    directory: Annotated[Path, typer.Argument(help="the --out folder of an `expunge bench` run")],
    out: Annotated[Path | None, typer.Option("--out", help="HTML file to write (default DIR/report.html)")] = None,
    title: Annotated[str | None, typer.Option("--title", help="page title (default: the folder's name)")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write one self-contained HTML report of a bench folder (works offline: Plotly's JavaScript is inlined):
    the screening table (mean ± 95% CI over seeds, gaps, parity per seed, speed-up, amortised speed-up, precompute)
    and plots (accuracy vs speed-up, class-wise accuracy, gap closure on random requests, sequential curves).

    The artifact store the grid used (--store, default $EXPUNGE_CACHE; only read, and skipped when it does not exist)
    prices the precompute of statistics that were already cached when the grid ran."""
    if not directory.is_dir():
        raise InvalidPath(f"DIR {directory} is not a folder. Fix: pass the --out folder of an `expunge bench` run")
    out = out or directory / "report.html"
    if out.is_dir():
        raise InvalidPath(f"--out {out} is a folder. Fix: give the HTML file to write, e.g. {out / 'report.html'}")
    check_folder(out.parent, "--out")
    if store is not None and not store.is_dir():
        raise InvalidPath(f"--store {store} is not a folder. Fix: pass the artifact store the grid ran with")
    from expunge.harness.report import write_report
    from expunge.harness.rules import statistic_costs
    from expunge.store import ArtifactStore, default_store_root

    root = Path(store or default_store_root())
    costs = statistic_costs(ArtifactStore(root)) if root.is_dir() else {}
    info = write_report(directory, out, title=title, store_costs=costs)
    if as_json:
        emit_json(info)
    else:
        typer.echo(f"report: {info['groups']} method × request group(s), {info['records']} record(s), "
                   f"{info['plots']} plot(s), {info['bytes'] / 1e6:.1f} MB -> {out}")


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
