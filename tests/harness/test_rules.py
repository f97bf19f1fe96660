"""The verdict rules of a grid (expunge.harness.rules) on hand-made records with known answers: the speed-up reference
over two machine images, one-off vs per-request precompute and the amortised speed-up, parity per seed, "no power"
never counted as met, signed gap closure with an overshoot, and failed runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from expunge.harness import rules
from expunge.record import RunRecord
from expunge.store import ArtifactStore

CRITERIA = {"forget_acc": 0.02, "test_acc": 0.02, "mia_loss_auc": 0.05}
ORIGINAL = {"forget_acc": 1.00, "test_acc": 0.92, "mia_loss_auc": 0.60}
RETRAIN = {"forget_acc": 0.90, "test_acc": 0.91, "mia_loss_auc": 0.50}


@pytest.fixture
def rec(make_record: Callable[..., RunRecord]) -> Callable[..., RunRecord]:
    def make(*, seed: int = 0, image: str = "img-a", threads: int = 2, oracle_s: float = 100.0, time_s: float = 10.0,
             oracle_key: str = "k", n_retain: int = 900, original_key: str = "orig", fingerprint: str = "req",
             access: dict[str, Any] | None = None, notes: dict[str, Any] | None = None, step: int | None = None,
             original: dict[str, float] | None = None, status: str = "unknown", **metrics: float | None) -> RunRecord:
        env = {"platform": image, "torch_threads": threads}
        got = {**RETRAIN, **metrics}
        return make_record(
            seed=seed, env=env, retrain_time_s=oracle_s, time_s=time_s, oracle_key=oracle_key,
            original_key=original_key, request={"n_retain": n_retain, "fingerprint": fingerprint},
            access=access or {}, notes=notes or {}, status=status, metrics=got,
            original=dict(ORIGINAL if original is None else original), retrain=dict(RETRAIN),
            gap_to_retrain={k: None if v is None else abs(v - RETRAIN[k]) for k, v in got.items()},
            extra={"oracle_env": env, **({} if step is None else {"step": step})})

    return make


# --- speed-up reference --------------------------------------------------------------------------------------------
def test_every_training_of_one_oracle_key_counts_on_its_own_image(rec: Callable[..., RunRecord]) -> None:
    """One oracle key, retrained on two images: image b's fastest oracle (257 s, same key as image a's 600 s) must be
    its reference, not a slower oracle of another key that happens to come later."""
    records = [rec(image="a", oracle_key="full", oracle_s=600.0),          # first seen: image a
               rec(image="b", oracle_key="full", oracle_s=257.0, time_s=20.0),  # same key, image b: must count
               rec(image="b", oracle_key="sub", oracle_s=322.0)]           # another request of equal retain size
    ref = rules.reference_retrain_times(records)
    assert ref == {(900, 2, "a"): 600.0, (900, 2, "b"): 257.0}
    assert rules.speed_up(records[1], ref) == pytest.approx(257.0 / 20.0)
    assert rules.speed_up(records[2], ref) == pytest.approx(25.7)   # not 32.2 (its own, slower oracle)


def test_threads_and_unknown_oracles(rec: Callable[..., RunRecord]) -> None:
    one_thread = rec(threads=1, oracle_s=900.0, time_s=90.0)
    two = rec(threads=2, oracle_s=300.0, time_s=30.0)
    unknown = rec(oracle_s=50.0).with_extra(oracle_env={})  # oracle from a cache of unknown image: no reference
    ref = rules.reference_retrain_times([one_thread, two, unknown])
    assert ref == {(900, 1, "img-a"): 900.0, (900, 2, "img-a"): 300.0}
    assert rules.speed_up(one_thread, ref) == pytest.approx(10.0)
    lonely = rec(image="c", oracle_s=80.0, time_s=8.0)
    assert rules.reference_time(lonely, ref) == (80.0, False)  # no oracle on image c: its own
    assert rules.speed_up(rec(time_s=0.0), ref) is None


def test_nearly_equal_retain_sets_are_pooled_and_scaled(rec: Callable[..., RunRecord]) -> None:
    """Owners requests retain 59185 / 59212 / 59190 examples: one seed's oracle ran on a loaded machine (730 s), the
    others in ~380 s; they do the same work, so the fastest (scaled to the size) is every seed's reference."""
    records = [rec(seed=0, n_retain=59185, oracle_s=393.0), rec(seed=1, n_retain=59212, oracle_s=378.0),
               rec(seed=2, n_retain=59190, oracle_s=730.0, time_s=20.0),
               rec(seed=3, n_retain=58800, oracle_s=300.0)]  # 0.65% fewer: another size, not pooled with owners
    ref = rules.reference_retrain_times(records)
    assert rules.reference_time(records[2], ref) == (pytest.approx(378.0 * 59190 / 59212), True)
    assert rules.speed_up(records[2], ref) == pytest.approx(378.0 * 59190 / 59212 / 20.0)  # ~18.9×, not 36.5×
    assert rules.reference_time(records[3], ref) == (300.0, True)


