"""CLI commands for scenarios and tuning: ``expunge scenario``, ``expunge scenarios``, ``expunge tune``.

Hooked into :mod:`expunge.cli.main` by :func:`register`. Errors follow the main CLI's rule: an
:class:`~expunge.errors.ExpungeError` becomes one ``error: ...`` line and exit status 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from expunge.cli.options import (
    DataDirOpt,
    DataOpt,
    JsonOpt,
    ModelOpt,
    PaperDefaultsOpt,
    ParamOpt,
    PresetOpt,
    SeedOpt,
    StoreOpt,
    check_folder,
    check_model_fits,
    dir_arg,
    emit_json,
    list_registered,
    open_store,
    parse_params,
)
from expunge.errors import ExpungeError

SetOpt = Annotated[list[str] | None, typer.Option("--set", help="NAME=VALUE scenario parameter (see `expunge "
                                                                "scenarios`), e.g. --set classes=5")]


def scenario_params(sets: list[str] | None, extra_args: list[str]) -> dict[str, Any]:
    """``--set NAME=VALUE`` items plus every ``--NAME VALUE`` / ``--NAME=VALUE`` option the command did not declare:
    each scenario parameter is a flag (``--k 5`` = ``--set k=5``), validated by the scenario's Params."""
    out: dict[str, Any] = parse_params(sets or [], "--set")
    args = list(extra_args)
    while args:
        flag = args.pop(0)
        if not flag.startswith("--") or len(flag) < 3:
            raise ExpungeError(f"unexpected argument {flag!r}; scenario parameters are --NAME VALUE or --set "
                               "NAME=VALUE (`expunge scenarios` lists them)")
        name, eq, value = flag[2:].partition("=")
        if not eq:
            if not args or args[0].startswith("--"):
                raise ExpungeError(f"{flag} needs a value (--{name} VALUE)")
            value = args.pop(0)
        out[name.replace("-", "_")] = value
    return out


