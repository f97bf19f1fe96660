"""The markdown benchmark page of a result store (``expunge results DIR --format markdown``): per request, each
method beside the Original and the Retrain, with the verdicts of :mod:`expunge.harness.rules`.

Per request one table: forget / retain / test accuracy and the request's MIA AUC (the one its scenario's tuning
objective uses — sub-class: ``mia_loss_auc_matched``, so tuning and parity cannot disagree), gaps to the oracle,
signed gap closure (:func:`~expunge.harness.rules.gap_closure`), speed-up, precompute and amortised speed-up
(:class:`~expunge.harness.rules.GridRules` over the whole store), peak memory, and parity **per seed**
(:func:`~expunge.harness.rules.seed_parity`), with the reason when a method misses: the criterion and the signed
mean difference, "forgets nothing" when forget accuracy is still at the Original's. Values are mean ± 95% Student-t
half-width over seeds; a sequential stream's steps are averaged within each seed first. A failed cell (a class-only
method on a random request) is a "not applicable" row. Then the timing conditions (each seed's oracle time and
threads, and the reference the speed-ups divide) and the list of methods at parity on every seed.

This module only groups and formats; every verdict, speed-up and precompute comes from the rules.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from expunge.harness.results import ResultStore
from expunge.harness.rules import (
    GAP_FLOOR,
    GridRules,
    SeedParity,
    gap_closure,
    oracle_env,
    reference_time,
    seed_parity,
)
from expunge.metrics.aggregate import format_mean_ci
from expunge.record import RunRecord
from expunge.tasks import get_task

# Parity tolerances on |method − Retrain| (forget accuracy, test accuracy, the request's MIA AUC)
PARITY = {"forget_acc": 0.02, "test_acc": 0.02, "mia_loss_auc": 0.05}
# Rows measured since the monitor hands freed memory back to the OS before a method starts carry this tag; older
# rows' peak deltas could hide allocations the allocator served from memory it had kept (see expunge.train.monitor).
MEMORY_PROBE = "hwm, release-first"
Get = Callable[[RunRecord], float | None]


@dataclass
class Section:
    """One request of the store: its successful records and its failed cells (label -> error), in store order."""

    name: str
    cell: dict[str, Any]
    records: list[RunRecord] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        """The forget / retain / test / MIA metrics of the table: the task's ``report_columns``, else
        classification's with the request's MIA AUC."""
        task = self.records[0].task if self.records else "classification"
        return get_task(task).report_columns or ("forget_acc", "retain_acc", "test_acc",
                                                 mia_of(self.cell.get("request") or {}))

    @property
    def mia(self) -> str:
        return self.columns[3]

    @property
    def tolerances(self) -> dict[str, float]:
        """The parity criteria: classification's (forget, test, the request's MIA), else the task's."""
        task = self.records[0].task if self.records else "classification"
        return dict(get_task(task).parity_criteria) if get_task(task).report_columns else tolerances(self.mia)


def sections(rs: ResultStore) -> list[Section]:
    """The store's runs grouped by request label, in first-seen order — by dataset / model and request label when
    the grid has several datasets or models (their Originals, oracles and forget sets differ)."""
    rows = [(request, label, error, doc, json.loads(cell)) for request, label, error, doc, cell in rs.conn.execute(
        "SELECT request, label, error, record, cell FROM runs ORDER BY id")]
    several = len({(c.get("dataset"), c.get("model")) for *_, c in rows}) > 1
    out: dict[str, Section] = {}
    for request, label, error, doc, cell in rows:
        name = f"{cell.get('dataset')}/{cell.get('model')} · {request}" if several else request
        sec = out.setdefault(name, Section(name, cell))
        if doc is None:
            sec.failed.setdefault(label, error or "failed")
        else:
            sec.records.append(RunRecord.from_json(json.loads(doc)))
    return list(out.values())


def mia_of(request: dict[str, Any]) -> str:
    """The MIA AUC a request's table shows and its parity judges: the one its scenario's tuning objective uses (a
    forget spec: the scenario its kind belongs to); ``mia_loss_auc`` when there is none."""
    from expunge.data.request import ForgetRequest
    from expunge.scenarios.base import SCENARIOS, scenario_for_request

    try:
        scen = SCENARIOS.get(request["scenario"]) if "scenario" in request else \
            scenario_for_request(ForgetRequest.parse(request["forget"]))
    except Exception:  # an unknown (imported) scenario name or spec: the default attack
        scen = None
    metrics = getattr(scen, "objective_metrics", ()) or ()
    return next((m for m in metrics if m.startswith("mia_")), "mia_loss_auc")


