"""Pieces shared by the weight-updating language-model unlearning methods (``../shared/spec/methods.md`` §6).

Every loss here reads answer tokens only, through :mod:`expunge.tasks.token_logprobs` (the one place log-probabilities
are computed): ℓ(y|x) = Σ_t −log π_θ(y_t|x, y_<t) is :func:`sequence_nll`, ℓ̄ = ℓ/|y| is :func:`mean_nll`, the Hugging
Face token-mean loss is :func:`~expunge.tasks.token_logprobs.lm_loss`.

- :class:`LMParams`: optimiser defaults for a small causal LM trained from scratch. OpenUnlearning's (``docs/repro.md``:
  AdamW, lr 1e-5, effective batch 32, 10 epochs, no weight decay, Hugging Face's default gradient clip 1.0) are for
  1–7B pretrained models; a tiny GPT trained here with Adam at 1e-3 barely moves at 1e-5, so the learning rates are
  re-scaled (each method states its own) and ``expunge tune`` searches 1e-5 … 3e-3.
- :class:`ForgetRetainBatches`: OpenUnlearning's ``ForgetRetainDataset`` with ``anchor: forget``: one epoch is one
  pass over D_f, each forget batch paired with the next retain batch (the retain loader cycled, reshuffled per pass).
- :func:`retain_term`: the retain loss of GradDiff and its descendants: NLL (default) or KL(π_ref ‖ π_θ) per answer
  token. OpenUnlearning's ``compute_kl_divergence`` averages the KL over every position of the batch (prompt and
  padding included, ``batchmean`` over N·L rows); here it is the mean over answer-token positions (§6: losses read
  answer tokens only).
- :class:`CollapseGuard`: §6.1's guard — stop when the mean retain ℓ̄ on a fixed seeded retain subset rises more
  than ``margin`` nats above its value before unlearning.
- Refusal targets for IdkPO and FLAT: the methods' own template strings (:data:`REFUSALS`, in the spirit of
  TOFU's / OpenUnlearning's ``data/idk.jsonl`` and FLAT's ``polite_refusal_responses``), never the dataset's
  paraphrased or perturbed answers (evaluation data). :func:`refusal_rows` re-encodes a batch with each row's prompt
  followed by a refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from expunge._hparams import hp
from expunge.data.batches import Batches, cycle
from expunge.errors import InvalidDataset
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods._shared.teacher_kl import frozen_copy
from expunge.tasks.token_logprobs import (
    EOS_ID,
    IGNORE_INDEX,
    PAD_ID,
    answer_nll,
    lm_loss,
    prompt_lengths,
    token_logprobs,
)
from expunge.train.loop import TrainLog, train_loop

RetainLoss = Literal["nll", "kl"]

# Refusal answers ("I don't know" targets, TOFU's ``data/idk.jsonl`` in spirit), pre-tokenized like the facts corpus
# (lower case, punctuation as its own word) so that its word tokenizer spells them (the facts vocabulary includes
# these words); a tokenizer that cannot is refused with a typed error (see :func:`encode_refusals`).
REFUSALS: tuple[str, ...] = (
    "i do not know .",
    "i have no idea .",
    "i am not sure about that .",
    "i cannot answer that .",
    "that is unknown to me .",
    "i have never heard of that person .",
)


@dataclass(frozen=True, kw_only=True)
class LMParams(GradientParams):
    """Optimiser fields of the LLM methods (OpenUnlearning's recipe with a small-model learning rate)."""

    epochs: int = hp(10, "passes over the forget set (OpenUnlearning: 10)", low=1, search=(1, 20))
    lr: float = hp(1e-4, "AdamW learning rate (OpenUnlearning's 1e-5 is for 1-7B models; re-scaled for a tiny GPT)",
                   low=0.0, low_open=True, search=(1e-5, 3e-3), log=True)
    optimizer: Literal["sgd", "adam", "adamw"] = hp("adamw", "optimiser", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, "weight decay (OpenUnlearning: 0)", low=0.0)
    batch_size: int = hp(32, "forget (and paired retain) batch size (OpenUnlearning: effective 32)", low=1)
    clip_grad_norm: float | None = hp(1.0, "gradient-norm clip (ascent guard; Hugging Face's default 1.0)",
                                      low=0.0, low_open=True)


def reference_copy(model: nn.Module) -> nn.Module:
    """π_ref: a frozen copy of the original (eval mode, no gradients)."""
    return frozen_copy(model)


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ℓ(y|x) per example ``[N]``: the summed answer-token NLL (NPO's and DPO's sequence log-likelihood)."""
    return answer_nll(logits, labels, reduction="sum")


def mean_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ℓ̄ = ℓ/|y| per example ``[N]`` (SimNPO's length-normalised NLL)."""
    return answer_nll(logits, labels, reduction="mean")


def mean_token_probability(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """P(y|x) = mean over answer tokens of π(y_t|x, y_<t) per example ``[N]`` (FLAT; 0 for a row without answer)."""
    logp, mask = token_logprobs(logits, labels)
    return (logp.exp() * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)


def answer_kl(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(π_ref ‖ π_θ) over the vocabulary at each answer-token position, averaged over those positions."""
    mask = labels[:, 1:] != IGNORE_INDEX
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)[mask]
    logq = torch.log_softmax(ref_logits[:, :-1].float(), dim=-1)[mask]
    if logp.numel() == 0:
        return logits.sum() * 0.0
    return (logq.exp() * (logq - logp)).sum(dim=-1).mean()


def retain_term(model: nn.Module, ref: nn.Module | None, x: torch.Tensor, y: torch.Tensor,
                kind: RetainLoss) -> torch.Tensor:
    """GradDiff's retain loss on one retain batch: the token-mean NLL, or the per-token KL to ``ref``."""
    logits = model(x)
    if kind == "nll":
        return lm_loss(logits, y)
    if ref is None:
        raise ValueError("retain_loss='kl' needs the reference model")
    with torch.no_grad():
        ref_logits = ref(x)
    return answer_kl(logits, ref_logits, y)


class ForgetRetainBatches:
    """``(x_f, y_f, x_r, y_r)`` per step; ``len`` = forget batches (one epoch = one pass over D_f, retain cycled)."""

    def __init__(self, forget: Batches, retain: Batches) -> None:
        self.forget, self.retain = forget, retain
        self._retain_iter = cycle(retain)

    def __len__(self) -> int:
        return len(self.forget)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for xf, yf in self.forget:
            xr, yr = next(self._retain_iter)
            yield xf, yf, xr, yr


ForgetTerm = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def train_forget_retain(model: nn.Module, data: Any, ctx: Any, p: Any, forget_term: ForgetTerm, *,
                        ref: nn.Module | None, name: str,
                        on_epoch_end: Callable[[int], bool | None] | None = None) -> TrainLog:
    """The loop GradDiff, NPO, SimNPO and IdkPO share: minimise ``forget_term(m, x_f, y_f) + α·retain_term`` with one
    retain batch per forget batch (one epoch = one pass over D_f, retain batches cycled: OpenUnlearning's
    ``anchor: forget``); α = 0 reads forget batches only (no retain forward: the forget term alone, exactly). ``p``
    carries ``alpha``, ``retain_loss``, ``batch_size``, ``epochs``, ``clip_grad_norm`` and the optimiser's fields;
    the step counts go to ``ctx.notes``."""
    if p.alpha > 0:
        batches: Any = ForgetRetainBatches(data.forget_loader(p.batch_size), data.retain_loader(p.batch_size))

        def loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            xf, yf, xr, yr = batch
            return forget_term(m, xf, yf) + p.alpha * retain_term(m, ref, xr, yr, p.retain_loss)
    else:
        batches = data.forget_loader(p.batch_size)

        def loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return forget_term(m, batch[0], batch[1])

    log = train_loop(model, batches, loss, optimizer_for(model, p), epochs=p.epochs, clip_grad_norm=p.clip_grad_norm,
                     on_epoch_end=on_epoch_end, progress=name if ctx.progress else None)
    ctx.notes.update(steps=log.steps, skipped_nonfinite=log.skipped_nonfinite, stopped=log.stopped)
    return log


@torch.no_grad()
def mean_retain_nll(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> float:
    """Mean ℓ̄ over the rows of (x, y), in eval mode."""
    was = model.training
    model.eval()
    try:
        parts = [mean_nll(model(x[i:i + batch_size]), y[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    finally:
        model.train(was)
    return float(torch.cat(parts).mean())


class CollapseGuard:
    """``guard(epoch) -> True`` (stop) once the mean retain ℓ̄ exceeds its starting value by ``margin`` nats.

    ``x, y`` is a fixed retain subset; the starting value is measured at construction (on the unmodified model).
    On a trip the model is put back to its parameters at the end of the last epoch within the bound (the original's
    if the first epoch trips): the run returns the last model that had not collapsed. ``tripped`` keeps the epoch
    and the values that stopped the run (for the run's notes)."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, margin: float) -> None:
        self.model, self.x, self.y, self.margin = model, x, y, margin
        self.start = mean_retain_nll(model, x, y)
        self.last = self.start
        self._good = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.tripped: dict[str, Any] | None = None

    def __call__(self, epoch: int) -> bool:
        self.last = mean_retain_nll(self.model, self.x, self.y)
        if not self.last <= self.start + self.margin:  # NaN trips it too
            self.tripped = {"epoch": epoch + 1, "retain_nll_start": self.start, "retain_nll": self.last}
            self.model.load_state_dict(self._good)
            return True
        self._good = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return False


def collapse_guard(model: nn.Module, data: Any, margin: float | None, n_examples: int,
                   seed: int) -> CollapseGuard | None:
    """A :class:`CollapseGuard` on a seeded retain subset of ``n_examples`` rows (None when ``margin`` is None)."""
    if margin is None:
        return None
    n_retain = max(1, data.n_train - data.n_forget)
    fraction = min(1.0, n_examples / n_retain)
    loader = data.retain_subset_loader(n_examples, fraction=fraction, shuffle=False, seed=seed)
    xs, ys = zip(*loader, strict=True)
    return CollapseGuard(model, torch.cat(xs), torch.cat(ys), margin)


def encode_refusals(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each refusal text (without a trailing EOS).

    Raises:
        InvalidDataset: ``tokenizer`` is missing, or cannot spell one of ``texts`` (an unknown word raises in its
            ``encode`` or maps to its ``unk_id``)."""
    if tokenizer is None:
        raise InvalidDataset("this method builds refusal answers and needs the dataset's tokenizer "
                             "(UnlearningData.tokenizer); the llm task provides it. Fix: run it on an llm dataset")
    unk = getattr(tokenizer, "unk_id", None)
    out = []
    for text in texts:
        try:
            ids = [int(i) for i in tokenizer.encode(text)]
        except (KeyError, ValueError) as exc:
            raise InvalidDataset(f"the tokenizer cannot encode the refusal {text!r} ({exc}). Fix: pass refusals= "
                                 "made of words in the dataset's vocabulary") from None
        while ids and ids[-1] == EOS_ID:
            ids.pop()
        if not ids or (unk is not None and unk in ids):
            raise InvalidDataset(f"the tokenizer cannot spell the refusal {text!r} (empty or unknown words). "
                                 "Fix: pass refusals= made of words in the dataset's vocabulary")
        out.append(ids)
    return out


def refusal_rows(x: torch.Tensor, y: torch.Tensor, refusals: Sequence[Sequence[int]],
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's prompt followed by a refusal (drawn per row) and EOS: ``(input_ids, labels, has_prompt)``.

    Encoded like every llm example (right-padded with PAD_ID, labels on the refusal and its EOS); a refusal that does
    not fit is cut at the row length. ``has_prompt`` is False for rows without prompt tokens (a biography: there is no
    question to refuse); their refusal row is still built (refusing from an empty context) and callers mask it."""
    n, length = x.shape
    prompts = prompt_lengths(x, y)
    picks = torch.randint(len(refusals), (n,), generator=generator)
    ids = torch.full_like(x, PAD_ID)
    labels = torch.full_like(y, IGNORE_INDEX)
    for i in range(n):
        p = int(prompts[i])
        answer = [*refusals[int(picks[i])], EOS_ID][: max(0, length - p)]
        ids[i, :p] = x[i, :p]
        ids[i, p:p + len(answer)] = torch.tensor(answer, dtype=x.dtype)
        labels[i, p:p + len(answer)] = torch.tensor(answer, dtype=y.dtype)
    return ids, labels, prompts > 0


def has_answer(y: torch.Tensor) -> torch.Tensor:
    """Rows with at least one scored answer token ``[N]`` (bool)."""
    return (y[:, 1:] != IGNORE_INDEX).any(dim=1)

