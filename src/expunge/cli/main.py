"""``expunge`` command line: demo, train, unlearn, evaluate, aggregate, methods, metrics (scenarios and tuning in
``cli/tune.py``).

User mistakes (bad forget spec, unknown method, bad hyperparameter, missing data) print one ``error: ...`` line and
exit with status 2 — no traceback. ``--json`` prints exactly one JSON document on stdout; progress bars go to stderr.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from expunge.cli.bench import register as register_bench_commands
from expunge.cli.options import (
    DataDirOpt,
    DataOpt,
    ForgetOpt,
    JsonOpt,
    ModelOpt,
    PaperDefaultsOpt,
    ParamOpt,
    PresetOpt,
    SeedOpt,
    StoreOpt,
    TargetOpt,
    TaskOpt,
    ThreadsOpt,
    apply_threads,
    check_folder,
    check_model_fits,
    dir_arg,
    emit_json,
    list_registered,
    open_store,
    parse_params,
    with_target,
)
from expunge.cli.purge import register as register_purge_command
from expunge.cli.report import register as register_report_command
from expunge.cli.serve import register as register_serve_command
from expunge.cli.tune import register as register_scenario_commands
from expunge.errors import ExpungeError, ExpungeWarning

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Machine unlearning with a retrain oracle and side-by-side metrics.")





@app.command()
def unlearn(
    data: DataOpt = "digits",
    model: ModelOpt = "cnn",
    forget: ForgetOpt = "class:3",
    method: Annotated[str, typer.Option("--method", help="method name (see `expunge methods`)")] = "ssd",
    param: ParamOpt = None,
    preset: PresetOpt = None,
    paper_defaults: PaperDefaultsOpt = False,
    task: TaskOpt = None,
    target: TargetOpt = None,
    seed: SeedOpt = 0,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    threads: ThreadsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Unlearn a request with one method; report it beside the Original and the Retrain.

    Hyperparameters: a shipped preset tuned for this dataset, model and request (see `expunge tune`) when one
    exists, else the paper's defaults; the record's `params_source` says which. --paper-defaults always uses the
    paper's values; --param NAME=VALUE overrides either.

    Exit status: 0 when the run changed the model; 3 (after printing the record) when its status is "no change"
    (weights bit-identical to the Original) or "diverged" (non-finite outputs, or every step rolled back by the
    non-finite guard); 2 for bad input."""
    st = open_store(store)  # every input is checked before any training, cheapest first
    from expunge import api
    from expunge.report import failed_exit_code

    data = with_target(data, target)
    ds = api.load(data, forget=forget, task=task, data_dir=dir_arg(data_dir))
    check_model_fits(ds, model)
    apply_threads(threads)
    request = api.as_request(forget).resolve(ds, seed=seed).request  # ids covering whole classes: a class request
    params, source = api.resolve_params(method, dataset=ds.name, model=model, forget=request,
                                        overrides=parse_params(param or []), preset=preset,
                                        paper_defaults=paper_defaults, task=ds.task)
    prep = api.prepare(ds, model, request, seed=seed, store=st, progress=not as_json)
    record, _ = api.unlearn(prep, method, params, params_source=source)
    if as_json:
        emit_json(record.to_json())
    else:
        from expunge.report import print_table, summary_line

        print_table([record], f"{method} on {data}/{model}, forget {forget}, seed {seed} ({source})")
        typer.echo(summary_line([record]))
    if code := failed_exit_code([record], to_stderr=as_json):
        sys.exit(code)


