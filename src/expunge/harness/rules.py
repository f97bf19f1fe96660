"""The rules that turn a grid of run records into verdicts that can be trusted: speed-ups against a like-for-like
reference, precompute in its own column with an amortised speed-up, parity per seed, "no power", signed gap closure.

Every function takes :class:`~expunge.record.RunRecord` s (the committed benchmark JSON reads through
:meth:`RunRecord.from_json <expunge.record.RunRecord.from_json>`). The rules, and the defects of the earlier script
code each one fixes:

* **Speed-up reference** (:func:`reference_retrain_times`): retrain time / unlearning time, where the retrain time is
  the *fastest* oracle training with the same retain-set size, torch threads and machine image (``platform``): oracles
  of equal retain size do the same work, so on one image their times differ only by the load the machine was under
  (sizes within :data:`RETAIN_TOLERANCE` count as equal, the time scaled to the method's size).
  Each *training* counts — identified by (oracle key, image, threads, training time) — not each oracle key: one key
  covers oracles retrained on several machine images (training is not bit-reproducible across images, the store was
  rebuilt), and keeping only the first record of a key dropped a whole image's oracles. A record with no like-for-like
  oracle is compared with its own oracle (:func:`reference_time` says which).
* **Precompute** (:func:`precompute`): the time of training-set statistics a method caches in the store
  (``access["train_stats"]`` / ``access["precompute_s"]``) is excluded from ``time_s`` and shown apart, marked
  **one-off** (cached per Original: SSD's importances, SISA's ensemble) or **per-request** (cached per forget set:
  ``amnesiac_updates``' replayed update log — every new request pays it, see :data:`PER_REQUEST_STATISTICS`). A cache
  hit records ``precompute_s`` = 0; that is never read as free: the cost is taken from the run of the grid that
  computed the same statistic of the same Original, from the statistic's store manifest (:func:`statistic_costs`), or
  from the method's notes (SISA notes its ensemble's training time), and is otherwise **unknown** (None).
* **Amortised speed-up** (:meth:`GridRules.amortised_speed_up`) over the N requests the grid makes on the record's
  Original: ``retrain / (unlearn + one_off / N + per_request)``, with ``retrain`` the reference above; None when the
  precompute is unknown.
* **Parity per seed** (:func:`seed_parity`): :func:`expunge.verdict.judge` on each record; a seed is at parity when
  every record of it (a sequential stream's steps) is; the result reads "2/3 seeds". A mean over seeds is never
  judged: seeds that miss on opposite sides average to a pass. A record of status "no change" or "diverged" is never at
  parity (the verdict's rule).
* **No power** (the verdict's notion): a criterion the Original itself passes, or on which the Original and the Retrain
  are within noise, cannot tell whether unlearning happened; it is "no power", never "met", and a seed whose every
  criterion lacks power is "no power", not at parity.
* **Per-example criteria** (the verdict's, on random and owners requests: U-LiRA, KLoM): judged when the records carry
  them; otherwise "not measured", listed per seed (:attr:`SeedParity.measure_note`) and never counted as met.
* **Signed gap closure** (:func:`gap_closure`): (unlearned − original) / (retrain − original) on one metric: 1 = at the
  Retrain's, 0 = still at the Original's, > 1 = overshoot (e.g. an MIA AUC below the Retrain's when the Original's is
  above it — forgotten points look *less* like members than unseen ones, itself a signal), < 0 = moved away. None
  ("no power") where |retrain − original| < ``min_gap``: there is no gap to close.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from expunge.record import RunRecord
from expunge.verdict import Verdict, judge

if TYPE_CHECKING:  # the store imports torch; these rules read records and need not
    from expunge.store import ArtifactStore

# Statistics cached per forget set rather than per Original (the name carries a digest of the forget set): every new
# request computes its own, so their time is paid per request. Matched on the name's first '/'-separated part.
PER_REQUEST_STATISTICS = frozenset({"amnesiac_updates", "oracle_matching"})
# Method notes that carry a cached statistic's compute time even on a cache hit (SISA's ensemble training)
PRECOMPUTE_NOTES = ("sisa_ensemble_train_s",)
# Oracles whose retain sets differ by at most this share do the same work up to it (owners requests of one grid retain
# 59185, 59190, 59212 examples): they are pooled, their times scaled to the method's retain-set size.
RETAIN_TOLERANCE = 0.001
# |retrain − original| below this: no gap to close (the share is undefined, not 0 or 1)
GAP_FLOOR = 0.01

Scope = Literal["none", "one-off", "per-request"]
TimingKey = tuple[Any, Any, Any]  # (retain-set size, torch threads, machine image)


# --- speed-up reference --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OracleTraining:
    """One training of a retrain oracle: what its time can be compared with."""

    key: str | None
    n_retain: Any
    threads: Any
    platform: Any
    time_s: float


def oracle_env(record: RunRecord) -> Mapping[str, Any]:
    """The environment the record's oracle was trained in: ``extra["oracle_env"]`` (copied from the oracle's store
    manifest by the benchmarks), else the record's own when the oracle was trained in this run (no cache hit), else
    empty (unknown: such an oracle is no reference for any other run)."""
    if env := record.extra.get("oracle_env"):
        return env
    return record.env if record.cache.get("oracle_hit") is False else {}


def oracle_trainings(records: Iterable[RunRecord]) -> list[OracleTraining]:
    """Each distinct oracle training in ``records`` once, in first-seen order: records that share an oracle key but
    were measured against oracles trained on different images (or at different threads, or at another time) are
    different trainings. Oracles of unknown image or threads are left out."""
    out: dict[tuple[Any, ...], OracleTraining] = {}
    for r in records:
        env = oracle_env(r)
        if r.retrain_time_s is None or env.get("platform") is None or env.get("torch_threads") is None:
            continue
        t = OracleTraining(r.oracle_key, r.request.get("n_retain"), env["torch_threads"], env["platform"],
                           float(r.retrain_time_s))
        out.setdefault((t.key, t.platform, t.threads, t.time_s), t)
    return list(out.values())


def reference_retrain_times(records: Iterable[RunRecord]) -> dict[TimingKey, float]:
    """(retain-set size, torch threads, machine image) -> the fastest oracle training measured there (the least
    loaded, so the most conservative speed-up), over every training of :func:`oracle_trainings`."""
    out: dict[TimingKey, float] = {}
    for t in oracle_trainings(records):
        k = (t.n_retain, t.threads, t.platform)
        out[k] = min(out.get(k, float("inf")), t.time_s)
    return out


def timing_key(record: RunRecord) -> TimingKey:
    """The reference a method's time is compared with: its retain-set size, threads and image."""
    return record.request.get("n_retain"), record.env.get("torch_threads"), record.env.get("platform")