def tolerances(mia: str) -> dict[str, float]:
    return {"forget_acc": PARITY["forget_acc"], "test_acc": PARITY["test_acc"], mia: PARITY["mia_loss_auc"]}


# --- cells -----------------------------------------------------------------------------------------------------------
def mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def per_seed(recs: Sequence[RunRecord], get: Get) -> list[float]:
    """One value per seed (the mean over a sequential stream's steps within the seed)."""
    by_seed: dict[int, list[float | None]] = {}
    for r in recs:
        by_seed.setdefault(r.seed, []).append(get(r))
    return [m for m in (mean(v) for v in by_seed.values()) if m is not None]


def ci(recs: Sequence[RunRecord], get: Get, digits: int = 3) -> str:
    """mean ± 95% t half-width over seeds (just the mean with one seed)."""
    return format_mean_ci(per_seed(recs, get), digits)


def times(cell: str) -> str:
    """'12.5 ± 1.0×'; a missing value stays '—'."""
    return cell if cell.startswith("—") else f"{cell}×"


def fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def peak_delta_mb(recs: Sequence[RunRecord]) -> str:
    """Mean ± CI over the runs measured with the release-first probe; otherwise '≥ mean' of the older runs (their
    deltas can only be too low: memory the allocator kept was reused without raising the RSS)."""
    def mb(r: RunRecord) -> float | None:
        return None if r.peak_delta_bytes is None else r.peak_delta_bytes / 2**20

    trusted = [r for r in recs  # the monitor notes its probe; the retired method_zoo.py stamped extra
               if MEMORY_PROBE in (r.notes.get("memory_probe"), r.extra.get("memory_probe"))]
    if trusted:
        return ci(trusted, mb, 1)
    old = mean(per_seed(recs, mb))
    return "—" if old is None else f"≥ {old:.0f}"


def closure_cell(recs: Sequence[RunRecord], metric: str) -> str:
    cell = ci(recs, lambda r: gap_closure(r, metric, min_gap=GAP_FLOOR), 2)
    return "no power" if cell.startswith("—") else cell


def precompute_cell(recs: Sequence[RunRecord], rules: GridRules) -> str:
    """Mean precompute seconds over seeds and its scope; '?' when a cache hit hid it and no source knows the cost;
    empty when the method caches nothing."""
    pre = [rules.precompute(r) for r in recs]
    scopes = sorted({p.scope for p in pre if p.scope != "none"})
    if not scopes:
        return ""
    by_seed: dict[int, list[float | None]] = {}
    for r, p in zip(recs, pre, strict=True):
        by_seed.setdefault(r.seed, []).append(p.seconds)
    vals = [None if None in v else mean(v) for v in by_seed.values()]
    known = [v for v in vals if v is not None]
    cell = format_mean_ci(vals, 1 if max(known, default=0) >= 1 else 2) if known else "?"
    return f"{cell} {'/'.join(scopes)}"


def why_not_parity(recs: Sequence[RunRecord], sp: SeedParity, mia: str = "mia_loss_auc",
                   columns: Sequence[str] = ("forget_acc", "retain_acc", "test_acc"),
                   tol: Mapping[str, float] | None = None) -> str:
    """Why a method is not at parity on every seed: per-seed counts and, for the criteria it misses, the direction
    (means over seeds of signed differences). ``columns`` name the forget and test metrics (first and third) and
    ``tol`` the tolerances (default: classification's); "under-forgets" means on the Original's side of the
    Retrain."""
    forget_m, test_m = columns[0], columns[2]
    tol = dict(tol) if tol is not None else {"forget_acc": PARITY["forget_acc"], "test_acc": PARITY["test_acc"],
                                             mia: PARITY["mia_loss_auc"]}
    def signed(metric: str, role: str = "retrain") -> float | None:
        def diff(r: RunRecord) -> float | None:
            u, ref = r.metrics.get(metric), getattr(r, role).get(metric)
            return None if u is None or ref is None else u - ref
        return mean(per_seed(recs, diff))

    head = f"no ({sp.label})"
    if mean(per_seed(recs, lambda r: r.metrics.get(test_m))) is None:
        return f"{head}: collapsed (non-finite outputs)"
    n_bad = sum(1 for r in recs if r.metrics.get(test_m) is None)
    out = [f"collapsed (non-finite outputs) in {n_bad} of {len(recs)} runs, values over the rest"] if n_bad else []
    if sp.failed:
        out.append(f"nothing unlearned (status no change / diverged) on {sp.failed}/{sp.n_seeds} seeds")
    missed, said = sp.seeds_with("missed"), set()  # said: criteria whose mean already shows the miss
    d_forget, d_orig = signed(forget_m), signed(forget_m, "original")
    if forget_m in missed and d_forget is not None and d_orig is not None and abs(d_forget) > tol[forget_m]:
        orig_side = d_forget - d_orig  # original − retrain: the side of the Retrain the Original is on
        under = d_forget * orig_side > 0
        nothing = under and abs(d_orig) <= tol[forget_m]
        out.append("forgets nothing" if nothing else f"{'under' if under else 'over'}-forgets ({d_forget:+.3f})")
        said.add(forget_m)
    for metric, label in ((test_m, "test"), (mia, "MIA AUC")):
        if (d := signed(metric)) is None and metric == mia:
            out.append(f"{mia} not measured")
        elif metric in missed and d is not None and abs(d) > tol.get(metric, 0.0):
            out.append(f"{label} {d:+.3f}")
            said.add(metric)
    # missed on some seeds, but the mean is within tolerance (seeds on opposite sides, or one bad seed)
    out += [f"{m} missed on {n}/{sp.n_seeds} seeds" for m, n in missed.items() if m not in said]
    if not out and sp.no_power:
        out.append(f"no criterion has power on {sp.no_power}/{sp.n_seeds} seeds (doing nothing would pass)")
    return f"{head}: " + ", ".join(out) if out else head