@app.command("evaluate")
def evaluate_cmd(
    run: Annotated[str, typer.Argument(help="unlearned_key from a run record, or the run's store folder")],
    tier: Annotated[int, typer.Option("--tier", min=0, max=2, help="every metric up to this cost tier")] = 0,
    metrics: Annotated[str | None, typer.Option("--metrics", help="comma-separated metric names")] = None,
    shadows: Annotated[int | None, typer.Option("--shadows", min=2, help="tier 2: U-LiRA shadow models K (even; "
                                                                         "default 16)")] = None,
    models: Annotated[int | None, typer.Option("--models", min=2, help="tier 2: seeded models N for the NeurIPS'23 "
                                                                       "score and KLoM (default 8)")] = None,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate an existing unlearned model beside its Original and Retrain (tier 2 trains and caches many models;
    the cost estimate is printed on stderr first)."""
    import logging

    st = open_store(store, write=tier > 0)  # tier 0 only reads the store; tiers 1-2 cache the models they train
    from expunge.evaluation import evaluate_run

    names = _metric_names(metrics)
    if shadows is not None or models is not None:  # an odd K fails here, not as a None metric after the run loads
        from expunge.metrics._tier2 import Tier2Config

        Tier2Config(**{k: v for k, v in (("shadows", shadows), ("models", models)) if v is not None})
    tier2_log, handler = logging.getLogger("expunge.tier2"), logging.StreamHandler(sys.stderr)
    tier2_log.addHandler(handler)  # the tier-2 cost estimate, on stderr before any training
    tier2_log.setLevel(logging.INFO)
    try:
        result = evaluate_run(run, store=st, tier=tier, metrics=names,
                              data_dir=dir_arg(data_dir), extras={"tier2": {"shadows": shadows, "models": models}})
    finally:
        tier2_log.removeHandler(handler)
    if as_json:
        emit_json(result.to_json())
        return
    for name, value in result.metrics.items():
        o, r = result.original.get(name), result.retrain.get(name)
        flag = "  [no power]" if result.power.get(name) == "no power" else ""
        typer.echo(f"{name:<28} unlearned {_num(value)}  original {_num(o)}  retrain {_num(r)}{flag}")


@app.command("aggregate")
def aggregate_cmd(
    files: Annotated[list[Path], typer.Argument(help="JSON files, each one run record or a list of them (the output "
                                                     "of `unlearn --json` / `scenario --json` at several seeds)")],
    bootstrap: Annotated[bool, typer.Option("--bootstrap", help="BCa bootstrap interval instead of Student-t")] = False,
    confidence: Annotated[float, typer.Option("--confidence", min=0.5, max=0.999)] = 0.95,
    as_json: JsonOpt = False,
) -> None:
    """Mean ± confidence interval over seeds of every metric, per method and request (number of seeds stated)."""
    import json

    docs = []
    for f in files:  # every file is read and checked before any statistic is computed (or torch imported)
        try:
            text = f.read_text(encoding="utf-8")
            doc = json.loads(text) if text.strip() else None
        except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError and UnicodeDecodeError
            raise ExpungeError(f"cannot read run records from {f}: {exc}. Fix: pass the JSON files that `expunge "
                               "unlearn --json` or `expunge scenario --json` print") from exc
        if doc is None and not text.strip():
            raise ExpungeError(f"{f} is empty. Fix: pass the JSON files that `expunge unlearn --json` or `expunge "
                               "scenario --json` print")
        docs.append((f, doc))
    from expunge.metrics.aggregate import aggregate_groups, check_records, format_interval

    records = [rec for f, doc in docs for rec in check_records(doc, source=str(f))]
    try:
        groups = aggregate_groups(records, confidence=confidence, method="bootstrap" if bootstrap else "t")
    except ValueError as exc:
        raise ExpungeError(str(exc)) from exc
    if as_json:
        emit_json(groups)
        return
    kind = "BCa bootstrap" if bootstrap else "Student-t"
    for g in groups:
        where = " ".join(f"{k}={g[k]}" for k in ("scenario", "step") if k in g)
        typer.echo(f"\n{g['method']} {g.get('params') or ''} on {g['dataset']}/{g['model']}, forget {g['forget']} "
                   f"{where}— {g['n_seeds']} seed(s) {g['seeds']}, mean ± {confidence:.0%} {kind} half-width")
        typer.echo(f"{'metric':<28} {'unlearned':>17} {'original':>17} {'retrain':>17} {'|gap| to retrain':>17}")
        for name, agg in g["metrics"].items():
            cells = [format_interval(agg), format_interval(g["original"].get(name)),
                     format_interval(g["retrain"].get(name)), format_interval(g["gap_to_retrain"].get(name))]
            typer.echo(f"{name:<28} " + " ".join(f"{c:>17}" for c in cells))
        typer.echo(f"{'time_ratio_to_retrain':<28} {format_interval(g['times']['time_ratio_to_retrain'], 4):>17}")


def _metric_names(metrics: str | None) -> list[str] | None:
    """``--metrics a,b`` as names, each checked against the registry before the run is loaded."""
    if metrics is None:
        return None
    from expunge.metrics.base import METRICS

    names = [m.strip() for m in metrics.split(",") if m.strip()]
    if not names:
        raise ExpungeError(f"--metrics {metrics!r} names no metric. Fix: comma-separated names from `expunge metrics`")
    for name in names:
        METRICS.get(name)  # UnknownName, with suggestions
    return names


def _num(v: float | None) -> str:
    return "   —  " if v is None else f"{v:.4f}"


@app.command()
def train(data: DataOpt = "digits", model: ModelOpt = "cnn", seed: SeedOpt = 0, store: StoreOpt = None,
          data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Train (or load from the cache) the original model."""
    st = open_store(store)
    from expunge.data.datasets import load_dataset
    from expunge.train.oracle import default_recipe, model_spec_for, train_original

    ds = load_dataset(data, data_dir=dir_arg(data_dir))
    check_model_fits(ds, model)
    trained = train_original(ds, model_spec_for(ds, model), default_recipe(ds.name), seed=seed, store=st,
                             progress=not as_json)
    info = {"key": trained.key, "cache_hit": trained.cache_hit, "train_time_s": trained.train_time_s,
            "path": str(st.path("original", trained.key)), "dataset": ds.describe()}
    if as_json:
        emit_json(info)
    else:
        typer.echo(f"original {data}/{model} seed {seed}: {'cache hit' if trained.cache_hit else 'trained'} "
                   f"({trained.train_time_s:.1f} s) -> {info['path']}")


@app.command("methods")
def list_methods(as_json: JsonOpt = False) -> None:
    """List unlearning methods with the data they access, the tasks they support and their paper defaults."""
    from expunge.methods.base import METHODS

    def line(d: dict[str, Any]) -> str:
        defaults = ", ".join(f"{p['name']}={p['default']}" for p in d["params"])
        return (f"{d['name']:<16} access={d['access']:<24} {d['summary']}\n{'':<16} {d['paper']}\n"
                f"{'':<16} tasks: {', '.join(d['tasks'])}; defaults: {defaults or '-'}")

    list_registered(METHODS, as_json, line)


@app.command("metrics")
def list_metrics(as_json: JsonOpt = False) -> None:
    """List metrics with their definition, direction and tier."""
    from expunge.metrics.base import METRICS

    def line(d: dict[str, Any]) -> str:
        inputs = [*d["needs"], *(f"run.{f}" for f in d.get("run_needs", ()))]
        needs = f"  (needs {', '.join(inputs)})" if inputs else ""
        tasks = "" if d["tasks"] == ["classification"] else f"  (tasks: {', '.join(d['tasks'])})"
        return f"{d['name']:<26} tier {d['tier']}  [{d['direction']}]  {d['definition']}{needs}{tasks}"

    list_registered(METRICS, as_json, line)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="where to write results")] = Path("runs/demo"),
    data: DataOpt = "digits",
    model: ModelOpt = "cnn",
    forget: ForgetOpt = "class:3",
    seed: SeedOpt = 0,
    store: StoreOpt = None,
    methods: Annotated[str | None, typer.Option("--methods", help="comma-separated methods (default: nine "
                                                                  "representative ones)")] = None,
    all_methods: Annotated[bool, typer.Option("--all", help="every registered method")] = False,
    paper_defaults: PaperDefaultsOpt = False,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="torch threads (default: the cores not "
                                                                         "busy with other work)")] = None,
) -> None:
    """Train, build the oracle, run representative methods on a class request; print and save the comparison with a
    parity verdict and speed-up per method, and name the fastest method at parity."""
    names = None if methods is None else [m.strip() for m in methods.split(",") if m.strip()]
    if names is not None and not names:  # else an empty list would quietly run the default methods
        raise ExpungeError(f"--methods {methods!r} names no method. Fix: comma-separated names from `expunge "
                           "methods`, or leave it out for the default set")
    check_folder(out, "--out")  # the results are written after minutes of training: check the folder first
    st = open_store(store)
    from expunge import api  # after the checks above: importing torch takes seconds
    from expunge.demo import run_demo

    check_model_fits(api.load(data, forget=forget), model)
    run_demo(out=out, data=data, model=model, forget=forget, seed=seed, store=st, methods=names,
             all_methods=all_methods, paper_defaults=paper_defaults, threads=threads)