def reference_time(record: RunRecord, reference: Mapping[TimingKey, float]) -> tuple[float | None, bool]:
    """(retrain seconds, like for like): the fastest reference at the record's threads and image whose retain-set
    size is within :data:`RETAIN_TOLERANCE` of the record's, scaled to the record's size (time ∝ examples per
    epoch); else its own oracle's time (False)."""
    n, threads, image = timing_key(record)
    if isinstance(n, int | float) and n > 0:
        near = [t * n / m for (m, th, im), t in reference.items() if th == threads and im == image
                and isinstance(m, int | float) and m > 0 and abs(m - n) <= RETAIN_TOLERANCE * n]
        if near:
            return min(near), True
    return record.retrain_time_s, False


def method_seconds(record: RunRecord) -> float | None:
    """The unlearning call's time (precompute excluded); rows written before ``time_s`` kept only the ratio."""
    if record.time_s is not None:
        return record.time_s
    if record.time_ratio_to_retrain is not None and record.retrain_time_s is not None:
        return record.time_ratio_to_retrain * record.retrain_time_s
    return None


def speed_up(record: RunRecord, reference: Mapping[TimingKey, float]) -> float | None:
    """Reference retrain time / unlearning time; None when either is unknown or the time is 0."""
    base, secs = reference_time(record, reference)[0], method_seconds(record)
    return None if base is None or not secs or secs <= 0 else base / secs


# --- precompute ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Precompute:
    """A run's cached-statistic cost: ``seconds`` None = unknown (a cache hit whose cost no source recorded)."""

    scope: Scope
    seconds: float | None
    source: str = ""   # "measured", "another run", "store manifest", "method notes", "unknown", "" (none)


