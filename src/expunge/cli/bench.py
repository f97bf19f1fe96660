"""CLI commands of the benchmark harness: ``expunge bench CONFIG.yaml`` and ``expunge results DIR``.

Hooked into :mod:`expunge.cli.main` by :func:`register`. The config and every folder are checked before anything is
trained or written; errors are one ``error: ...`` line and exit status 2.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from expunge.cli.options import DataDirOpt, JsonOpt, StoreOpt, check_folder, dir_arg, emit_json, open_store
from expunge.errors import ExpungeError

HEADLINE = ("forget_acc", "test_acc", "mia_loss_auc")


def bench(
    config: Annotated[Path, typer.Argument(help="grid config (YAML; see configs/digits.yaml and docs/harness.md)")],
    out: Annotated[Path | None, typer.Option("--out", help="result folder (default runs/bench/CONFIG-NAME)")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue a grid in --out: finished cells are kept, "
                                                          "the rest are run")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="with --resume: run again the cells stored "
                                                                      "as failed (an exception)")] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="cells run at once: local worker processes (1: "
                                                                  "in this process), or Ray tasks")] = 1,
    executor: Annotated[Literal["local", "ray"], typer.Option("--executor", help="local: this process or a process "
                                                              "pool; ray: Ray tasks on a local cluster (127.0.0.1) or "
                                                              "on --ray-address (extra `ray`)")] = "local",
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="with --executor ray: an existing "
                                                    "cluster (HOST:PORT, or auto) instead of a local one")] = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a grid (datasets × models × requests × seeds × methods) from one config into a SQLite result store.

    Each cell is keyed by its content: with --resume, cells already stored are not recomputed, and a changed
    hyperparameter recomputes only its cells. A failing cell is stored with its error and the grid goes on.
    Exit status: 0 when every cell is ok; 3 when some cell failed, diverged or changed nothing, or was lost with a
    worker process (not stored: --resume runs it); 2 for bad input."""
    from expunge.harness.config import load_config
    from expunge.harness.results import DB_NAME, BenchLock, ResultStore

    if retry_failed and not resume:
        raise ExpungeError("--retry-failed continues a grid: pass --resume with it")
    if ray_address and executor != "ray":
        raise ExpungeError(f"--ray-address {ray_address!r} is for Ray: pass --executor ray with it")
    cfg = load_config(config)
    out = out or Path("runs/bench") / (cfg.name or config.stem)
    check_folder(out, "--out")
    st = open_store(store)
    from expunge.harness.grid import expand
    from expunge.harness.run import run_grid

    cells = expand(cfg, data_dir=dir_arg(data_dir))  # names, parameters, requests: checked before anything is written
    if (out / DB_NAME).exists() and not resume:
        raise ExpungeError(f"{out} already holds bench results. Fix: pass --resume to continue that grid, or give "
                           "another --out folder")
    runner = _executor(executor, workers, ray_address)  # Ray missing or unreachable: before anything is written
    try:
        with BenchLock(out), ResultStore(out) as results:
            results.set_meta(config=config.read_text(encoding="utf-8"), config_path=str(config))
            progress = None if as_json else _RichProgress(cfg.title)
            summary = run_grid(cells, results, runner, store_root=str(st.root), progress=progress,
                               data_dir=dir_arg(data_dir), retry_failed=retry_failed)
            statuses = [r["status"] for r in results.runs()]
    finally:
        runner.close()
    bad = sum(s != "ok" for s in statuses)
    if as_json:
        emit_json({"out": str(out), **summary.to_json()})
    else:
        typer.echo(f"{cfg.title}: {summary.total} cells ({summary.skipped} already done, {summary.ok} ok, "
                   f"{summary.failed} not ok) in {summary.wall_s:.1f} s -> {out}. See `expunge results {out}`")
    if summary.lost:
        typer.echo(f"warning: {summary.lost} cell(s) were lost with a worker process ({summary.lost_error}); they are "
                   f"not stored. Fix: run again with --resume", err=True)
    if bad or summary.lost:
        raise SystemExit(3)


def _executor(kind: str, workers: int, ray_address: str | None) -> Any:
    """The executor of ``--executor``; Ray's cluster is started (or connected to) here."""
    if kind == "ray":
        from expunge.harness.ray_executor import RayExecutor

        ray = RayExecutor(workers, address=ray_address)
        ray.start()
        return ray
    from expunge.harness.run import executor_for

    return executor_for(workers)


