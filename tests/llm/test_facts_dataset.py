"""The registered facts datasets: encoding, owners = people (world facts never forgotten), fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from expunge.data.datasets import load_dataset
from expunge.data.facts import FACTS_SIZES, facts_corpus, facts_dataset
from expunge.data.request import ForgetRequest
from expunge.errors import ForgetIsWholeTrainingSet, InvalidDataset, InvalidForgetRequest
from expunge.tasks.token_logprobs import IGNORE_INDEX


@pytest.fixture(scope="module")
def tiny():
    return load_dataset("facts-tiny")


def test_partitions_align_with_the_corpus(tiny):
    corpus = facts_corpus(tiny)
    assert tiny.task == "llm" and tiny.input_shape == (corpus.max_len,)
    assert tiny.num_outputs == corpus.tokenizer.vocab_size == tiny.num_classes
    assert len(tiny.train) == len(corpus.train_items) and len(tiny.test) == len(corpus.test_items)
    assert np.array_equal(tiny.train.ids, np.arange(len(tiny.train)))
    assert np.array_equal(tiny.test.ids, np.arange(len(tiny.train), len(tiny.train) + len(tiny.test)))
    assert tiny.train.owners.tolist() == [it.person for it in corpus.train_items]
    assert tiny.test.owners is None
    for i in (0, 1, len(tiny.train) - 1):
        it = corpus.train_items[i]
        x, y = corpus.encode([it.question], [it.answer])
        assert (tiny.train.x[i] == x[0]).all() and (tiny.train.y[i] == y[0]).all()
        answer = tiny.train.y[i][tiny.train.y[i] != IGNORE_INDEX][:-1]
        assert corpus.tokenizer.decode(answer) == it.answer


def test_deterministic_fingerprint_and_corpus_rebuild(tiny):
    again = facts_dataset("facts-tiny", *FACTS_SIZES["facts-tiny"])
    assert again.fingerprint == tiny.fingerprint
    assert facts_dataset("facts-tiny", 12, 4, 9).fingerprint != tiny.fingerprint
    # a copy without its corpus (as a derived dataset would be) gets the registered one back
    from dataclasses import replace

    bare = replace(tiny, corpus=None)
    assert facts_corpus(bare).train_items == facts_corpus(tiny).train_items
    with pytest.raises(InvalidDataset, match="not a facts dataset"):
        facts_corpus(load_dataset("diabetes"))
    with pytest.raises(InvalidForgetRequest, match="coarse"):
        facts_dataset("x", 3, 1, 1, labels="coarse")
    with pytest.raises(InvalidDataset, match="n_people"):
        facts_dataset("x", 1, 1, 1)


@pytest.mark.filterwarnings("ignore::expunge.errors.LargeForgetFraction")
def test_owners_requests_forget_whole_people_never_world_facts(tiny):
    owners = tiny.train.owners
    for seed in range(20):
        splits = ForgetRequest.parse("owners:3").resolve(tiny, seed=seed)
        people = np.unique(owners[splits.forget])
        assert len(people) == 3 and (people >= 0).all()
        assert np.array_equal(np.sort(splits.forget), np.flatnonzero(np.isin(owners, people)))
    # every person at once is refused (the world facts alone are not the people's)
    with pytest.raises(ForgetIsWholeTrainingSet):
        ForgetRequest.parse("owners:12").resolve(tiny, seed=0)
    splits = ForgetRequest.parse("owners:11").resolve(tiny, seed=0)
    assert (owners[splits.forget] >= 0).all() and (owners[splits.retain] == -1).sum() == 10


def test_one_five_ten_percent_of_people_on_facts():
    ds = load_dataset("facts")
    people = np.unique(ds.train.owners[ds.train.owners >= 0])
    assert len(people) == 200 and len(ds.test) == 40 * 8
    for share, k in ((0.01, 2), (0.05, 10), (0.10, 20)):
        splits = ForgetRequest.parse(f"owners:{k}").resolve(ds, seed=0)
        assert len(np.unique(ds.train.owners[splits.forget])) == round(share * len(people))
        assert splits.forget.size == 8 * k
    assert ds.input_shape[0] <= 48 and ds.num_outputs < 2000


def test_random_and_class_requests_are_refused(tiny):
    with pytest.raises(InvalidForgetRequest, match="owners:K"):
        ForgetRequest.parse("class:0").resolve(tiny)