register_scenario_commands(app)  # expunge scenario / scenarios / tune (expunge.cli.tune)
register_purge_command(app)  # expunge purge (expunge.cli.purge)
register_bench_commands(app)  # expunge bench / results (expunge.cli.bench)
register_report_command(app)  # expunge report (expunge.cli.report)
register_serve_command(app)  # expunge serve (expunge.cli.serve)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    """expunge's own warnings (a large forget set, duplicate content) as one ``warning: ...`` line on stderr."""
    if issubclass(category, ExpungeWarning):
        typer.echo(f"warning: {message}", err=True)
    else:
        _default_show_warning(message, category, filename, lineno, file, line)


_default_show_warning = warnings.showwarning


def main() -> None:
    """Run the CLI: a user mistake, a usage error included, is one ``error: ...`` line on stderr and exit status 2."""
    warnings.showwarning = _show_warning
    try:
        code = app(prog_name="expunge", standalone_mode=False)
    except ExpungeError as exc:
        _fail(str(exc))
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        if not is_click_error(exc):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `expunge`: the help text, as click itself shows it
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2)
        ctx = getattr(exc, "ctx", None)
        path = getattr(ctx, "command_path", None) or "expunge"
        _fail(f"{exc.format_message()} (see `{path} --help`)")  # type: ignore[attr-defined]
    if isinstance(code, int) and code:  # typer.Exit(code) or Ctrl-C (130), returned in non-standalone mode
        sys.exit(code)


def is_click_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of click's usage errors (bad option value, unknown option or command, missing
    argument), whichever copy of click raised it: typer 0.2x vendors click as ``typer._click``, older typer used
    ``click`` itself, so ``isinstance(exc, click.ClickException)`` alone misses them. Matched by the class name in
    the MRO and the ``format_message`` method the handler calls."""
    return (any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)
            and callable(getattr(exc, "format_message", None)))


def _fail(message: str) -> None:
    """Print ``error: message`` as one line on stderr and exit with status 2 (messages may hold newlines)."""
    typer.echo("error: " + " ".join(message.split()), err=True)
    sys.exit(2)


if __name__ == "__main__":
    main()

