"""Stand-ins for the LLM method tests: a tiny random gpt_tiny, hand-made question–answer tensors in the llm task's
encoding (prompt, answer, EOS, right-padded with PAD_ID; labels = ids on the answer and EOS, −100 elsewhere), a
word tokenizer and an object with UnlearningData's generic batch API (forget/retain loaders, a retain subset)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from expunge.data.batches import Batches
from expunge.models.registry import build_model
from expunge.tasks.token_logprobs import EOS_ID, IGNORE_INDEX, PAD_ID

LENGTH, VOCAB = 12, 64
WORDS = ["i", "do", "not", "know", ".", "have", "no", "idea", "am", "sure", "about", "that", "cannot", "answer", "is",
         "unknown", "to", "me", "never", "heard", "of", "person"]


class WordTokenizer:
    """Whitespace words → ids 30.. (unknown words → unk_id 2, like the facts corpus' closed vocabulary)."""

    pad_id, eos_id, unk_id = PAD_ID, EOS_ID, 2

    def __init__(self) -> None:
        self.ids = {w: 30 + i for i, w in enumerate(WORDS)}
        self.vocab_size = VOCAB

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(w, self.unk_id) for w in text.split()]


def encode_rows(prompts: list[list[int]], answers: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.full((len(prompts), LENGTH), PAD_ID, dtype=torch.long)
    y = torch.full_like(x, IGNORE_INDEX)
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        row = [*p, *a, EOS_ID]
        x[i, :len(row)] = torch.tensor(row)
        y[i, len(p):len(row)] = torch.tensor([*a, EOS_ID])
    return x, y


def make_rows(n: int, seed: int, *, bio: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` QA rows (prompt 3 ids in 3..14, answer 3 ids in 14..30) and ``bio`` rows without a prompt."""
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, 14, (3,), generator=g).tolist() for _ in range(n)] + [[] for _ in range(bio)]
    answers = [torch.randint(14, 30, (3,), generator=g).tolist() for _ in range(n + bio)]
    return encode_rows(prompts, answers)


class FakeLLMData:
    """UnlearningData's generic batch API over hand-made tensors (what the llm methods call)."""

    def __init__(self, forget: tuple[torch.Tensor, torch.Tensor], retain: tuple[torch.Tensor, torch.Tensor],
                 tokenizer: WordTokenizer | None = None, seed: int = 0) -> None:
        self.forget, self.retain, self.tokenizer, self.seed = forget, retain, tokenizer, seed
        self.n_forget, self.n_train = len(forget[0]), len(forget[0]) + len(retain[0])
        self.retain_subset_seen = 0

    def forget_loader(self, batch_size: int, *, shuffle: bool = True, seed: int | None = None) -> Batches:
        return Batches(*self.forget, batch_size=batch_size, shuffle=shuffle,
                       seed=self.seed if seed is None else seed, role="forget")

    def retain_loader(self, batch_size: int, *, shuffle: bool = True, seed: int | None = None) -> Batches:
        return Batches(*self.retain, batch_size=batch_size, shuffle=shuffle,
                       seed=self.seed if seed is None else seed, role="retain")

    def retain_subset_loader(self, batch_size: int, *, fraction: float | None = None, shuffle: bool = True,
                             seed: int | None = None, per_class: int | None = None) -> Batches:
        n = len(self.retain[0])
        k = max(1, round((fraction or 1.0) * n))
        pos = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
        self.retain_subset_seen += k
        return Batches(self.retain[0][pos], self.retain[1][pos], batch_size=batch_size, shuffle=shuffle,
                       seed=self.seed if seed is None else seed, role="retain")


@pytest.fixture(scope="session")
def tiny_lm() -> Callable[..., torch.nn.Module]:
    def build(seed: int = 0, **kw: int) -> torch.nn.Module:
        cfg = {"n_layer": 1, "n_embd": 32, "n_head": 2, **kw}
        return build_model("gpt_tiny", input_shape=(LENGTH,), num_classes=VOCAB, seed=seed, **cfg)

    return build


@pytest.fixture(scope="session")
def fake_data() -> Callable[..., FakeLLMData]:
    def make(n_forget: int = 8, n_retain: int = 16, *, bio: int = 0, tokenizer: bool = True) -> FakeLLMData:
        return FakeLLMData(make_rows(n_forget, 1, bio=bio), make_rows(n_retain, 2),
                           WordTokenizer() if tokenizer else None)

    return make


@pytest.fixture(scope="session")
def memorised(tiny_lm, fake_data) -> Callable[..., tuple[torch.nn.Module, FakeLLMData]]:
    """A tiny model trained on forget ∪ retain rows until it has learned them (a stand-in Original; trained once per
    session: tests unlearn a deep copy and must not modify it)."""
    from expunge.tasks.token_logprobs import lm_loss

    cache: dict[int, torch.nn.Module] = {}

    def make(steps: int = 150, **kw: int) -> tuple[torch.nn.Module, FakeLLMData]:
        data = fake_data(**kw)
        key = hash((steps, tuple(sorted(kw.items()))))
        if key in cache:
            return cache[key], data
        torch.manual_seed(0)
        model = tiny_lm()
        x = torch.cat([data.forget[0], data.retain[0]])
        y = torch.cat([data.forget[1], data.retain[1]])
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(steps):
            opt.zero_grad()
            lm_loss(model(x), y).backward()
            opt.step()
        cache[key] = model.eval()
        return cache[key], data

    return make