# --- precompute and the amortised speed-up -------------------------------------------------------------------------
def test_one_off_and_per_request_precompute_and_the_amortised_speed_up(rec: Callable[..., RunRecord]) -> None:
    """Original 'o' serves 4 requests; retrain 400 s. SSD's importances (one-off, 80 s, computed by the first request,
    cache hits after) add 80/4 = 20 s per request; amnesiac's replay (per-request, 360 s) is paid on every one."""
    ssd = "ssd_fisher_diag"
    records = [rec(fingerprint=f"r{i}", original_key="o", oracle_s=400.0, time_s=20.0,
                   access={"train_stats": [ssd], "precompute_s": 80.0 if i == 0 else 0.0}) for i in range(4)]
    amn = rec(fingerprint="r0", original_key="o", oracle_s=400.0, time_s=40.0,
              access={"train_stats": ["amnesiac_updates/v2/abc/1/2"], "precompute_s": 360.0})
    grid = rules.GridRules([*records, amn])
    assert grid.requests["o"] == 4
    hit = grid.precompute(records[3])
    assert (hit.scope, hit.seconds, hit.source) == ("one-off", 80.0, "another run")  # not 0
    assert grid.speed_up(records[3]) == pytest.approx(20.0)
    assert grid.amortised_speed_up(records[3]) == pytest.approx(400.0 / (20.0 + 80.0 / 4))  # 10×
    assert grid.precompute(amn) == rules.Precompute("per-request", 360.0, "measured")
    assert grid.speed_up(amn) == pytest.approx(10.0)
    assert grid.amortised_speed_up(amn) == pytest.approx(400.0 / (40.0 + 360.0))  # 1×, not 10×


def test_a_cache_hit_nobody_measured_is_unknown_not_free(rec: Callable[..., RunRecord], tmp_path: Any) -> None:
    hit = rec(original_key="o", access={"train_stats": ["ssd_fisher_diag"], "precompute_s": 0.0})
    grid = rules.GridRules([hit])
    assert grid.precompute(hit) == rules.Precompute("one-off", None, "unknown")
    assert grid.amortised_speed_up(hit) is None and grid.speed_up(hit) == pytest.approx(10.0)
    # the statistic's store manifest knows what the hit hid
    store = ArtifactStore(tmp_path)
    folder = store.path("train_stats", "abc123")
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"statistic": "ssd_fisher_diag", "original": "o",
                                                      "compute_s": 30.0}))
    costs = rules.statistic_costs(store)
    assert costs == {("o", "ssd_fisher_diag"): 30.0}
    assert rules.GridRules([hit], costs).amortised_speed_up(hit) == pytest.approx(100.0 / (10.0 + 30.0))
    # SISA notes its ensemble's training time even on a hit
    sisa = rec(original_key="o2", access={"train_stats": ["sisa_S4_R2_x"], "precompute_s": 0.0},
               notes={"sisa_ensemble_train_s": 90.0})
    assert rules.precompute(sisa) == rules.Precompute("one-off", 90.0, "method notes")
    assert rules.precompute(rec()) == rules.Precompute("none", 0.0)


