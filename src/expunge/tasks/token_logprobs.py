"""Answer-token log-probabilities of a causal language model: the one place every LLM loss and metric reads them.

The shared encoding of a question–answer example (the ``llm`` task, :mod:`expunge.data.facts`): ``input_ids`` is the
prompt followed by the answer and right-padded with :data:`PAD_ID`; ``labels`` equals ``input_ids`` on the answer
tokens and :data:`IGNORE_INDEX` on the prompt and the padding (``../shared/spec/methods.md`` §6: losses on answer
tokens only). Logits at position t predict token t + 1, so the label of position t is scored by the logits of
position t − 1 (the Hugging Face shift, ``transformers`` ``ForCausalLMLoss``).

Conventions (OpenUnlearning ``src/evals/metrics/utils.py`` ``evaluate_probability``; TOFU):
- ``answer_nll(..., reduction="mean")`` is ℓ̄ = ℓ / |y|, the length-normalised NLL; P̄ = exp(−ℓ̄) is the metrics'
  "probability".
- ``lm_loss`` is the Hugging Face training loss: the mean over every answer token of the batch (a token-weighted
  mean, not a mean of per-example means) — what ``llm_grad_ascent`` negates (§6.1).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

PAD_ID = 0  # tokenizers built here reserve id 0 for padding and id 1 for end-of-sequence
EOS_ID = 1
IGNORE_INDEX = -100


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log π(y_t | x, y_<t) of the labelled tokens and their mask, both ``[N, L - 1]``.

    Unlabelled positions get log-probability 0 (and mask False), so sums over a row are sums over its answer."""
    if logits.shape[:2] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree on [N, L]")
    target = labels[:, 1:]
    mask = target != IGNORE_INDEX
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    picked = logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def answer_nll(logits: torch.Tensor, labels: torch.Tensor,
               reduction: Literal["mean", "sum"] = "mean") -> torch.Tensor:
    """Per-example answer NLL ``[N]``: ℓ̄ (``"mean"``, length-normalised) or ℓ (``"sum"``, the sequence NLL).

    An example without answer tokens has ℓ = 0 and ℓ̄ = 0 (never NaN)."""
    logp, mask = token_logprobs(logits, labels)
    total = -logp.sum(dim=1)
    if reduction == "sum":
        return total
    return total / mask.sum(dim=1).clamp_min(1)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The Hugging Face causal-LM loss: cross-entropy averaged over every answer token of the batch."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX)


def prompt_lengths(input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Number of prompt tokens of each example (the tokens before its first labelled one) ``[N]``."""
    labelled = labels != IGNORE_INDEX
    first = labelled.float().argmax(dim=1)
    # a row with no answer is all prompt (up to its padding)
    return torch.where(labelled.any(dim=1), first, (input_ids != PAD_ID).sum(dim=1))