def results_cmd(
    directory: Annotated[Path, typer.Argument(help="the --out folder of an `expunge bench` run, or a folder of "
                                                   "exported JSON Lines (runs.jsonl[.gz], as committed)")],
    fmt: Annotated[Literal["table", "csv", "json", "jsonl", "markdown"], typer.Option(
        "--format", help="table (default), csv (long: one row per run, metric and role), json (the run records and "
                         "their summaries), "
                         "jsonl (the compact committed form: runs.jsonl[.gz], baselines.jsonl, meta.json written to "
                         "--to) or markdown (the benchmark page: per request, each method's verdicts)")] = "table",
    to: Annotated[Path | None, typer.Option("--to", help="with --format jsonl: the folder to write the files to "
                                                         "(default: DIR)")] = None,
    title: Annotated[str | None, typer.Option("--title", help="with --format markdown: the page's heading "
                                                              "(default: the grid's title or name)")] = None,
) -> None:
    """Show a bench folder's results: a table, a pandas-friendly long CSV, the full run records as JSON, the compact
    JSON Lines a store is rebuilt from (``expunge results EXPORTED_DIR`` reads them back), or the markdown page."""
    check_folder(directory, "DIR", write=False)
    if to is not None and fmt != "jsonl":
        raise ExpungeError("--to is where --format jsonl writes its files: pass --format jsonl with it")
    if to is not None:
        check_folder(to, "--to")
    from expunge.harness.compact import export, open_results

    with open_results(directory) as rs:
        if fmt == "csv":
            rows = list(rs.long_rows())
            fields = ["run_key", "dataset", "model", "request", "seed", "method", "label", "status", "metric", "role",
                      "value", "error"]
            writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        elif fmt == "json":
            runs = rs.runs()
            records = {r["run_key"]: r for r in rs.conn.execute("SELECT run_key, record FROM runs")}
            import json

            emit_json([{**run, "record": json.loads(records[run["run_key"]]["record"])
                        if records[run["run_key"]]["record"] else None,
                        "distributions": rs.run_distributions(run["run_key"], run["request_key"])} for run in runs])
        elif fmt == "jsonl":
            sizes = export(rs, to or directory)
            typer.echo(f"wrote {', '.join(f'{k} ({v:,} bytes)' for k, v in sizes.items())} to {to or directory}")
        elif fmt == "markdown":
            from expunge.harness.tables import markdown

            typer.echo(markdown(rs, title=title), nl=False)
        else:
            _print_table(rs)


def _print_table(rs: Any) -> None:
    import json

    head = f"{'method':<18} {'data/model':<14} {'request':<22} {'seed':>4} {'status':<9}"
    head += "".join(f" {m + ' (retrain)':>24}" for m in HEADLINE) + f" {'time_s':>8}"
    typer.echo(head)
    for label, data, model, request, seed, status, error, doc in rs.conn.execute(
            "SELECT label, dataset, model, request, seed, status, error, record FROM runs ORDER BY id"):
        rec = json.loads(doc) if doc else {}
        cells = []
        for m in HEADLINE:
            u, r = (rec.get("metrics") or {}).get(m), (rec.get("retrain") or {}).get(m)
            cells.append(f" {_num(u):>11} ({_num(r):>10})" if rec else f" {'':>24}")
        time_s = rec.get("time_s")
        line = (f"{label:<18} {data + '/' + model:<14} {request:<22} {seed:>4} {status:<9}" + "".join(cells)
                + f" {_num(time_s, 2):>8}")
        typer.echo(line + (f"  {error}" if status == "failed" and error else ""))


def _num(v: Any, digits: int = 4) -> str:
    return "—" if not isinstance(v, int | float) else f"{v:.{digits}f}"


class _RichProgress:
    """One bar on stderr: cells done of the grid, failed so far, elapsed and ETA."""

    def __init__(self, title: str) -> None:
        self.title, self.failed, self.bar, self.task = title, 0, None, None

    def start(self, total: int, done: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), "eta", TimeRemainingColumn(),
                            console=Console(stderr=True), transient=False)
        self.bar.start()
        self.task = self.bar.add_task(self._describe(), total=total, completed=done)

    def _describe(self) -> str:
        return f"{self.title}: cells (failed {self.failed})"

    def advance(self, status: str) -> None:
        self.failed += status != "ok"
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=self._describe())  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
    app.command("results")(results_cmd)
