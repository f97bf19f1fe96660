"""Helpers of the language-model concealment audits (underscore: not a metric family).

* :func:`answer_probs` — per-example answer probability P̄ = exp(−ℓ̄) (OpenUnlearning's "probability"; ℓ̄ the
  length-normalised answer NLL of :func:`expunge.tasks.token_logprobs.answer_nll`, EOS included as the task labels
  it), computed through ``model(input_ids)`` so an inference-time guard's forward is what is measured.
* :func:`language_model` — the wrapped transformer a :class:`~expunge.models.causal_lm.CausalLM` (or a guard built on
  one) holds: the audits quantise and patch *its* layers; a guard's own prompt classifier is left as it is (a
  deployment quantises the LLM, not its filter).
* :func:`quantisable_weights` — the weights a weight-only quantiser converts: every ``nn.Linear`` and ``transformers``
  ``Conv1D`` weight of the language model except those tied to the input embedding (GPT-2's ``lm_head``), as
  ``transformers``' bitsandbytes integration keeps the output head in full precision; biases, norms and embeddings
  stay float.
* :func:`blocks` — the transformer block list (GPT-2 ``transformer.h``, Llama/Qwen ``model.layers``, GPT-NeoX
  ``gpt_neox.layers``), for activation patching.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from expunge.errors import NonFiniteOutputs
from expunge.models.inference import INFERENCE_BATCH_SIZE, eval_mode
from expunge.tasks.token_logprobs import answer_nll


class NotALanguageModel(ValueError):
    """The model has no recognisable transformer inside (the audit's value is None with this reason)."""


@torch.no_grad()
def answer_probs(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
    """P̄ = exp(−ℓ̄) of every row, float64 ``[N]`` (eval mode; the caller's mode restored).

    Raises:
        NonFiniteOutputs: some probability is NaN (a collapsed model; the metric's value is None with the reason)."""
    out = []
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            out.append(torch.exp(-answer_nll(model(x[i:i + batch_size]), y[i:i + batch_size])).double())
    probs = torch.cat(out).numpy() if out else np.zeros(0)
    if not np.isfinite(probs).all():
        raise NonFiniteOutputs(f"the model's answer probabilities are not finite on {int((~np.isfinite(probs)).sum())}"
                               f" of {len(probs)} rows: a collapsed model")
    return probs


def language_model(model: nn.Module) -> nn.Module:
    lm = getattr(model, "lm", None)
    if not isinstance(lm, nn.Module):
        raise NotALanguageModel(f"{type(model).__name__} wraps no language model (.lm): the audit needs a CausalLM")
    return lm


def quantisable_weights(model: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """(name, module, output-channel axis) of each weight to quantise (see the module docstring)."""
    lm = language_model(model)
    tied = set()
    get_in = getattr(lm, "get_input_embeddings", None)
    if callable(get_in) and get_in() is not None:
        tied.add(id(get_in().weight))
    out = []
    for name, mod in lm.named_modules():
        weight = getattr(mod, "weight", None)
        if not isinstance(weight, torch.Tensor) or id(weight) in tied:
            continue
        if isinstance(mod, nn.Linear):
            out.append((name, mod, 0))
        elif type(mod).__name__ == "Conv1D":  # transformers' GPT-2 projection: weight [in, out]
            out.append((name, mod, 1))
    return out


def blocks(model: nn.Module) -> nn.ModuleList:
    lm = language_model(model)
    for path in ("transformer.h", "model.layers", "gpt_neox.layers"):
        try:
            found = lm.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(found, nn.ModuleList) and len(found):
            return found
    raise NotALanguageModel(f"no transformer block list (transformer.h / model.layers / gpt_neox.layers) in "
                            f"{type(lm).__name__}")