# --- notes -----------------------------------------------------------------------------------------------------------
def instance_note(recs: Sequence[RunRecord], mia: str = "mia_loss_auc") -> list[str]:
    """A warning when runs of one seed were measured against different trainings of that seed's Original and oracle.

    The artifact store keys a model by its inputs (data, recipe, seed), but training is not bit-reproducible across
    machine images, so a store rebuilt elsewhere retrains different weights under the same key. Each run stays
    consistent (its gaps are to its own oracle); the Original / Retrain rows then average the instances, and how far
    two retrains of one seed lie apart is the oracle's own noise floor, against which the tolerances must be read."""
    by_seed: dict[tuple[int, Any], dict[tuple[Any, ...], dict[str, Any]]] = {}
    for r in recs:  # an instance is told apart by metrics every run has (a newer metric may be missing in older runs)
        ident = tuple(r.retrain.get(m) for m in ("forget_acc", "retain_acc", "test_acc", "mia_loss_auc"))
        by_seed.setdefault((r.seed, r.extra.get("step")), {})[ident] = dict(r.retrain)
    multi = [list(v.values()) for v in by_seed.values() if len(v) > 1]
    if not multi:
        return []

    def spread(metric: str) -> str:
        gaps = [max(vals) - min(vals) for inst in multi
                if len(vals := [x[metric] for x in inst if x.get(metric) is not None]) > 1]
        return f"{max(gaps):.3f}" if gaps else "(not measured on two)"

    f, t, m = spread("forget_acc"), spread("test_acc"), spread(mia)
    seeds = sorted({k[0] for k, v in by_seed.items() if len(v) > 1})
    return [f"Seed(s) {seeds}: rows were measured against several trainings of the seed's Original and oracle (the "
            "store was rebuilt on another machine image: training is not bit-reproducible across images). Each row's "
            "Δ and parity are to its own oracle; the Original / Retrain rows average the instances. Two retrains of "
            f"one seed differ by up to {f} forget accuracy, {t} test accuracy and {m} MIA AUC: the "
            "oracle's own noise floor.", ""]


def mia_note(mia: str) -> list[str]:
    if mia == "mia_loss_auc":
        return []
    return [f"MIA AUC here is `{mia}`: the loss-LR attack against the test examples of the forgotten "
            "fine class only. Against the whole test set (`mia_loss_auc`) nearly every loss of this coarse-label "
            "model is ~0, the logistic regression's sign follows the means and can contradict the ranking: two "
            "retrains of one seed scored 0.29 and 0.70, so no method could be judged on it.", ""]


