"""A small GPT-2-style causal language model (the ``llm`` task), built from a ``transformers`` config, never
downloaded.

:class:`CausalLM` wraps any Hugging Face causal LM (``.lm``) so that ``model(input_ids)`` returns the logits
``[N, L, V]`` like every other expunge model returns its outputs; the trainer, the store and the methods then treat it
as any ``nn.Module``. Inputs are right-padded with :data:`~expunge.tasks.token_logprobs.PAD_ID`: under the causal mask
no real token attends to a later padding token, so no attention mask is passed (the logits of real tokens are those
of the unpadded sequence; tested). A user's pretrained model is wrapped the same way: ``CausalLM(AutoModelForCausalLM
.from_pretrained(path))``.

Inference-time methods (ECO, GUARD) subclass or wrap it and override :meth:`CausalLM.generate_greedy`, the one entry
point the generation metrics call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from expunge.models.registry import register_model
from expunge.tasks.token_logprobs import EOS_ID, PAD_ID


class CausalLM(nn.Module):
    """``forward(input_ids) -> logits``; ``.lm`` is the wrapped ``transformers`` model."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids.long()).logits

    def forward_embeds(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Logits from input embeddings (ECO corrupts the prompt's embeddings before this call)."""
        return self.lm(inputs_embeds=inputs_embeds).logits

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The token embeddings ``[N, L, d]`` the first layer reads (positions are added inside the model)."""
        return self.lm.get_input_embeddings()(input_ids.long())

    def hidden_states(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Residual-stream activations: index 0 the embeddings, index ℓ the output of block ℓ (RMU, depth scores)."""
        return self.lm(input_ids=input_ids.long(), output_hidden_states=True).hidden_states

    @property
    def max_length(self) -> int:
        """The longest sequence the position embeddings cover."""
        return getattr(self.lm.config, "n_positions", None) or self.lm.config.max_position_embeddings

    @torch.no_grad()
    def generate_greedy(self, prompt: torch.Tensor, *, max_new_tokens: int, eos_id: int,
                        restrict: Callable[[torch.Tensor, list[int]], torch.Tensor] | None = None) -> list[int]:
        """Greedy continuation of one unpadded prompt ``[P]`` (no padding, no batch), stopping at ``eos_id``.
        ``restrict(next_token_logits, generated_so_far)`` may rewrite the scores before each argmax (GUARD's
        generation-time block); its input is a copy."""
        ids = prompt.long().unsqueeze(0)
        out: list[int] = []
        for _ in range(max_new_tokens):
            if ids.shape[1] >= self.max_length:
                break
            scores = self(ids)[0, -1]
            nxt = int((scores if restrict is None else restrict(scores.clone(), out)).argmax())
            if nxt == eos_id:
                break
            out.append(nxt)
            ids = torch.cat([ids, ids.new_tensor([[nxt]])], dim=1)
        return out


@register_model("gpt_tiny")
def gpt_tiny(*, input_shape: tuple[int, ...], num_classes: int, n_layer: int = 4, n_embd: int = 128,
             n_head: int = 4, **_: Any) -> CausalLM:
    """A GPT-2 block stack sized to memorise the fictitious-facts set on a CPU: ``input_shape`` = (max length,),
    ``num_classes`` = the vocabulary size (the ``llm`` task's outputs). Dropout is off: the facts must be memorised,
    and an unlearned model's outputs must be deterministic given its weights."""
    from transformers import GPT2Config, GPT2LMHeadModel  # the `llm` extra; imported on use

    (length,) = input_shape
    config = GPT2Config(vocab_size=num_classes, n_positions=int(length), n_embd=n_embd, n_layer=n_layer,
                        n_head=n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=EOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID)
    return CausalLM(GPT2LMHeadModel(config))
