"""The Original and the retrain oracle of the llm task through the cached oracle; generic methods on the llm task."""

from __future__ import annotations

import numpy as np
import torch

from expunge.api import prepare
from expunge.data.facts import facts_corpus
from expunge.protocols.pipeline import run_step
from expunge.store.artifacts import state_hash
from expunge.tasks.llm import example_nll
from expunge.train.oracle import retain_batches


def test_original_and_oracle_are_cached_and_the_oracle_never_sees_a_forgotten_person(prepared_llm):
    prep = prepared_llm
    again = prepare(prep.dataset, prep.spec, "owners:2", seed=0, store=prep.store, recipe=prep.recipe,
                    progress=False, metrics=[])  # no baseline metrics: the models are the point
    assert again.original.cache_hit and again.oracle.cache_hit
    assert state_hash(again.oracle.model) == state_hash(prep.oracle.model)
    owners = prep.dataset.train.owners
    forgotten = np.unique(owners[prep.splits.forget])
    assert len(forgotten) == 2 and (forgotten >= 0).all()
    served = torch.cat([x for x, _ in retain_batches(prep.dataset, prep.splits.retain, prep.recipe, order_seed=1)])
    forget_rows = {tuple(r) for r in prep.dataset.train.x[prep.splits.forget].tolist()}
    assert not forget_rows & {tuple(r) for r in served.tolist()}
    assert prep.oracle.manifest["n_train_examples"] == prep.splits.retain.size
    assert prep.original.manifest["n_train_examples"] == len(prep.dataset.train)


def test_the_original_learns_its_training_answers_better_than_the_oracle_the_forgotten_people(prepared_llm):
    prep = prepared_llm
    xf, yf = prep.dataset.train.x[prep.splits.forget], prep.dataset.train.y[prep.splits.forget]
    orig, oracle = example_nll(prep.original.model, xf, yf), example_nll(prep.oracle.model, xf, yf)
    assert float(orig.mean()) < float(oracle.mean()) - 0.3  # a quarter-trained tiny model already separates them


def test_retrain_with_oracle_seeds_is_bitwise_the_oracle_and_finetune_neggrad_run(prepared_llm):
    _, model = run_step(prepared_llm, "retrain", {"same_seeds_as_oracle": "true"}, save=False, metrics=[])
    assert state_hash(model) == state_hash(prepared_llm.oracle.model)
    xf, yf = prepared_llm.dataset.train.x[prepared_llm.splits.forget], prepared_llm.dataset.train.y[
        prepared_llm.splits.forget]
    before = float(example_nll(prepared_llm.original.model, xf, yf).mean())
    record, model = run_step(prepared_llm, "neggrad", {"epochs": "2", "lr": "1e-3"}, save=False, metrics=[])
    assert record.status == "ok" and float(example_nll(model, xf, yf).mean()) > before  # ascent raises forget NLL
    record, model = run_step(prepared_llm, "finetune", {"epochs": "1", "lr": "1e-3"}, save=False, metrics=[])
    assert record.status == "ok"


def test_the_corpus_rows_of_the_forget_split_are_the_forgotten_people(prepared_llm):
    corpus = facts_corpus(prepared_llm.dataset)
    people = {corpus.train_items[i].person for i in prepared_llm.splits.forget}
    kinds = sorted(corpus.train_items[i].kind for i in prepared_llm.splits.forget)
    assert len(people) == 2 and kinds.count("bio") == 2 and kinds.count("qa") == 14