RULES_NOTE = (
    "Values are mean ± 95% Student-t half-width over seeds (one value: one seed or no spread; `sequential`: steps "
    "averaged within each seed first). Rules (`expunge.harness.rules`, see the Benchmarks page): **parity per seed** — "
    "each run within |Δforget| ≤ 0.02, |Δtest| ≤ 0.02, |ΔMIA AUC| ≤ 0.05 of its oracle on every criterion with "
    "power ('k/n seeds'; a miss names the criterion and the signed mean difference; 'forgets nothing': forget "
    "accuracy still at the Original's); a criterion the Original itself passes has **no power** and never counts as "
    "met. **Gap closed** = (method − Original) / (Retrain − Original), signed (> 1: past the Retrain). **Speed-up** = "
    "fastest oracle training of the same retain-set size, threads and machine image / unlearning time. "
    "**Precompute**: cached statistics, 'one-off' (per Original) or 'per-request' (per forget set; '?': hidden by a "
    "cache hit, cost unknown). **Amortised speed-up** = retrain / (unlearn + one-off / N + per-request), N = the "
    "grid's requests on that Original. Peak Δmem: rise of the peak RSS during the method ('≥ x': older rows, lower "
    "bounds). 'collapsed in k of n runs': NaN/inf outputs, values over the other runs, never at parity.")
HEAD = ("| method | params | forget | retain | test | MIA AUC | Δforget | Δtest | ΔMIA | gap closed (forget) | gap "
        "closed (MIA) | speed-up | precompute (s) | amortised speed-up | peak Δmem (MB) | parity |")


# --- the page --------------------------------------------------------------------------------------------------------
def is_deployable(method: str) -> bool:
    """False for a method that needs what a deletion request never has (oracle_matching: the retrain itself): its
    row shows no speed-up and it is never listed as fastest at parity. Unknown (unregistered) methods: True."""
    from expunge.errors import UnknownName
    from expunge.methods.base import METHODS

    try:
        return bool(METHODS.get(method).deployable)
    except UnknownName:  # a record of a method this installation does not have (another version, a plug-in)
        return True


def section_lines(sec: Section, rules: GridRules, parity_rows: list[tuple[Any, ...]]) -> list[str]:
    recs, mia = sec.records, sec.mia
    first, tol, cols = recs[0], sec.tolerances, sec.columns
    k = f", steps: {first.extra['k']}" if "k" in first.extra else ""
    task_note = [] if cols[0] == "forget_acc" else [
        f"{first.task} task: the forget / retain / test / MIA AUC columns are `{'`, `'.join(cols)}`; parity "
        f"criteria (the task's): {', '.join(f'|Δ{m}| ≤ {v:g}' for m, v in tol.items())}.", ""]
    lines = [f"## {sec.name}", "", f"{len({r.seed for r in recs})} seed(s); {first.request.get('n_forget')} forget "
             f"examples (`{first.forget}`{k}).", "", *task_note, *(mia_note(mia) if not task_note else []),
             *instance_note(recs, mia), HEAD, "|" + "---|" * 16]
    for role in ("original", "retrain"):
        lines.append(f"| {role.capitalize()} | | " + " | ".join(
            ci(recs, lambda r, c=c, role=role: getattr(r, role).get(c)) for c in cols)
            + " | | | | " + ("1 | 1 | 1 | | 1 | | |" if role == "retrain" else "0 | 0 | | | | | |"))
    labels = {r.label for r in recs} | set(sec.failed)
    for label in sorted(labels):  # "X [tuned]" sorts right after X
        if label in sec.failed:
            lines.append(f"| {label} | | not applicable: {sec.failed[label][:80]} |" + " |" * 13)
            continue
        mr = [r for r in recs if r.label == label]
        sp = seed_parity(mr, tol)
        deployable = is_deployable(mr[0].method)
        if sp.all_seeds and deployable:  # a method that needs the retrain is never "fastest at parity"
            parity_rows.append((sec.name, label, mean(per_seed(mr, rules.speed_up)),
                                mean(per_seed(mr, rules.amortised_speed_up)), sp))
        speed = (f"{times(ci(mr, rules.speed_up, 1))} | {precompute_cell(mr, rules)} | "
                 f"{times(ci(mr, rules.amortised_speed_up, 1))}") if deployable else \
            f"— (needs the retrain) | {precompute_cell(mr, rules)} | —"
        lines.append(
            f"| {label if deployable else f'{label} (not deployable)'} | "
            f"{mr[0].extra.get('preset') or mr[0].params_source} | "
            + " | ".join(ci(mr, lambda r, c=c: r.metrics.get(c)) for c in cols)
            + " | " + " | ".join(ci(mr, lambda r, m=m: r.gap_to_retrain.get(m)) for m in tol)
            + "".join(f" | {closure_cell(mr, m)}" for m in (cols[0], mia))
            + f" | {speed} | {peak_delta_mb(mr)} | "
            + (f"**yes** ({sp.label}{sp.power_note})" if sp.all_seeds else why_not_parity(mr, sp, mia, cols, tol))
            + " |")
    return [*lines, "", *page_metric_lines(sec)]


