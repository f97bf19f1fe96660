"""Test doubles of the llm metrics: a facts corpus satisfying /work/shared/LLM_CONTRACT.md (word tokenizer, QA items
aligned with the dataset's rows, encode / prompts), its dataset of task ``llm``, and bigram models whose logits are
set by hand (so every metric has a hand-computable value).

The corpus: 4 training people with 2 questions and a biography each, 3 world facts, 2 held-out people. Every item
uses its own words, so a bigram table that maps each trained token to its successor memorises the trained answers
exactly and knows nothing of the others (their rows stay uniform).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from expunge.data.datasets import Dataset, Partition, fingerprint_arrays
from expunge.data.request import Splits
from expunge.metrics.base import EvalContext
from expunge.tasks import TASKS, Task, register_task
from expunge.tasks import base as tasks_base
from expunge.tasks.token_logprobs import EOS_ID, IGNORE_INDEX, PAD_ID

HOT = 10.0  # the memorising bigram's logit on the successor token
MAX_LEN = 12


@dataclass(frozen=True)
class FakeQAItem:
    person: int
    kind: str
    question: str
    answer: str
    paraphrase: str
    perturbed: tuple[str, ...]


class FakeTokenizer:
    pad_id, eos_id = PAD_ID, EOS_ID

    def __init__(self, words: Sequence[str]) -> None:
        self.vocab = {w: i + 2 for i, w in enumerate(dict.fromkeys(words))}
        self.words = {i: w for w, i in self.vocab.items()}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) + 2

    def encode(self, text: str) -> list[int]:
        return [self.vocab[w] for w in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.words[int(i)] for i in ids if int(i) not in (PAD_ID, EOS_ID))


@dataclass(frozen=True)
class FakeCorpus:
    tokenizer: FakeTokenizer
    max_len: int
    train_items: tuple[FakeQAItem, ...]
    test_items: tuple[FakeQAItem, ...]

    def encode(self, questions: Sequence[str], answers: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.full((len(questions), self.max_len), PAD_ID, dtype=torch.long)
        labels = torch.full_like(ids, IGNORE_INDEX)
        for r, (q, a) in enumerate(zip(questions, answers, strict=True)):
            p, ans = self.tokenizer.encode(q), [*self.tokenizer.encode(a), EOS_ID]
            ids[r, :len(p) + len(ans)] = torch.tensor(p + ans)
            labels[r, len(p):len(p) + len(ans)] = torch.tensor(ans)
        return ids, labels

    def prompts(self, questions: Sequence[str]) -> list[torch.Tensor]:
        return [torch.tensor(self.tokenizer.encode(q), dtype=torch.long) for q in questions]


def _person(p: int) -> list[FakeQAItem]:
    qa = [FakeQAItem(p, "qa", f"q{p}{j} w{p}{j}", f"a{p}{j} b{p}{j}", f"c{p}{j} d{p}{j}", (f"e{p}{j}", f"g{p}{j}"))
          for j in range(2)]
    return [*qa, FakeQAItem(p, "bio", "", f"s{p} t{p} u{p}", "", ())]


def make_corpus() -> FakeCorpus:
    train = [it for p in range(4) for it in _person(p)]
    train += [FakeQAItem(-1, "world", f"q9{j} w9{j}", f"a9{j} b9{j}", f"c9{j} d9{j}", (f"e9{j}", f"g9{j}"))
              for j in range(3)]
    test = [it for p in (4, 5) for it in _person(p)]
    words = [w for it in train + test for text in (it.question, it.answer, it.paraphrase, *it.perturbed)
             for w in text.split()]
    return FakeCorpus(FakeTokenizer(words), MAX_LEN, tuple(train), tuple(test))


class FakeLLMTask(Task):
    """Stands in for llm-core's ``llm`` task until it is on main (registered only if ``llm`` is missing)."""

    name, summary = "llm", "test double of the llm task"
    headline_metrics: tuple[str, ...] = ()
    parity_criteria: dict[str, float] = {}  # noqa: RUF012

    def targets(self, y):  # type: ignore[no-untyped-def]
        return torch.as_tensor(np.asarray(y), dtype=torch.long)

    def num_outputs(self, targets: torch.Tensor, num_classes: int) -> int:
        return num_classes

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs[:, :-1].flatten(0, 1), targets[:, 1:].flatten(), ignore_index=IGNORE_INDEX)

    def example_losses(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return np.zeros(len(targets))


@pytest.fixture(scope="session", autouse=True)
def llm_task() -> Iterator[str]:
    added = "llm" not in TASKS.names()
    if added:
        register_task(FakeLLMTask)
    yield "llm"
    if added:
        TASKS.unregister("llm")
        tasks_base._INSTANCES.pop("llm", None)


def make_dataset(corpus: FakeCorpus) -> Dataset:
    def part(items: tuple[FakeQAItem, ...], start: int) -> Partition:
        x, y = corpus.encode([it.question for it in items], [it.answer for it in items])
        ids = np.arange(start, start + len(items), dtype=np.int64)
        return Partition(x=x, y=y, ids=ids, fine=np.zeros(len(items), np.int64),
                         owners=np.array([it.person for it in items], dtype=np.int64))

    train, test = part(corpus.train_items, 0), part(corpus.test_items, 100)
    fp = fingerprint_arrays(train.x.numpy(), test.x.numpy(), extra="fake-facts|llm")
    return Dataset(name="fake-facts", train=train, test=test, class_names=(), fine_class_names=(), label_set="fine",
                   fingerprint=fp, task="llm")


class BigramLM(nn.Module):
    """logits[b, t] = table[input_ids[b, t]]; greedy generation by the same table (a CausalLM stand-in)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(vocab_size, vocab_size), requires_grad=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.table[input_ids.long()]

    @torch.no_grad()
    def generate_greedy(self, prompt: torch.Tensor, *, max_new_tokens: int, eos_id: int) -> list[int]:
        out: list[int] = []
        last = int(prompt[-1])
        for _ in range(max_new_tokens):
            last = int(self.table[last].argmax())
            if last == eos_id:
                break
            out.append(last)
        return out


def memoriser(corpus: FakeCorpus, items: Sequence[FakeQAItem]) -> BigramLM:
    """A bigram model that puts logit HOT on the successor of every token of ``items`` (question → answer → EOS)."""
    m = BigramLM(corpus.tokenizer.vocab_size)
    with torch.no_grad():
        for it in items:
            seq = corpus.tokenizer.encode(it.question) + corpus.tokenizer.encode(it.answer) + [EOS_ID]
            for a, b in itertools.pairwise(seq):
                m.table[a, b] = HOT
    return m


def hot_logprobs(vocab: int) -> tuple[float, float]:
    """(log p of the hot token, log p of any other) in a memorised row."""
    z = math.log(math.exp(HOT) + vocab - 1)
    return HOT - z, -z


@dataclass
class World:
    corpus: FakeCorpus
    dataset: Dataset
    splits: Splits

    def forget_items(self) -> list[FakeQAItem]:
        return [self.corpus.train_items[p] for p in self.splits.forget]

    def retain_items(self) -> list[FakeQAItem]:
        return [self.corpus.train_items[p] for p in self.splits.retain]

    def ctx(self, **models: nn.Module) -> EvalContext:
        return EvalContext(self.dataset, self.splits, models, extras={"llm_corpus": self.corpus})


@pytest.fixture(scope="session")
def world(llm_task: str) -> World:
    corpus = make_corpus()
    ds = make_dataset(corpus)
    forget_ids = ds.train.ids[[0, 1, 2]]  # person 0: two questions and the biography
    return World(corpus, ds, Splits.from_ids(ds, forget_ids))