# --- parity per seed, no power -------------------------------------------------------------------------------------
def test_parity_is_counted_per_seed_never_on_the_mean(rec: Callable[..., RunRecord]) -> None:
    """Seed 2 under-forgets by 0.04, seed 1 over-forgets by 0.04: the mean gap is 0 but 1/3 seeds are at parity."""
    records = [rec(seed=0), rec(seed=1, forget_acc=0.86), rec(seed=2, forget_acc=0.94)]
    sp = rules.seed_parity(records, CRITERIA)
    assert (sp.at_parity, sp.n_seeds, sp.label, sp.all_seeds) == (1, 3, "1/3 seeds", False)
    assert sp.seeds_with("missed") == {"forget_acc": 2}
    two = rules.seed_parity([rec(seed=0), rec(seed=1), rec(seed=2, test_acc=0.85)], CRITERIA)
    assert two.label == "2/3 seeds" and two.seeds_with("missed") == {"test_acc": 1}


def test_a_seed_is_at_parity_only_when_every_step_is(rec: Callable[..., RunRecord]) -> None:
    records = [rec(seed=0, step=1), rec(seed=0, step=2, forget_acc=0.80), rec(seed=1, step=1), rec(seed=1, step=2)]
    assert rules.seed_parity(records, CRITERIA).label == "1/2 seeds"


def test_no_power_is_never_counted_as_met(rec: Callable[..., RunRecord]) -> None:
    """The Original is within every tolerance of the Retrain: doing nothing passes, so no seed is at parity."""
    near = {"forget_acc": 0.91, "test_acc": 0.91, "mia_loss_auc": 0.52}
    sp = rules.seed_parity([rec(seed=s, original=near) for s in range(3)], CRITERIA)
    assert (sp.at_parity, sp.no_power, sp.label) == (0, 3, "0/3 seeds")
    assert sp.seeds_with("met") == {} and sp.seeds_with("no power") == dict.fromkeys(CRITERIA, 3)
    # forget accuracy has power, test and MIA do not: parity rests on forget accuracy alone, and the table can say so
    part = rules.seed_parity([rec(seed=0, original={**near, "forget_acc": 1.0})], CRITERIA)
    assert part.label == "1/1 seeds" and part.seeds_with("met") == {"forget_acc": 1}
    assert part.seeds_with("no power") == {"test_acc": 1, "mia_loss_auc": 1}


def test_failed_runs_are_never_at_parity(rec: Callable[..., RunRecord]) -> None:
    records = [rec(seed=0, status="ok"), rec(seed=1, status="no change"), rec(seed=2, status="diverged")]
    sp = rules.seed_parity(records, CRITERIA)  # their metrics equal the Retrain's, yet nothing was unlearned
    assert (sp.at_parity, sp.failed, sp.label) == (1, 2, "1/3 seeds")


def test_committed_records_read_through_from_json(rec: Callable[..., RunRecord]) -> None:
    doc = {**rec().to_json(), "oracle_env": {"platform": "img-z", "torch_threads": 1}}
    back = RunRecord.from_json(doc)
    assert rules.reference_retrain_times([back]) == {(900, 1, "img-z"): 100.0}


# --- signed gap closure --------------------------------------------------------------------------------------------
def test_signed_gap_closure_shows_an_overshoot(rec: Callable[..., RunRecord]) -> None:
    # MIA: Original 0.53, Retrain 0.507, unlearned 0.484 -> (0.484 - 0.53) / (0.507 - 0.53) = 2.0: past the Retrain
    r = rec(original={**ORIGINAL, "mia_loss_auc": 0.53}, mia_loss_auc=0.484)
    r = r.replace(retrain={**RETRAIN, "mia_loss_auc": 0.507})
    assert rules.gap_closure(r, "mia_loss_auc") == pytest.approx(2.0)
    assert rules.gap_closure(rec(forget_acc=0.95), "forget_acc") == pytest.approx(0.5)
    assert str(rules.gap_closure(rec(forget_acc=1.0), "forget_acc")) == "0.0"  # did nothing: 0.00, not -0.00
    assert rules.gap_closure(rec(forget_acc=1.02), "forget_acc") == pytest.approx(-0.2)  # moved away
    flat = rec(original={**ORIGINAL, "test_acc": 0.912})  # |R - O| = 0.002 < 0.01: nothing to close, "no power"
    assert rules.gap_closure(flat, "test_acc") is None
    assert rules.gap_closure(rec(forget_acc=None), "forget_acc") is None