def page_metric_lines(sec: Section) -> list[str]:
    """A second table for a request whose task names ``page_metrics`` (regression: the paper's other measures):
    each of them per model, mean ± CI over seeds; '—' where a run lacks the metric. A metric no run of the section
    has (an audit of a tier the grid did not run) gets no column."""
    recs = sec.records
    names = [n for n in (get_task(recs[0].task).page_metrics if recs else ())
             if any(d.get(n) is not None for r in recs for d in (r.metrics, r.original, r.retrain))]
    if not names:
        return []
    lines = [f"More measures ({recs[0].task}): " + ", ".join(f"`{n}`" for n in names) + ".", "",
             "| method | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for role in ("original", "retrain"):
        lines.append(f"| {role.capitalize()} | " + " | ".join(
            ci(recs, lambda r, n=n, role=role: getattr(r, role).get(n)) for n in names) + " |")
    for label in sorted({r.label for r in recs}):
        mr = [r for r in recs if r.label == label]
        lines.append(f"| {label} | " + " | ".join(ci(mr, lambda r, n=n: r.metrics.get(n)) for n in names) + " |")
    return [*lines, ""]


def timing_lines(secs: Sequence[Section], rules: GridRules) -> list[str]:
    lines = ["## Timing conditions", "", "Each seed's oracle, its threads and the methods'. Oracles of (nearly) equal "
             "retain-set size do the same work, so on one machine image (env `platform`) their times differ only by "
             "machine load; every training counts, also of one oracle key retrained on another image. Reference: the "
             "fastest such oracle at the method's threads on its image ('own oracle': none known).", "",
             "| seed | scenario | oracle time (s) | oracle torch threads | method torch threads | reference retrain "
             "time (s) | methods |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple[int, str], list[RunRecord]] = {}
    for sec in secs:
        for r in sec.records:
            groups.setdefault((r.seed, sec.name), []).append(r)
    for (seed, name), recs in sorted(groups.items()):
        threads = sorted({r.env.get("torch_threads") for r in recs}, key=str)
        refs = sorted({f"{base:.0f}" if like and base is not None else "own oracle"
                       for base, like in (reference_time(r, rules.reference) for r in recs)})
        oracle = oracle_env(recs[0])  # a cached oracle's recorded env, or the run's own when it trained the oracle
        lines.append(f"| {seed} | {name} | {fmt(recs[0].retrain_time_s, 0)} | {oracle.get('torch_threads', '?')} | "
                     f"{', '.join(map(str, threads))} | {', '.join(refs) or '—'} | {len({r.label for r in recs})} |")
    return lines


def markdown(rs: ResultStore, *, title: str | None = None) -> str:
    """The page of ``rs``: a heading (``title``, else the store's ``title`` or config name), the rules, one table
    per request, the timing conditions and the methods at parity."""
    meta = rs.meta()
    secs = [s for s in sections(rs) if s.records or s.failed]
    heading = title or meta.get("title") or _config_name(meta) or "Bench results"
    lines = [f"# {heading}", ""]
    ok = [r for s in secs for r in s.records]
    if not ok:
        return "\n".join([*lines, "(no successful runs yet)"]) + "\n"
    env, seeds = ok[0].env, sorted({r.seed for r in ok})
    origin = json.loads(meta["imported_from"]) if "imported_from" in meta else None
    if origin:
        lines += [f"Imported from `{origin['file']}` (commit {origin['commit'][:10]}, written by "
                  f"`{origin['script']}`).", ""]
    lines += [f"Seeds {seeds}; torch {env.get('torch')}, {env.get('cpu_count')} CPU cores. {RULES_NOTE}", ""]
    rules = GridRules(ok)
    parity_rows: list[tuple[Any, ...]] = []
    for sec in secs:
        if sec.records:
            lines += section_lines(sec, rules, parity_rows)
    lines += timing_lines(secs, rules)
    lines += ["", "## Retrain parity", ""]
    lines += [f"- {scen}: `{m}` ({sp.label}{sp.power_note}) at {fmt(s, 1)}× speed-up, {fmt(a, 1)}× amortised"
              for scen, m, s, a, sp in parity_rows] or ["- none"]
    return "\n".join(lines) + "\n"


def _config_name(meta: dict[str, str]) -> str | None:
    import yaml

    try:
        doc = yaml.safe_load(meta.get("config") or "")
    except yaml.YAMLError:
        return None
    return str(doc["name"]) if isinstance(doc, dict) and doc.get("name") else None
