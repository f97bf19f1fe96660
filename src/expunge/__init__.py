"""expunge: machine unlearning you can check — methods, a cached retrain oracle and a tiered metric suite.

The public API (lazily imported, so ``import expunge`` stays light):

* :func:`prepare` — resolve a forget request on a dataset; get its Original and retrain oracle (cached);
* :func:`unlearn` — run a method on it and evaluate the result beside the Original and the Retrain;
* :func:`evaluate` — re-evaluate a stored run with more metrics, or score a model unlearned elsewhere;
* :func:`list_methods`, :func:`list_metrics`, :func:`list_scenarios` — what the registries hold;
* :class:`RunRecord` — the typed, versioned record every run returns; :func:`judge` — its parity verdict;
* :func:`from_arrays`, :func:`load_dataset`, :class:`ForgetRequest`, :class:`TrainRecipe` — your own data, requests
  and training recipe; :func:`resolve_params` — the hyperparameters a run would use, and their source.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from expunge._version import __version__

__all__ = ["ForgetRequest", "Prepared", "RunRecord", "TrainRecipe", "__version__", "evaluate", "from_arrays", "judge",
           "list_methods", "list_metrics", "list_scenarios", "load", "load_dataset", "prepare", "resolve_params",
           "unlearn"]
_HOME = {"RunRecord": "expunge.record", "judge": "expunge.verdict", "from_arrays": "expunge.data.datasets",
         "load_dataset": "expunge.data.datasets", "ForgetRequest": "expunge.data.request",
         "TrainRecipe": "expunge.train.loop", "Prepared": "expunge.protocols.pipeline"}  # the rest: expunge.api

if TYPE_CHECKING:
    from expunge.api import evaluate, list_methods, list_metrics, list_scenarios, load, prepare, resolve_params, unlearn
    from expunge.data.datasets import from_arrays, load_dataset
    from expunge.data.request import ForgetRequest
    from expunge.protocols.pipeline import Prepared
    from expunge.record import RunRecord
    from expunge.train.loop import TrainRecipe
    from expunge.verdict import judge


def __getattr__(name: str) -> Any:
    if name in __all__:
        value = getattr(importlib.import_module(_HOME.get(name, "expunge.api")), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'expunge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
