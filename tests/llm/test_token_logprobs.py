"""Known answers for the answer-token log-probabilities every LLM loss and metric reads, and the padding claim of
the tiny GPT."""

import math

import pytest
import torch

from expunge.tasks.token_logprobs import IGNORE_INDEX, PAD_ID, answer_nll, lm_loss, prompt_lengths, token_logprobs


def _uniform_case():
    # vocabulary 4, uniform logits: every token has log-probability −ln 4
    input_ids = torch.tensor([[5, 6, 7, 8, PAD_ID], [5, 6, 7, PAD_ID, PAD_ID]])
    labels = torch.tensor([[IGNORE_INDEX, IGNORE_INDEX, 3, 2, IGNORE_INDEX],
                           [IGNORE_INDEX, 1, 2, IGNORE_INDEX, IGNORE_INDEX]])
    return input_ids, labels, torch.zeros(2, 5, 4)


def test_uniform_logits_give_ln_vocab_per_answer_token():
    input_ids, labels, logits = _uniform_case()
    _logp, mask = token_logprobs(logits, labels)
    assert mask.sum(dim=1).tolist() == [2, 2]
    assert torch.allclose(answer_nll(logits, labels), torch.full((2,), math.log(4)))
    assert torch.allclose(answer_nll(logits, labels, reduction="sum"), torch.full((2,), 2 * math.log(4)))
    assert lm_loss(logits, labels).item() == pytest.approx(math.log(4))
    assert prompt_lengths(input_ids, labels).tolist() == [2, 1]


def test_shift_scores_label_t_with_logits_t_minus_1():
    labels = torch.tensor([[IGNORE_INDEX, 2]])
    logits = torch.zeros(1, 2, 3)
    logits[0, 0, 2] = 10.0  # position 0 predicts token 1 = label 2
    assert answer_nll(logits, labels).item() < 1e-3
    logits[0, 1, 2] = -50.0  # position 1's logits predict nothing that is labelled
    assert answer_nll(logits, labels).item() < 1e-3


def test_right_padding_leaves_real_token_logits_unchanged():
    pytest.importorskip("transformers")
    from expunge.models.registry import build_model

    model = build_model("gpt_tiny", input_shape=(12,), num_classes=20, seed=0, n_layer=2, n_embd=32, n_head=2).eval()
    seq = torch.tensor([[4, 5, 6, 7, 8]])
    padded = torch.cat([seq, torch.full((1, 7), PAD_ID)], dim=1)
    with torch.no_grad():
        assert torch.allclose(model(seq), model(padded)[:, :5], atol=1e-5)
