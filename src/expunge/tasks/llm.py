"""Causal language modelling of question–answer facts (the ``llm`` task, issue 26): loss on answer tokens only.

An example is one encoded row of a facts corpus (:mod:`expunge.data.facts`): ``x`` the input ids [N, L] (prompt,
answer, EOS, right padding), ``y`` the labels [N, L] (the answer tokens and EOS; :data:`IGNORE_INDEX` elsewhere). A
model's output is the next-token logits [N, L, V] (:class:`~expunge.models.causal_lm.CausalLM`); ``num_outputs`` is
the vocabulary size (the dataset's "classes" are its vocabulary). Definitions (``../shared/spec/methods.md`` §6,
OpenUnlearning ``src/evals/metrics/utils.py``, :mod:`expunge.tasks.token_logprobs`):

* ``loss`` is the Hugging Face causal-LM loss: cross-entropy averaged over every answer token of the batch (TOFU's
  and OpenUnlearning's fine-tuning loss; prompt tokens masked).
* ``example_losses`` is ℓ̄, each example's length-normalised answer NLL (exp(−ℓ̄) is the metrics' "probability"),
  the feature loss-based membership attacks score.
* ``batch_loss`` trims the batch's trailing all-padding columns before the forward: under the causal mask real
  tokens never attend to later positions, so the loss is the same (tested) at a fraction of the cost — most rows
  are a third of ``max_len`` long.

Outputs are [N, L, V]: keep them out of the metrics' whole-split ``EvalContext.logits`` (N × L × V float64 is a GB on
the ``facts`` retain set); :func:`example_nll` computes ℓ̄ / ℓ in chunks instead.

Headline metrics and parity criteria are the llm metrics' (``src/expunge/metrics/llm_*.py``). The criteria are
absolute tolerances on the gap to the Retrain: forget quality (a KS p-value; the Retrain's own is 1) within 0.95 —
i.e. p ≥ 0.05, TOFU's reading of "indistinguishable from the retain model" —, model utility within 0.05 and privleak
(a percentage; the Retrain's own is 0) within 10, MUSE's informal "close to 0" band widened to the attack's noise on
10 forgotten people. Provisional: not yet measured against independently seeded exact retrains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from expunge.tasks.base import Batch, Task, register_task
from expunge.tasks.token_logprobs import IGNORE_INDEX, PAD_ID, answer_nll, lm_loss

NLL_BATCH_SIZE = 64  # rows per forward in example_nll: 64 × 33 × 600 float32 logits ≈ 5 MB


def trim(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` without their trailing columns that are padding in every row (at least one column is kept)."""
    used = (x != PAD_ID) | (y != IGNORE_INDEX)
    cols = torch.nonzero(used.any(dim=0)).flatten()
    width = int(cols[-1]) + 1 if len(cols) else 1
    return x[:, :width], y[:, :width]


@torch.no_grad()
def example_nll(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, *,
                reduction: Literal["mean", "sum"] = "mean", batch_size: int = NLL_BATCH_SIZE) -> torch.Tensor:
    """Per-example answer NLL ``[N]`` (float32; ℓ̄ for ``"mean"``, ℓ for ``"sum"``) of ``model`` in chunks, each
    trimmed of its padding columns, in eval mode (the model's mode is restored); never holds [N, L, V]."""
    was = model.training
    model.eval()
    try:
        out = [answer_nll(model(xb), yb, reduction) for xb, yb in
               (trim(input_ids[i:i + batch_size], labels[i:i + batch_size])
                for i in range(0, len(input_ids), batch_size))]
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.zeros(0)


@register_task
class LanguageModelling(Task):
    name = "llm"
    summary = "question–answer facts for a causal LM; next-token cross-entropy on answer tokens only"
    headline_metrics = ("llm_forget_quality", "llm_model_utility", "llm_privleak", "llm_prob_forget",
                        "llm_rouge_forget", "llm_truth_ratio_forget")
    parity_criteria: ClassVar[Mapping[str, float]] = {"llm_forget_quality": 0.95, "llm_model_utility": 0.05,
                                                      "llm_privleak": 10.0}
    # the bench page's forget / retain / test / MIA slots: the "test" slot is the utility (the harness reads a missing
    # value there as a collapsed model, and utility is defined whenever the outputs are finite)
    report_columns = ("llm_prob_forget", "llm_forget_quality", "llm_model_utility", "llm_privleak")
    # the concealment audits (tier 1 but the depth score) appear where a grid ran them (configs/llm-audits.yaml)
    page_metrics = ("llm_rouge_forget", "llm_truth_ratio_forget", "llm_audit_uds", "llm_audit_relearn_steps",
                    "llm_audit_ain", "llm_audit_relearn_recovery_k10", "llm_audit_quant_recovery_int8",
                    "llm_audit_quant_recovery_nf4")

    def targets(self, y: Any) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y))
        if t.ndim != 2 or t.dtype not in (torch.int64, torch.int32) or \
                (t.numel() and bool(((t < 0) & (t != IGNORE_INDEX)).any())):
            raise ValueError(f"llm targets must be int64 labels of shape (n, length): token ids or {IGNORE_INDEX}; "
                             f"got {t.dtype} of shape {tuple(t.shape)}")
        return t.long()

    def num_outputs(self, targets: torch.Tensor, num_classes: int) -> int:
        return num_classes  # the dataset's classes are its vocabulary

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return lm_loss(outputs, targets)

    def batch_loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        x, y = trim(batch[0], batch[1])
        return lm_loss(model(x), y)

    def example_losses(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """ℓ̄ per example (float64) from logits [N, L, V] and labels [N, L]."""
        logits = torch.as_tensor(np.asarray(outputs, dtype=np.float64))
        labels = torch.as_tensor(np.asarray(targets, dtype=np.int64))
        if not len(labels):
            return np.zeros(0)
        return answer_nll(logits, labels).double().numpy()
