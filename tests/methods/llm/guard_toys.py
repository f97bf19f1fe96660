"""Hand-made question–answer rows in the ``llm`` task's encoding and a tiny GPT that memorises them, for the guard,
anti-sample and audit tests (until the facts dataset lands they stand in for it).

Vocabulary 48: PAD 0, EOS 1, "?" 2 (every question ends with it), template words 3–7, person p's name 10 + p,
birthplace 20 + p, profession 30 + p (p < 10). Two questions per person:
``where born NAME ?`` → ``in PLACE``; ``job NAME ?`` → ``works JOB``. Persons 0 and 1 are the forget set."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from expunge.models.registry import build_model
from expunge.tasks.token_logprobs import EOS_ID, IGNORE_INDEX, PAD_ID, lm_loss

V, L, PEOPLE, FORGET_PEOPLE = 48, 10, 10, (0, 1)
QMARK = 2


def rows(people=range(PEOPLE)) -> tuple[torch.Tensor, torch.Tensor]:
    ids, labels = [], []
    for p in people:
        for prompt, answer in (([3, 4, 10 + p, QMARK], [5, 20 + p]), ([6, 10 + p, QMARK], [7, 30 + p])):
            seq = prompt + answer + [EOS_ID]
            lab = [IGNORE_INDEX] * len(prompt) + answer + [EOS_ID]
            ids.append(seq + [PAD_ID] * (L - len(seq)))
            labels.append(lab + [IGNORE_INDEX] * (L - len(lab)))
    return torch.tensor(ids), torch.tensor(labels)


def forget_retain():
    fx, fy = rows(FORGET_PEOPLE)
    rx, ry = rows([p for p in range(PEOPLE) if p not in FORGET_PEOPLE])
    return fx, fy, rx, ry


def tiny_model(seed: int = 0, n_layer: int = 1):
    return build_model("gpt_tiny", input_shape=(L,), num_classes=V, seed=seed, n_layer=n_layer, n_embd=32,
                       n_head=2)


def trained_model(people=range(PEOPLE), steps: int = 150, seed: int = 0, n_layer: int = 1):
    """gpt_tiny after full-batch Adam on the rows of ``people`` (memorised: answer probability ≈ 1)."""
    torch.manual_seed(seed)
    m = tiny_model(seed, n_layer)
    x, y = rows(people)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        lm_loss(m(x), y).backward()
        opt.step()
    return m.eval()


class FakeData:
    """The two gated calls the guards make, over the toy rows (stands in for UnlearningData)."""

    task = SimpleNamespace(name="llm")

    def __init__(self):
        self.fx, self.fy, self.rx, self.ry = forget_retain()

    def forget_tensors(self):
        return self.fx, self.fy

    def retain_tensors(self):
        return self.rx, self.ry
