"""Hand-made question–answer rows in the ``llm`` task's encoding and a tiny GPT that memorises them, for the guard,
anti-sample and audit tests (until the facts dataset lands they stand in for it).

Vocabulary 48: PAD 0, EOS 1, "?" 2 (every question ends with it), template words 3–7, person p's name 10 + p,
birthplace 20 + p, profession 30 + p (p < 10). Two questions per person:
``where born NAME ?`` → ``in PLACE``; ``job NAME ?`` → ``works JOB``. Persons 0 and 1 are the forget set."""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import torch

from expunge.models.registry import ModelSpec
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


def spec(n_layer: int = 1) -> ModelSpec:
    return ModelSpec("gpt_tiny", (L,), V, {"n_layer": n_layer, "n_embd": 32, "n_head": 2})


def tiny_model(seed: int = 0, n_layer: int = 1):
    return spec(n_layer).build(seed=seed)


def trained_model(people=range(PEOPLE), steps: int = 150, seed: int = 0, n_layer: int = 1):
    """gpt_tiny after full-batch Adam on the rows of ``people`` (memorised: every answer probability > 0.9). Cached and
    shared: never modify it (deep-copy first)."""
    return _trained(tuple(people), steps, seed, n_layer)


@lru_cache(maxsize=8)
def _trained(people: tuple[int, ...], steps: int, seed: int, n_layer: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        m = tiny_model(seed, n_layer)
        x, y = rows(people)
        opt = torch.optim.Adam(m.parameters(), lr=2e-2)
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


def prompt_of(x: torch.Tensor, y: torch.Tensor, i: int) -> torch.Tensor:
    """Row i's unpadded prompt (what generation metrics pass to ``generate_greedy``)."""
    first = int((y[i] != IGNORE_INDEX).float().argmax())
    return x[i, :first]


def greedy_all(model, x, y, max_new_tokens: int = 4) -> list[list[int]]:
    return [model.generate_greedy(prompt_of(x, y, i), max_new_tokens=max_new_tokens, eos_id=EOS_ID)
            for i in range(len(x))]


class FakeEvalContext:
    """What the llm_audit metrics read from an EvalContext (models by role, split tensors, the cache), over the toy
    rows: forget = persons 0 and 1 (rows 0–3), retain = the others."""

    def __init__(self, models, seed: int = 0):
        import numpy as np

        self.models, self.seed, self.batch_size = dict(models), seed, 64
        self._x, self._y = rows()
        self.splits = SimpleNamespace(forget=np.arange(4), retain=np.arange(4, len(self._x)), test=np.arange(0))
        self._cache = {}

    def split_tensors(self, split):
        idx = getattr(self.splits, split)
        return self._x[idx], self._y[idx]

    def model_key(self, role):
        return str(id(self.models[role]))

    def cached(self, key, compute, *, role=None, local=False):
        full = (key, None if role is None else self.model_key(role))
        if full not in self._cache:
            self._cache[full] = compute()
        return self._cache[full]