def scenario(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="scenario (see `expunge scenarios`): full-class, sub-class, random, "
                                             "owners, sequential, corrective, hard-forget, ...")],
    method: Annotated[str, typer.Option("--method", help="method name (see `expunge methods`)")] = "ssd",
    param: ParamOpt = None,
    preset: PresetOpt = None,
    paper_defaults: PaperDefaultsOpt = False,
    sets: SetOpt = None,
    data: DataOpt = "digits",
    model: ModelOpt = "cnn",
    seed: SeedOpt = 0,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one method through a scenario: one record per request, beside the Original and the Retrain.

    Scenario parameters are options too: --NAME VALUE (or --set NAME=VALUE), e.g. `expunge scenario sequential --k 5
    --base random:0.02` or `expunge scenario corrective --poison 0.05 --identified 0.5`; `expunge scenarios` lists
    each scenario's parameters. Hyperparameters: the shipped preset tuned for this scenario (or its fallback) when
    one exists, else the paper's defaults; --paper-defaults, --preset and --param as for `expunge unlearn`.

    Exit status: 3 (after printing every record) when any request's run has status "no change" or "diverged"; 2 for
    bad input.
    """
    set_params = scenario_params(sets, ctx.args)
    st = open_store(store)
    from expunge import api  # after the checks above: importing torch takes seconds
    from expunge.report import failed_exit_code, print_table, summary_line
    from expunge.scenarios.base import get_scenario
    from expunge.tasks import get_task

    sc = get_scenario(name, set_params)  # validated before any training
    ds = api.load(data, data_dir=dir_arg(data_dir))
    task = ds.task
    sc.check_task(task)
    check_model_fits(ds, model)
    params, source = api.resolve_params(method, dataset=data, model=model, scenario=name,
                                        overrides=parse_params(param or []), preset=preset,
                                        paper_defaults=paper_defaults, task=task)
    setting = sc.prepare(data, model, seed=seed, store=st, data_dir=dir_arg(data_dir),
                         progress=not as_json)
    records = sc.run(setting, method, params, params_source=source)
    if as_json:
        emit_json([r.to_json() for r in records])
        if code := failed_exit_code(records, to_stderr=True):
            raise SystemExit(code)
        return
    has_asr = any(r.metrics.get("backdoor_asr") is not None for r in records)
    for r in records:
        headline = get_task(r.task).headline_metrics  # a federated task already leads with backdoor_asr
        metrics = (*headline, "backdoor_asr") if has_asr and "backdoor_asr" not in headline else None
        if r.metrics.get("cl_avg_acc") is not None:  # a continual stream: its own measures beside forget accuracy
            metrics = ("forget_acc", "cl_avg_acc", "cl_removed_acc", "cl_bwt", "test_acc")
        info = r.extra.get("scenario_info", {})
        step = (f" step {r.extra['step']}/{r.extra['k']} (cumulative {r.forget})" if "step" in r.extra else
                f" ({info['n_identified']} of {info['n_poisoned']} poisoned examples identified)"
                if "n_identified" in info else f" {r.forget}")
        print_table([r], f"{name}{step}: {method} on {data}/{model}, seed {seed} ({source})", metrics)
        if "clean" in r.extra:
            typer.echo("Clean (never poisoned): " + "  ".join(
                f"{m} {r.extra['clean'].get(m):.3f}" for m in ("backdoor_asr", "test_acc")
                if r.extra["clean"].get(m) is not None))
    typer.echo(summary_line(records))
    if code := failed_exit_code(records):
        raise SystemExit(code)


def list_scenarios(as_json: JsonOpt = False) -> None:
    """List scenarios with their parameters (each is a flag of `expunge scenario NAME`), the request kinds they add
    to --forget and the preset they borrow when they have none of their own."""
    from expunge.scenarios.base import SCENARIOS

    def line(d: dict[str, Any]) -> str:
        defaults = " ".join(f"--{p['name'].replace('_', '-')} {p['default']}" for p in d["params"])
        kinds = f"; --forget {' | '.join(d['request_kinds'])}" if d["request_kinds"] else ""
        fallback = f"; presets fall back to {d['preset_fallback']}" if d["preset_fallback"] else ""
        return (f"{d['name']:<12} {d['summary']}\n{'':<12} tasks: {', '.join(d['tasks'])}; parameters: "
                f"{defaults or '-'}{kinds}{fallback}")

    list_registered(SCENARIOS, as_json, line)


def tune(
    data: DataOpt = "digits",
    model: ModelOpt = "cnn",
    scenario_name: Annotated[str, typer.Option("--scenario", help="scenario (see `expunge scenarios`)")] = "full-class",
    methods: Annotated[str, typer.Option("--methods", help="comma-separated methods, or 'all' (every method with a "
                                                           "search space)")] = "all",
    trials: Annotated[int, typer.Option("--trials", min=1, help="trials per method (the same for every method; "
                                                                "trial 0 = the defaults)")] = 20,
    sets: SetOpt = None,
    fix: Annotated[list[str] | None, typer.Option("--fix", help="METHOD:NAME=VALUE: hold a hyperparameter at this "
                                                               "value in every trial (e.g. random_label:epochs=2 "
                                                               "to tune within a time budget)")] = None,
    seed: SeedOpt = 0,
    presets_dir: Annotated[Path | None, typer.Option("--presets-dir", help="where to write the preset (default "
                                                                           "$EXPUNGE_PRESETS, else the package's "
                                                                           "presets)")] = None,
    check: Annotated[bool, typer.Option("--check/--no-check", help="also score the chosen values and the defaults "
                                                                   "on the evaluation request")] = True,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Tune methods at equal budget on a validation request; write the preset DATASET/MODEL/SCENARIO.

    Optuna TPE (seeded) over each method's declared search space; objective = mean |gap to the retrain oracle| of
    forget_acc, test_acc and mia_loss_auc on a validation request (another class / another draw, same Original).
    Use the result with `expunge unlearn --preset DATASET/MODEL/SCENARIO`.
    """
    from expunge import presets

    fixed, set_params = _parse_fixed(fix or []), parse_params(sets or [], "--set")
    # the preset is written after every method's trials: check its folder before any training
    check_folder(presets_dir or presets.default_dir(), "--presets-dir" if presets_dir is not None else
                 "EXPUNGE_PRESETS" if os.environ.get(presets.ENV) else "the package's presets folder")
    st = open_store(store)
    from expunge import api  # after the checks above: importing torch takes seconds
    from expunge.methods.base import METHODS
    from expunge.tune import search_space
    from expunge.tune import tune as run_tune

    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ExpungeError("tuning needs Optuna: pip install 'expunge[tune]'") from None
    names = ([n for n, c in METHODS.items() if search_space(c.Params)] if methods.strip() == "all"
             else [m.strip() for m in methods.split(",") if m.strip()])
    if not names:
        raise ExpungeError(f"--methods {methods!r} names no method. Fix: comma-separated names (`expunge methods`) "
                           "or 'all'")
    check_model_fits(api.load(data, data_dir=dir_arg(data_dir)), model)

    def report(method: str, info: dict[str, Any]) -> None:
        if not as_json:
            err = f"  ({info['error']})" if info["error"] else ""
            typer.echo(f"  {method:<16} trial {info['number']:>3}  objective {info['objective']:.4f}  "
                       f"{info['time_s']:.1f}s{err}", err=True)

    run = run_tune(data, model, scenario_name, names, n_trials=trials, seed=seed, fixed=fixed,
                   scenario_params=set_params, store=st,
                   data_dir=dir_arg(data_dir), presets_dir=presets_dir, check=check,
                   progress=not as_json, on_trial=report)
    path, results = run.path, run.results
    summary = {"preset": f"{data}/{model}/{scenario_name}", "path": str(path), "failures": run.failures,
               "skipped": run.skipped,
               "methods": {r.method: {"params": r.params, "objective": r.objective,
                                      "default_objective": r.default_objective, "eval_objective": r.eval_objective,
                                      "eval_default_objective": r.eval_default_objective, "n_trials": r.n_trials}
                           for r in results}}
    if as_json:
        emit_json(summary)
    else:
        _print_summary(summary["preset"], path, results)
        for m, why in run.skipped.items():
            typer.echo(f"{m:<16} skipped: {' '.join(why.split())}", err=True)
    if run.failures:
        failed = "; ".join(f"{m}: {' '.join(e.split())}" for m, e in run.failures.items())
        raise ExpungeError(f"tuning failed for {len(run.failures)} method(s) ({failed}); the others were written to "
                           f"{path}")


