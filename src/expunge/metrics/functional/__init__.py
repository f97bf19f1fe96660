"""Pure array functions behind every metric (NumPy/SciPy/scikit-learn, no models): one module per family.

Every public function of the family modules is re-exported here, so ``from expunge.metrics.functional import
epsilon_score, ulira, klom, mia_auc`` works. Two functions share their module's name — :func:`accuracy` and
:func:`klom` — so as attributes of this package they are the functions; import the modules themselves with
``from expunge.metrics.functional.klom import ...`` (or ``importlib.import_module``).

Modules: :mod:`.accuracy` (accuracies, gaps, ToW), :mod:`.divergence` (KL/JS, activation distance, ZRF),
:mod:`.mia` (population membership-inference attacks), :mod:`.stats` (confidence intervals, standard errors),
:mod:`.lira` (LiRA, U-LiRA), :mod:`.epsilon` (NeurIPS'23 ε-score), :mod:`.klom` (KL of margins), :mod:`.relearn`
(Anamnesis Index, relearning recovery) are re-exported by name below. Any other (non-underscore) module of this
folder is re-exported too, by its ``__all__`` or else its public functions, so a new metric family is reachable here
without editing this file; a name already exported by an earlier module is not overwritten.
"""

import importlib as _importlib
import inspect as _inspect
import pkgutil as _pkgutil
import types as _types

from expunge.metrics.functional.accuracy import (
    accuracy,
    avg_gap_salun,
    classwise_accuracy,
    gap_to_reference,
    svd_metric,
    tow,
    ua_salun_pct,
)
from expunge.metrics.functional.divergence import (
    activation_distance,
    as_prob_pair,
    js_divergence,
    kl_divergence,
    log_softmax,
    softmax,
    symmetric_kl,
    top1_agreement,
    zrf,
    zrf_legacy_badteacher,
)
from expunge.metrics.functional.epsilon import bucket_score, epsilon_from_rates, epsilon_score, n_buckets
from expunge.metrics.functional.klom import klom, klom_summary
from expunge.metrics.functional.lira import (
    gaussian_logpdf,
    gaussian_lr_score,
    global_threshold_score,
    logit_scaled_confidence,
    offline_lr_score,
    roc_summary,
    split_by_mask,
    ulira,
)
from expunge.metrics.functional.mia import (
    balanced_subsample,
    ce_loss,
    confidence,
    correctness,
    entropy,
    entropy_mia,
    indiscernibility,
    loss_lr_cv,
    mia_auc,
    mia_efficacy_svc_salun,
    modified_entropy,
    mufac_forgetting_score,
    nomus,
    threshold_attack_best,
    threshold_attack_yeom,
)
from expunge.metrics.functional.relearn import anamnesis_index, relearn_recovery
from expunge.metrics.functional.stats import auc_se, mean_ci, proportion_se, separable

_LISTED = ("accuracy", "divergence", "epsilon", "klom", "lira", "mia", "relearn", "stats")

__all__ = [
    "accuracy", "activation_distance", "anamnesis_index", "as_prob_pair", "auc_se", "avg_gap_salun",
    "balanced_subsample", "bucket_score", "ce_loss", "classwise_accuracy", "confidence", "correctness", "entropy",
    "entropy_mia", "epsilon_from_rates", "epsilon_score", "gap_to_reference", "gaussian_logpdf", "gaussian_lr_score",
    "global_threshold_score", "indiscernibility", "js_divergence", "kl_divergence", "klom", "klom_summary",
    "log_softmax", "logit_scaled_confidence", "loss_lr_cv", "mean_ci", "mia_auc", "mia_efficacy_svc_salun",
    "modified_entropy", "mufac_forgetting_score", "n_buckets", "nomus", "offline_lr_score", "proportion_se",
    "relearn_recovery", "roc_summary", "separable", "softmax", "split_by_mask", "svd_metric", "symmetric_kl",
    "threshold_attack_best", "threshold_attack_yeom", "top1_agreement", "tow", "ua_salun_pct", "ulira", "zrf",
    "zrf_legacy_badteacher",
]


def _export_other_modules() -> list[str]:
    added: list[str] = []
    for info in sorted(_pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in _LISTED:
            continue
        mod = _importlib.import_module(f"{__name__}.{info.name}")
        public = getattr(mod, "__all__", None) or [
            n for n, o in vars(mod).items()
            if not n.startswith("_") and _inspect.isfunction(o) and o.__module__ == mod.__name__]
        for name in public:
            if name in __all__ or (name in globals() and not isinstance(globals()[name], _types.ModuleType)):
                continue
            globals()[name] = getattr(mod, name)
            added.append(name)
    return added


__all__ += _export_other_modules()
