"""The llm task: answer-token loss, padding trim, per-example ℓ̄, target checks and the tokenizer methods get."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.data.access import DataAccess, UnlearningData
from expunge.data.datasets import load_dataset
from expunge.data.facts import facts_corpus
from expunge.data.request import ForgetRequest
from expunge.models import ModelSpec
from expunge.tasks import get_task
from expunge.tasks.llm import example_nll, trim
from expunge.tasks.token_logprobs import IGNORE_INDEX, PAD_ID, answer_nll, lm_loss


@pytest.fixture(scope="module")
def tiny():
    return load_dataset("facts-tiny")


@pytest.fixture(scope="module")
def model(tiny):
    spec = ModelSpec("gpt_tiny", tiny.input_shape, tiny.num_outputs, {"n_layer": 1, "n_embd": 32, "n_head": 2})
    return spec.build(seed=0).eval()


def test_task_declaration():
    task = get_task("llm")
    assert task.headline_metrics[0] == "llm_forget_quality"
    assert set(task.parity_criteria) <= set(task.headline_metrics)
    assert set(task.report_columns) <= set(task.headline_metrics) and len(task.report_columns) == 4


def test_targets_are_checked():
    task = get_task("llm")
    y = torch.tensor([[IGNORE_INDEX, 5, 1]])
    assert torch.equal(task.targets(y), y)
    with pytest.raises(ValueError, match="int64 labels"):
        task.targets(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="int64 labels"):
        task.targets(torch.tensor([[-3, 2]]))
    with pytest.raises(ValueError, match="int64 labels"):
        task.targets(torch.tensor([[0.5, 2.0]]))


def test_trim_drops_only_all_padding_columns():
    x = torch.tensor([[4, 5, 1, PAD_ID, PAD_ID], [4, 1, PAD_ID, PAD_ID, PAD_ID]])
    y = torch.tensor([[IGNORE_INDEX, 5, 1, IGNORE_INDEX, IGNORE_INDEX], [IGNORE_INDEX, 1] + [IGNORE_INDEX] * 3])
    tx, ty = trim(x, y)
    assert tx.tolist() == [[4, 5, 1], [4, 1, PAD_ID]] and ty.shape == (2, 3)
    assert trim(torch.zeros(1, 3, dtype=torch.long), torch.full((1, 3), IGNORE_INDEX))[0].shape == (1, 1)


def test_batch_loss_equals_the_untrimmed_answer_loss(tiny, model):
    """Right padding is invisible under the causal mask: trimming changes nothing but the cost."""
    task = get_task("llm")
    x, y = tiny.train.x[:16], tiny.train.y[:16]
    with torch.no_grad():
        full = lm_loss(model(x), y)
        assert torch.allclose(task.batch_loss(model, (x, y)), full, atol=1e-5)
        assert torch.allclose(task.loss(model(x), y), full)


def test_example_losses_are_mean_answer_nll_and_chunked_equals_whole(tiny, model):
    task = get_task("llm")
    x, y = tiny.train.x[:20], tiny.train.y[:20]
    with torch.no_grad():
        logits = model(x)
    want = answer_nll(logits, y).double().numpy()
    got = task.example_losses(logits.numpy(), y.numpy())
    assert got.dtype == np.float64 and np.allclose(got, want, atol=1e-6)
    chunked = example_nll(model, x, y, batch_size=7)
    assert np.allclose(chunked.numpy(), want, atol=1e-5)
    assert np.allclose(example_nll(model, x, y, reduction="sum").numpy(),
                       answer_nll(logits, y, "sum").numpy(), atol=1e-4)
    assert task.example_losses(np.zeros((0, 3, 5)), np.zeros((0, 3))).shape == (0,)
    # a random model is near-uniform: ℓ̄ ≈ ln V
    assert abs(float(want.mean()) - np.log(tiny.num_outputs)) < 0.5


def test_unlearning_data_gives_the_vocabulary_without_serving_data(tiny):
    splits = ForgetRequest.parse("owners:2").resolve(tiny, seed=0)
    data = UnlearningData(tiny, splits, DataAccess.NONE)
    tok = data.tokenizer
    assert tok == facts_corpus(tiny).tokenizer and tok.decode(tok.encode("i do not know .")) == "i do not know ."
    assert data.log.forget_seen == 0 and data.log.retain_seen == 0
    assert UnlearningData(load_dataset("diabetes"), ForgetRequest.parse("random:0.1").resolve(
        load_dataset("diabetes")), DataAccess.NONE).tokenizer is None