def _parse_fixed(items: list[str]) -> dict[str, dict[str, str]]:
    """``--fix METHOD:NAME=VALUE`` items as {method: {name: value}} (values are parsed by the method's Params)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        method, colon, rest = item.partition(":")
        name, eq, value = rest.partition("=")
        if not colon or not eq or not method.strip() or not name.strip():
            raise ExpungeError(f"--fix expects METHOD:NAME=VALUE (e.g. random_label:epochs=2), got {item!r}")
        out.setdefault(method.strip(), {})[name.strip()] = value.strip()
    return out


def _print_summary(preset: str, path: Path, results: list[Any]) -> None:
    typer.echo(f"preset {preset} -> {path}")
    for r in results:
        chosen = ", ".join(f"{k}={r.params[k]:.4g}" if isinstance(r.params[k], float) else f"{k}={r.params[k]}"
                           for k in r.search_space)
        ev = ("" if r.eval_objective is None else
              f"; evaluation request {r.eval_default_objective:.4f} -> {r.eval_objective:.4f}")
        held = "".join(f"; fixed {k}={v}" for k, v in r.fixed.items())
        typer.echo(f"{r.method:<16} validation {r.default_objective:.4f} (defaults) -> {r.objective:.4f}{ev}\n"
                   f"{'':<16} {chosen}{held}")


def register(app: typer.Typer) -> None:
    app.command("scenario", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(scenario)
    app.command("scenarios")(list_scenarios)
    app.command("tune")(tune)
