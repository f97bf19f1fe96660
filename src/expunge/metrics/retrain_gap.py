"""Composite gaps to the retrained model (tier 0 given the oracle): SalUn's Avg. Gap and Tug-of-War.

* ``avg_gap_salun`` = ¼ Σ_{k∈{UA, MIA, RA, TA}} |k(M) − k(R)| in percentage points, UA = 100·(1 − acc_forget),
  MIA = SalUn MIA-Efficacy ×100 (``mia_eff_svc_conf_salun``), RA/TA = 100·retain/test accuracy (Fan et al., SalUn,
  ICLR 2024, arXiv 2310.12508; OPTML-Group/Unlearn-Saliency README). Lower is better; the Retrain scores 0.
* ``tow`` = Π_{S∈{F, D_r, T}} (1 − |acc_S(M) − acc_S(R)|), accuracies in [0, 1] (Zhao et al., "What makes unlearning
  hard and what to do about it", NeurIPS 2024, arXiv 2406.01257). Higher is better; the Retrain scores 1.

With no Retrain both return None with reason "no retrain model" (never 0). Standard errors by the delta method,
treating the model's and the Retrain's per-split estimates as independent binomial proportions (the MIA term uses the
binomial se of the forget-set share).
"""

from __future__ import annotations

import math

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.accuracy import accuracy, avg_gap_salun, tow
from expunge.metrics.functional.stats import proportion_se
from expunge.metrics.mia_population import mia_eff_svc_conf

SPLITS = ("forget", "retain", "test")


def _accs(ctx: EvalContext, role: str) -> dict[str, tuple[float, float]] | None:
    """{split: (accuracy, se)}; None when a split is empty."""
    out = {}
    for s in SPLITS:
        y = ctx.labels(s)
        a = accuracy(ctx.logits(role, s), y)
        if a is None:
            return None
        out[s] = (a, proportion_se(a, len(y)) or 0.0)
    return out


@register_metric
class AvgGapSalun(Metric):
    name, family, higher_is_better = "avg_gap_salun", "retrain_gap", False
    needs = frozenset({"retrain"})
    definition = ("SalUn Avg. Gap: mean |M - R| over UA = 100(1 - forget acc), MIA-Efficacy x100, retain and test "
                  "acc x100 (percentage points); 0 = retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        terms = {}
        for r in (role, "retrain"):
            accs, mia = _accs(ctx, r), mia_eff_svc_conf(ctx, r)
            if accs is None:
                return MetricValue(None, reason="empty split")
            if mia.value is None:
                return MetricValue(None, reason=f"MIA-Efficacy undefined: {mia.reason}")
            terms[r] = {"UA": (100 * (1 - accs["forget"][0]), 100 * accs["forget"][1]),
                        "MIA": (100 * mia.value, 100 * (mia.se or 0.0)),
                        "RA": (100 * accs["retain"][0], 100 * accs["retain"][1]),
                        "TA": (100 * accs["test"][0], 100 * accs["test"][1])}
        u = {k: v[0] for k, v in terms[role].items()}
        r = {k: v[0] for k, v in terms["retrain"].items()}
        value = avg_gap_salun(u, r)
        se = math.sqrt(sum(terms[role][k][1] ** 2 + terms["retrain"][k][1] ** 2 for k in u)) / 4
        return MetricValue(value, se=se, details={"model": u, "retrain": r})


@register_metric
class TugOfWar(Metric):
    name, family, higher_is_better = "tow", "retrain_gap", True
    needs = frozenset({"retrain"})
    definition = "Tug-of-War: product over forget/retain/test of (1 - |acc(M) - acc(R)|); 1 = retrain"

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        mine, ref = _accs(ctx, role), _accs(ctx, "retrain")
        if mine is None or ref is None:
            return MetricValue(None, reason="empty split")
        value = tow({s: mine[s][0] for s in SPLITS}, {s: ref[s][0] for s in SPLITS})
        factors = {s: 1 - abs(mine[s][0] - ref[s][0]) for s in SPLITS}
        var = 0.0
        for s in SPLITS:  # d ToW / d gap_s = -prod of the other factors
            others = math.prod(factors[t] for t in SPLITS if t != s)
            var += others**2 * (mine[s][1] ** 2 + ref[s][1] ** 2)
        return MetricValue(value, se=math.sqrt(var), details={"factors": factors})
