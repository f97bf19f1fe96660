"""KLoM — KL divergence of margins between unlearned models and oracles (tier 2).

Georgiev et al., "Attribute-to-Delete: Machine Unlearning via Datamodel Matching", arXiv 2410.23232, App. E.1;
easydub/EasyDUB-code ``easydub/eval.py``. The arithmetic is :func:`expunge.metrics.functional.klom.klom` (which
counts a margin equal to the combined maximum in the last bin, unlike eval.py's ``np.digitize``).

Pipeline (:func:`expunge.protocols.tier2.seeded_outputs` with ``from_originals``): N originals (seeds ctx.seed + i,
i = 0 is the run's), the method applied to each (seed ctx.seed + i), and N oracles retrained without the forget
set (seeds ctx.seed + i, shared with the NeurIPS'23 score). Per example, the margins of the N unlearned models and
the N oracles are clipped to ±100 and binned on 20 shared bins; KLoM = KL(P_U ‖ P_R), natural log, P_R floored at
1e-5. ``klom_p95_<split>`` is the 95th percentile over the split (lower is better); p50, p99 and the mean are in
the details. Defaults N = 8 on CPU (``--models``); the paper uses N = 100. With small N the binned plug-in KL is
biased upwards (20 bins, 8 samples): compare methods at the same N, and read Retrain-vs-Retrain noise from the
spread of values, not from 0.

Rows (our choice, for the verdict's one-sided per-example criterion, :mod:`expunge.verdict`): the **Retrain** row is
that noise floor measured — N independently seeded retrains (the ``retrain`` method, seeds ctx.seed + i, cached and
shared with a grid's ``retrain`` rows) against the same N oracles; the **Original** row is doing nothing — the N
originals against the N oracles (free: KLoM trains the originals anyway). Neither depends on the method under test,
so both are computed with the request's baseline and need no method; the unlearned row needs it. The ``retrain``
method's own unlearned row is then the Retrain row itself (the same cached runs).
"""

from __future__ import annotations

from typing import Any, ClassVar

from expunge.metrics import _tier2
from expunge.metrics._tier2 import Tier2Config
from expunge.metrics.base import EvalContext, MetricValue, MissingInput, register_metric
from expunge.metrics.functional.klom import klom, klom_summary

NEEDS = ("model_spec", "recipe", "store", "method")
SPLITS = ("forget", "retain", "test")
BINS, CLIP, FLOOR = 20, 100.0, 1e-5


BASELINE_METHOD = "retrain"  # the Retrain row: independent retrains vs the oracles (the noise floor)


def klom_result(ctx: EvalContext, role: str = "unlearned") -> dict[str, Any]:
    """KLoM of ``role``: the run's method (unlearned), independent retrains (retrain) or the originals (original),
    each against the N oracles."""
    cfg = Tier2Config.from_ctx(ctx)
    if role == "unlearned":
        out: _tier2.SeededOutputs = ctx.provided("seeded", cfg, True, SPLITS)
        models = out.unlearned_phi
    else:  # one pipeline run (retrains + originals + oracles) answers both baseline rows
        out = ctx.provided("seeded", cfg, True, SPLITS, BASELINE_METHOD)
        models = out.original_phi if role == "original" else out.unlearned_phi
    summaries = {s: klom_summary(klom(models[s], out.oracle_phi[s], bins=BINS, clip=CLIP, floor=FLOOR))
                 for s in SPLITS}
    return {"summaries": summaries, "n_models": len(out.seeds), "seeds": out.seeds, "bins": BINS, "clip": CLIP,
            "floor": FLOOR, "info": out.info}


class _Klom(_tier2.Tier2Metric):
    family = "klom"
    run_needs = NEEDS
    higher_is_better = False
    split: ClassVar[str]

    label, retrain_is_floor = "KLoM", True
    ideal = 0.0  # unlearned margins distributed as the oracles' (an exact unlearner): identical histograms

    def run_needs_for(self, role: str) -> tuple[str, ...]:
        return self.run_needs if role == "unlearned" else tuple(n for n in self.run_needs if n != "method")

    def result(self, ctx: EvalContext, role: str) -> dict[str, Any]:
        if role not in ("unlearned", "original", "retrain"):
            raise MissingInput(f"KLoM has rows for the unlearned model, the Original and the Retrain, not {role!r}")
        return klom_result(ctx, role)

    def value_from(self, res: dict[str, Any], ctx: EvalContext, role: str) -> MetricValue:
        summ = res["summaries"][self.split]
        details = {**summ, **{k: v for k, v in res.items() if k != "summaries"},
                   "other_splits": {s: v for s, v in res["summaries"].items() if s != self.split}}
        return MetricValue(summ["p95"], reason=summ.get("reason"), details=details)


@register_metric
class KlomP95Forget(_Klom):
    name, split = "klom_p95_forget", "forget"
    definition = ("KLoM (Georgiev et al. 2024) 95th percentile over the forget set: per-example KL of the binned "
                  "margins of N unlearned models (each from its own original) vs N oracles; lower is better")


@register_metric
class KlomP95Retain(_Klom):
    name, split = "klom_p95_retain", "retain"
    definition = "KLoM 95th percentile over the retain set (unlearned models vs oracles); lower is better"


@register_metric
class KlomP95Test(_Klom):
    name, split = "klom_p95_test", "test"
    definition = "KLoM 95th percentile over the test set (unlearned models vs oracles); lower is better"