def statistics_of(record: RunRecord) -> tuple[str, ...]:
    return tuple(record.access.get("train_stats") or ())


def scope_of(record: RunRecord) -> Scope:
    stats = statistics_of(record)
    if not stats:
        return "none"
    return "per-request" if any(s.split("/", 1)[0] in PER_REQUEST_STATISTICS for s in stats) else "one-off"


def statistic_costs(store: ArtifactStore) -> dict[tuple[str, str], float]:
    """(original key, statistic name) -> compute seconds, from the manifests of the store's cached statistics (what
    :meth:`~expunge.data.access.UnlearningData.train_statistic` writes): the cost a later cache hit hid."""
    out: dict[tuple[str, str], float] = {}
    for kind, key, _ in store.artifacts():
        m = store.read_manifest(kind, key) if kind == "train_stats" else None
        if m and isinstance(m.get("compute_s"), int | float) and m.get("original") and m.get("statistic"):
            k = (str(m["original"]), str(m["statistic"]))
            out[k] = max(out.get(k, 0.0), float(m["compute_s"]))
    return out


def measured_costs(records: Iterable[RunRecord]) -> dict[tuple[str, str], float]:
    """(original key, statistic name) -> the largest precompute a run of ``records`` measured computing it (largest:
    the conservative choice for the amortised speed-up). Only records using one statistic count (the time is not
    split between several)."""
    out: dict[tuple[str, str], float] = {}
    for r in records:
        stats, secs = statistics_of(r), float(r.access.get("precompute_s") or 0.0)
        if len(stats) == 1 and secs > 0 and r.original_key:
            k = (r.original_key, stats[0])
            out[k] = max(out.get(k, 0.0), secs)
    return out


def precompute(record: RunRecord, known: Mapping[tuple[str, str], float] | None = None,
               store_costs: Mapping[tuple[str, str], float] | None = None) -> Precompute:
    """The record's precompute: measured in the run, else (a cache hit) the cost ``known`` from another run of the
    grid or ``store_costs`` from the statistic's manifest (keyed by original and statistic), else the method's notes,
    else unknown."""
    scope = scope_of(record)
    if scope == "none":
        return Precompute("none", 0.0)
    if (secs := float(record.access.get("precompute_s") or 0.0)) > 0:
        return Precompute(scope, secs, "measured")
    keys = [(str(record.original_key), s) for s in statistics_of(record)]
    for source, costs in (("another run", known or {}), ("store manifest", store_costs or {})):
        if all(k in costs for k in keys):
            return Precompute(scope, sum(costs[k] for k in keys), source)
    for note in PRECOMPUTE_NOTES:
        if isinstance(v := record.notes.get(note), int | float) and v > 0:
            return Precompute(scope, float(v), "method notes")
    return Precompute(scope, None, "unknown")


def requests_per_original(records: Iterable[RunRecord]) -> dict[str | None, int]:
    """Original key -> how many distinct requests (request fingerprint, sequential step) the grid makes on it: the N
    a one-off precompute is shared by."""
    seen: dict[str | None, set[tuple[Any, Any]]] = {}
    for r in records:
        seen.setdefault(r.original_key, set()).add((r.request.get("fingerprint") or r.forget, r.extra.get("step")))
    return {k: len(v) for k, v in seen.items()}


@dataclass
class GridRules:
    """The grid-wide facts the per-record rules need, computed once from all of a grid's records: the speed-up
    references, the precompute costs measured by some run, the number of requests per Original."""

    records: Sequence[RunRecord]
    store_costs: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reference = reference_retrain_times(self.records)
        self.known = measured_costs(self.records)
        self.requests = requests_per_original(self.records)

    def speed_up(self, record: RunRecord) -> float | None:
        return speed_up(record, self.reference)

    def precompute(self, record: RunRecord) -> Precompute:
        return precompute(record, self.known, self.store_costs)

    def amortised_speed_up(self, record: RunRecord) -> float | None:
        """retrain / (unlearn + one-off precompute / N + per-request precompute), N = the grid's requests on the
        record's Original; None when a time or the precompute is unknown."""
        base, secs, pre = reference_time(record, self.reference)[0], method_seconds(record), self.precompute(record)
        if base is None or secs is None or pre.seconds is None:
            return None
        share = pre.seconds / max(1, self.requests.get(record.original_key, 1)) if pre.scope == "one-off" \
            else pre.seconds if pre.scope == "per-request" else 0.0
        total = secs + share
        return None if total <= 0 else base / total


