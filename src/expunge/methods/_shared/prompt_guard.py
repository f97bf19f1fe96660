"""What the inference-time guards (``eco_prompts``, ``guard_decoding``) share: how a prompt is delimited in a row, the
prompt classifier that flags forget-scope prompts, and the answer tokens specific to the forget targets.

**Prompt of a row.** The ``llm`` task's rows are ``prompt · answer · EOS · PAD…``; ``labels`` mark the answer, but a
model's ``forward`` only sees ``input_ids``. At unlearning time the method reads labelled rows, so it learns the
*prompt-end token*: the token right before the first answer token, when every question–answer row of the data it reads
ends its prompt with the same token (a template's "?"; :func:`prompt_end_token`). At inference the prompt of a row
is then its tokens up to and including the first occurrence of that token; a row without it (a biography row, whose
prompt is empty, or when no common prompt-end token exists: ``-1``) is *all prompt*: every non-padding token.
Training uses the same rule (:func:`prompt_mask_from_labels`: the labelled prompt, or the whole row when it has no
prompt), so the classifier sees at training what it sees at inference.

**Classifier.** An MLP on frozen features of the prompt: the mean and the max over the prompt's tokens of a *copy* of
the Original's input token embeddings (kept as a buffer, so the guard's decisions do not drift when its language
model's weights are later fine-tuned or quantised by an audit). Trained full-batch with Adam on forget-scope (label 1)
vs retain-scope (label 0) prompts, classes weighted to equal total weight (the forget set is a few % of the data);
flagged when p(forget) > ``threshold``. GUARD's abstract specifies "an MLP on prompt embeddings"; ECO trains a
RoBERTa classifier — a model this toolkit does not ship, so both use this MLP (documented choice).

**Forget-specific tokens.** Answer tokens of the forget rows whose document frequency among the retain answers is at
most ``common_frac`` and that the row's own prompt does not contain (template words such as "was" / "born" occur in
most answers and are never forbidden; the person's name, repeated from the question, is what is asked about, not
the fact; a birthplace shared with a few retained people still is: the guard only acts on flagged prompts).
"""

from __future__ import annotations

import torch
from torch import nn

from expunge.errors import ExpungeError
from expunge.models.causal_lm import CausalLM
from expunge.tasks.token_logprobs import EOS_ID, IGNORE_INDEX, PAD_ID


def check_causal_lm(model: nn.Module, name: str) -> None:
    """Refuse a model that is not a :class:`CausalLM` (the guards wrap one)."""
    if not isinstance(model, CausalLM):
        raise ExpungeError(f"{name} guards a causal language model (expunge.models.causal_lm.CausalLM, e.g. "
                           f"gpt_tiny); got {type(model).__name__}. Fix: run it on the llm task")


def prompt_end_token(input_ids: torch.Tensor, labels: torch.Tensor) -> int:
    """The token that ends the prompt of every question–answer row (rows with a non-empty prompt), or -1 when they
    do not agree or there is none."""
    labelled = labels != IGNORE_INDEX
    first = labelled.float().argmax(dim=1)
    qa = labelled.any(dim=1) & (first > 0)
    if not qa.any():
        return -1
    ends = input_ids[qa, first[qa] - 1].unique()
    return int(ends[0]) if ends.numel() == 1 else -1


def prompt_mask(input_ids: torch.Tensor, end_id: int) -> torch.Tensor:
    """``[N, L]`` bool: each row's prompt — its tokens up to and including the first ``end_id``, or every non-padding
    token when the row has none (or ``end_id`` is -1)."""
    real = input_ids != PAD_ID
    if end_id < 0:
        return real
    hit = input_ids == end_id
    has = hit.any(dim=1, keepdim=True)
    upto = (hit.long().cumsum(dim=1) - hit.long()) == 0  # positions up to and including the first hit
    return torch.where(has, upto & real, real)


