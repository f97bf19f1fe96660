"""oracle_matching: its targets are the oracle's outputs bit for bit (a retrain with the oracle's seeds), cached per
forget set as per-request precompute, and fine-tuning on them brings the Original's outputs to the oracle's."""

from __future__ import annotations

import torch

from expunge.data.access import UnlearningData
from expunge.harness.rules import PER_REQUEST_STATISTICS
from expunge.methods.base import METHODS, RunContext, get_method
from expunge.methods.oracle_matching import oracle_outputs
from expunge.models.inference import predict_logits
from expunge.protocols.runner import run_method


def test_the_targets_are_the_cached_oracles_outputs(prepared_random) -> None:
    prep = prepared_random
    data = UnlearningData(prep.dataset, prep.splits, METHODS.get("oracle_matching").access, seed=0)
    ctx = RunContext(seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe)
    targets = oracle_outputs(data, ctx)
    x = prep.dataset.train.x
    assert torch.equal(targets["forget"], predict_logits(prep.oracle.model, x[prep.splits.forget]))
    assert torch.equal(targets["retain"], predict_logits(prep.oracle.model, x[prep.splits.retain]))


def test_matching_brings_the_originals_outputs_to_the_oracles(prepared_random) -> None:
    prep = prepared_random
    ctx = RunContext(seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
    m = get_method("oracle_matching", {"epochs": "15"})
    res = run_method(m, prep.original.model, prep.dataset, prep.splits, ctx, original_key=prep.original.key)
    x_f = prep.dataset.train.x[prep.splits.forget]
    target = predict_logits(prep.oracle.model, x_f)
    before = float(((predict_logits(prep.original.model, x_f) - target) ** 2).mean())
    after = float(((predict_logits(res.model, x_f) - target) ** 2).mean())
    assert after < 0.25 * before, (before, after)
    stats = res.access["train_stats"]
    assert len(stats) == 1 and stats[0].split("/")[0] in PER_REQUEST_STATISTICS and res.access["precompute_s"] > 0
    assert not METHODS.get("oracle_matching").deployable and METHODS.get("oracle_matching").describe()["deployable"] \
        is False