# --- parity per seed, no power -------------------------------------------------------------------------------------
# a seed's criterion status: the worst over its steps
_ORDER = {"missed": 4, "unknown": 3, "not measured": 2, "no power": 1, "met": 0}


@dataclass(frozen=True)
class SeedParity:
    """Parity of one method on one request over seeds. ``criteria``: metric -> status -> number of seeds (a seed's
    status on a criterion is the worst over its records: missed > unknown > not measured > no power > met)."""

    at_parity: int
    n_seeds: int
    no_power: int                     # seeds whose every record's verdict was "no power"
    failed: int                       # seeds with a run of status "no change" / "diverged"
    criteria: Mapping[str, Mapping[str, int]]
    verdicts: Mapping[int, tuple[Verdict, ...]]

    @property
    def all_seeds(self) -> bool:
        """At parity on every seed (and there is at least one)."""
        return self.n_seeds > 0 and self.at_parity == self.n_seeds

    @property
    def label(self) -> str:
        return f"{self.at_parity}/{self.n_seeds} seeds"

    @property
    def power_note(self) -> str:
        """The criteria without power (listed, never counted as met) on some seeds: '; no power: test_acc 3/3'."""
        nop = self.seeds_with("no power")
        return "; no power: " + ", ".join(f"{m} {n}/{self.n_seeds}" for m, n in nop.items()) if nop else ""

    @property
    def measure_note(self) -> str:
        """The per-example criteria the records did not carry: '; not measured: ulira_auc 3/3' (random/owners
        requests evaluated at tier 0: their parity rests on population criteria alone)."""
        nm = self.seeds_with("not measured")
        return "; not measured: " + ", ".join(f"{m} {n}/{self.n_seeds}" for m, n in nm.items()) if nm else ""

    def seeds_with(self, status: str) -> dict[str, int]:
        """metric -> number of seeds on which it had ``status`` (only metrics with at least one)."""
        return {m: c[status] for m, c in self.criteria.items() if c.get(status)}


def seed_parity(records: Iterable[RunRecord], criteria: Mapping[str, float] | None = None) -> SeedParity:
    """Judge every record (:func:`expunge.verdict.judge`, against ``criteria`` or each record's task's) and count
    seeds: a seed is at parity when each of its records is; "no power" and failed runs never count as at parity."""
    verdicts: dict[int, list[Verdict]] = {}
    failed: set[int] = set()
    for r in records:
        verdicts.setdefault(r.seed, []).append(judge(r, criteria))
        if r.failed:
            failed.add(r.seed)
    counts: dict[str, dict[str, int]] = {}
    for vs in verdicts.values():
        worst: dict[str, str] = {}
        for v in vs:
            for c in v.criteria:
                if _ORDER[c.status] >= _ORDER.get(worst.get(c.metric, "met"), 0):
                    worst[c.metric] = c.status
        for metric, status in worst.items():
            counts.setdefault(metric, {}).setdefault(status, 0)
            counts[metric][status] += 1
    return SeedParity(
        at_parity=sum(all(v.at_parity for v in vs) for vs in verdicts.values()),
        n_seeds=len(verdicts),
        no_power=sum(all(v.label == "no power" for v in vs) for vs in verdicts.values()),
        failed=len(failed), criteria=counts, verdicts={s: tuple(vs) for s, vs in verdicts.items()})


# --- signed gap closure ----------------------------------------------------------------------------------------------
def gap_closure(record: RunRecord, metric: str, *, min_gap: float = GAP_FLOOR) -> float | None:
    """(unlearned − original) / (retrain − original) on ``metric``: signed, so an overshoot reads > 1. None ("no
    power") when a value is missing or |retrain − original| < ``min_gap``."""
    u, o, r = record.metrics.get(metric), record.original.get(metric), record.retrain.get(metric)
    if u is None or o is None or r is None or abs(r - o) < min_gap:
        return None
    return float((u - o) / (r - o)) + 0.0  # + 0.0: no gap closed reads 0.00, not -0.00 (0 / a negative gap)