def prompt_mask_from_labels(input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[N, L]`` bool: the labelled prompt (tokens before the first answer token); a row without a prompt (a bio)
    or without an answer is all prompt (its non-padding tokens)."""
    real = input_ids != PAD_ID
    labelled = labels != IGNORE_INDEX
    first = torch.where(labelled.any(dim=1), labelled.float().argmax(dim=1), torch.zeros_like(labels[:, 0]))
    pos = torch.arange(input_ids.shape[1]).unsqueeze(0)
    before = pos < first.unsqueeze(1)
    return torch.where((first > 0).unsqueeze(1), before & real, real)


class PromptClassifier(nn.Module):
    """p(forget-scope | prompt) from the mean ‖ max of frozen token embeddings over the prompt, through an MLP."""

    def __init__(self, token_embeddings: torch.Tensor, hidden: int = 64) -> None:
        super().__init__()
        d = token_embeddings.shape[1]
        self.register_buffer("token_embeddings", token_embeddings.detach().clone().float())
        self.mlp = nn.Sequential(nn.Linear(2 * d, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.register_buffer("threshold", torch.tensor(0.5))

    def features(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        e = self.token_embeddings[input_ids.long().clamp(0, self.token_embeddings.shape[0] - 1)]  # [N, L, d]
        m = mask.unsqueeze(-1).float()
        count = m.sum(dim=1).clamp_min(1.0)
        mean = (e * m).sum(dim=1) / count
        mx = torch.where(mask.unsqueeze(-1), e, torch.full_like(e, -1e4)).amax(dim=1)
        mx = torch.where(mask.any(dim=1, keepdim=True), mx, torch.zeros_like(mx))
        return torch.cat([mean, mx], dim=1)

    def prob(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(self.features(input_ids, mask)).squeeze(-1))

    @torch.no_grad()
    def flags(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[N]`` bool: the prompt is forget-scope (p > threshold)."""
        return self.prob(input_ids, mask) > self.threshold


def train_classifier(clf: PromptClassifier, ids: torch.Tensor, mask: torch.Tensor, target: torch.Tensor, *,
                     steps: int, lr: float, seed: int) -> dict[str, float]:
    """Full-batch Adam on the class-balanced binary cross-entropy; returns the training accuracies per class."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for mod in clf.mlp:
            if isinstance(mod, nn.Linear):
                mod.reset_parameters()
    feats = clf.features(ids, mask).detach()
    y = target.float()
    n_pos, n_neg = float(y.sum()), float((1 - y).sum())
    weight = torch.where(y > 0, 0.5 / max(n_pos, 1.0), 0.5 / max(n_neg, 1.0))
    opt = torch.optim.Adam(clf.mlp.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        logit = clf.mlp(feats).squeeze(-1)
        loss = (nn.functional.binary_cross_entropy_with_logits(logit, y, reduction="none") * weight).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        flagged = torch.sigmoid(clf.mlp(feats).squeeze(-1)) > clf.threshold
    pos, neg = y > 0, y <= 0
    return {"train_acc_forget": float(flagged[pos].float().mean()) if pos.any() else float("nan"),
            "train_acc_retain": float((~flagged[neg]).float().mean()) if neg.any() else float("nan")}


def answer_token_sets(labels: torch.Tensor) -> list[set[int]]:
    """Each row's answer tokens (labelled, EOS excluded)."""
    return [{int(t) for t in row[(row != IGNORE_INDEX) & (row != EOS_ID) & (row != PAD_ID)]} for row in labels]


def forget_specific_tokens(forget_ids: torch.Tensor, forget_labels: torch.Tensor, retain_labels: torch.Tensor,
                           common_frac: float) -> list[list[int]]:
    """Per forget row, its answer tokens (in order, deduplicated) whose document frequency among the retain answers
    is ≤ ``common_frac`` and that its own prompt does not contain (the question's subject — "where was NAME born?"
    — is what is asked about, not the fact)."""
    retain_sets = answer_token_sets(retain_labels)
    n = max(len(retain_sets), 1)
    df: dict[int, int] = {}
    for s in retain_sets:
        for t in s:
            df[t] = df.get(t, 0) + 1
    out: list[list[int]] = []
    for ids, row in zip(forget_ids, forget_labels, strict=True):
        toks = [int(t) for t in row[(row != IGNORE_INDEX) & (row != EOS_ID) & (row != PAD_ID)]]
        asked = {int(t) for t in ids[(row == IGNORE_INDEX) & (ids != PAD_ID)]}
        seen: list[int] = []
        for t in toks:
            if df.get(t, 0) / n <= common_frac and t not in seen and t not in asked:
                seen.append(t)
        out.append(seen)
    return out


def fit_guard_classifier(model: nn.Module, fx: torch.Tensor, fy: torch.Tensor, rx: torch.Tensor, ry: torch.Tensor,
                         *, hidden: int, steps: int, lr: float, threshold: float, seed: int) \
        -> tuple[PromptClassifier, int, dict[str, float]]:
    """The prompt classifier of a guard over the forget rows (fx, fy) vs the retain rows (rx, ry), the prompt-end
    token learned from both, and training notes. ``model`` must expose ``embed`` (a :class:`CausalLM`)."""
    ids = torch.cat([fx, rx]).long()
    labels = torch.cat([fy, ry]).long()
    end_id = prompt_end_token(ids, labels)
    mask = prompt_mask_from_labels(ids, labels)
    table = model.lm.get_input_embeddings().weight  # type: ignore[union-attr, operator]
    clf = PromptClassifier(table, hidden=hidden)
    clf.threshold.fill_(threshold)
    target = torch.cat([torch.ones(len(fx)), torch.zeros(len(rx))])
    notes = train_classifier(clf, ids, mask, target, steps=steps, lr=lr, seed=seed)
    # what inference will see: the prompt delimited from input_ids alone
    flagged = clf.flags(ids, prompt_mask(ids, end_id))
    notes.update(prompt_end_id=end_id,
                 flagged_forget=float(flagged[: len(fx)].float().mean()) if len(fx) else float("nan"),
                 flagged_retain=float(flagged[len(fx):].float().mean()) if len(rx) else float("nan"))
    return clf, end_id, notes
