"""Shared by the per-scenario tests: a scenario's evaluation and validation settings on digits/mlp (short recipe)."""

from __future__ import annotations

from typing import Any

from expunge.scenarios.base import Setting, get_scenario
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe

METRICS = ("forget_acc", "retain_acc", "test_acc", "mia_loss_auc")


def settings(name: str, store: ArtifactStore, recipe: TrainRecipe, params: dict[str, Any] | None = None,
             data: str = "digits") -> tuple[Setting, Setting]:
    """(evaluation, validation) settings of scenario ``name`` with the given params."""
    sc = get_scenario(name, params)
    kw = {"seed": 0, "store": store, "recipe": recipe, "metrics": METRICS, "progress": False}
    return sc.prepare(data, "mlp", validation=False, **kw), sc.prepare(data, "mlp", validation=True, **kw)
