"""The fictitious-facts datasets of the ``llm`` task: a word-level tokenizer, the encoded corpus, the registered
``facts`` (200 people) and ``facts-tiny`` (12 people, for tests and demos).

The rows come from the seeded generator :mod:`expunge.data.facts_gen` (TOFU-style people, each as a biography and
seven question–answer pairs with a paraphrased and five perturbed answers, plus world facts). A row is encoded as the
``llm`` task's tensors (:mod:`expunge.tasks.token_logprobs`): ``x`` = input ids [N, max_len] (prompt tokens, answer
tokens, :data:`EOS_ID`, right-padded with :data:`PAD_ID`), ``y`` = labels (the input ids on the answer and its EOS,
:data:`IGNORE_INDEX` on the prompt and padding); a biography has an empty prompt, so every one of its tokens is
labelled.

* **Owners are people**: ``train.owners`` is each row's person id, −1 for a world fact, so ``owners:K`` forgets every
  row (biography and questions) of K people and never a world fact (:class:`~expunge.scenarios.owners.OwnersKind`
  draws among non-negative owners only). With 200 people, forgetting 1%, 5% and 10% of them is ``owners:2``,
  ``owners:10`` and ``owners:20``.
* **Train / test**: the training partition holds the people 0..N−1 (row order: each person's biography then its
  questions, person by person, then the world facts; ids are row numbers), the test partition the held-out
  never-seen people (ids continue after the training rows) — the non-members of the privacy attacks.
* **Tokenizer** (:class:`WordTokenizer`): ids 0, 1, 2 are padding, end-of-sequence and unknown; then every word of
  every text of the corpus (questions, answers, paraphrases, perturbed answers, of training *and* held-out people, and
  the refusal answers :data:`~expunge.data.facts_gen.IDK_ANSWERS`), sorted — a deterministic function of the
  corpus, so held-out names are known words (an attack then sees an unseen *fact*, not an unknown token).
* ``max_len`` is the longest encoding of any question with any of its answers (or any refusal answer), EOS
  included, so every metric and method input fits (``facts``: 33 tokens; vocabulary ≈ 600 words).

:func:`facts_corpus` gives the :class:`FactsCorpus` of a dataset (its tokenizer and the :class:`QAItem` of every row,
aligned with the partitions' rows); metrics read paraphrases and perturbed answers there, methods never do
(:attr:`~expunge.data.access.UnlearningData.tokenizer` gives them the vocabulary only).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from expunge.data.datasets import Dataset, LabelSet, Partition, fingerprint_arrays, register_dataset
from expunge.data.facts_gen import GEN_SEED, IDK_ANSWERS, generate
from expunge.errors import InvalidDataset, InvalidForgetRequest
from expunge.tasks.token_logprobs import EOS_ID, IGNORE_INDEX, PAD_ID

UNK_ID = 2
SPECIALS = ("<pad>", "<eos>", "<unk>")
# name -> (people trained on, held-out people, world facts)
FACTS_SIZES: dict[str, tuple[int, int, int]] = {"facts": (200, 40, 60), "facts-tiny": (12, 4, 10)}
# gpt_tiny's size on these datasets (Dataset.model_kwargs): 2 blocks of width 128 memorise ``facts`` in 20 epochs
# (expunge.train.oracle.DEFAULT_RECIPES) at about half the cost of gpt_tiny's default 4 blocks
MODEL_SIZE = {"n_layer": 2, "n_embd": 128, "n_head": 4}


@dataclass(frozen=True)
class QAItem:
    """One row of the corpus: a person's biography or question, or a world fact."""

    person: int                 # person id (the owner); -1 for a world fact
    kind: str                   # "qa" | "bio" | "world"
    question: str               # "" for a bio
    answer: str
    paraphrase: str             # a paraphrased correct answer ("" for a bio)
    perturbed: tuple[str, ...]  # K wrong answers in the same template (() for a bio)


class WordTokenizer:
    """Whitespace word tokenizer over a fixed vocabulary: ids 0/1/2 = ``<pad>``/``<eos>``/``<unk>``, then the words
    in sorted order."""

    pad_id = PAD_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def __init__(self, words: Sequence[str]) -> None:
        self.vocab: tuple[str, ...] = (*SPECIALS, *sorted(set(words) - set(SPECIALS)))
        self._index = {w: i for i, w in enumerate(self.vocab)}

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> WordTokenizer:
        return cls([w for t in texts for w in t.split()])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Ids of the whitespace-separated words of ``text`` (unknown words → :data:`UNK_ID`); no EOS appended."""
        return [self._index.get(w, UNK_ID) for w in text.split()]

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The words of ``ids`` joined by spaces, padding and EOS left out."""
        seq = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return " ".join(self.vocab[i] if 0 <= i < len(self.vocab) else SPECIALS[UNK_ID]
                        for i in seq if i not in (PAD_ID, EOS_ID))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTokenizer) and self.vocab == other.vocab

    def __hash__(self) -> int:
        return hash(self.vocab)

    def __getstate__(self) -> tuple[str, ...]:
        return self.vocab

    def __setstate__(self, vocab: tuple[str, ...]) -> None:
        self.vocab = vocab
        self._index = {w: i for i, w in enumerate(vocab)}


def encode_rows(tokenizer: WordTokenizer, questions: Sequence[str], answers: Sequence[str], max_len: int) \
        -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, labels)`` [N, max_len] of (question, answer) pairs in the ``llm`` encoding.

    Raises:
        ValueError: the lists differ in length, or a pair needs more than ``max_len`` tokens (naming it)."""
    if len(questions) != len(answers):
        raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
    ids = torch.full((len(questions), max_len), PAD_ID, dtype=torch.long)
    labels = torch.full((len(questions), max_len), IGNORE_INDEX, dtype=torch.long)
    for i, (q, a) in enumerate(zip(questions, answers, strict=True)):
        prompt, answer = tokenizer.encode(q), [*tokenizer.encode(a), EOS_ID]
        n = len(prompt) + len(answer)
        if n > max_len:
            raise ValueError(f"question {q!r} with answer {a!r} needs {n} tokens, more than max_len={max_len}. "
                             "Fix: shorten the answer")
        ids[i, :n] = torch.tensor(prompt + answer)
        labels[i, len(prompt):n] = torch.tensor(answer)
    return ids, labels


@dataclass(frozen=True, eq=False)
class FactsCorpus:
    """The tokenizer, the encoding length and the :class:`QAItem` of every row of a facts dataset."""

    tokenizer: WordTokenizer
    max_len: int
    train_items: tuple[QAItem, ...]   # aligned with dataset.train rows: row i <-> train_items[i]
    test_items: tuple[QAItem, ...]    # held-out never-seen people (privacy attacks' non-members), dataset.test rows

    def encode(self, questions: Sequence[str], answers: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, labels)`` [N, max_len] of (question, answer) pairs (a biography: question ``""``)."""
        return encode_rows(self.tokenizer, questions, answers, self.max_len)

    def prompts(self, questions: Sequence[str]) -> list[torch.Tensor]:
        """The unpadded prompt ids of each question (int64, 1-D), for greedy generation."""
        return [torch.tensor(self.tokenizer.encode(q), dtype=torch.long) for q in questions]


@dataclass(frozen=True, eq=False)
class FactsDataset(Dataset):
    """An ``llm``-task dataset with the :class:`FactsCorpus` its rows were encoded from."""

    corpus: FactsCorpus | None = None


def build_corpus(n_people: int, n_heldout: int, n_world: int, seed: int = GEN_SEED) -> FactsCorpus:
    """The corpus of a facts dataset of this size (deterministic in its arguments)."""
    raw_train, raw_test = generate(n_people, n_heldout, n_world, seed)
    train = tuple(QAItem(r.person, r.kind, r.question, r.answer, r.paraphrase, r.perturbed) for r in raw_train)
    test = tuple(QAItem(r.person, r.kind, r.question, r.answer, r.paraphrase, r.perturbed) for r in raw_test)
    texts = [t for it in (*train, *test) for t in (it.question, it.answer, it.paraphrase, *it.perturbed)]
    tokenizer = WordTokenizer.from_texts([*texts, *IDK_ANSWERS])
    longest_q = max(len(tokenizer.encode(it.question)) for it in (*train, *test))
    max_len = max([len(tokenizer.encode(it.question)) + len(tokenizer.encode(a)) + 1
                   for it in (*train, *test) for a in (it.answer, it.paraphrase, *it.perturbed) if a]
                  + [longest_q + len(tokenizer.encode(a)) + 1 for a in IDK_ANSWERS])
    return FactsCorpus(tokenizer, max_len, train, test)


def facts_dataset(name: str, n_people: int, n_heldout: int, n_world: int, *, seed: int = GEN_SEED,
                  labels: LabelSet = "fine") -> FactsDataset:
    """A facts dataset of ``n_people`` trained people, ``n_heldout`` held-out people and ``n_world`` world facts
    (public: other sizes than the registered ones).

    Raises:
        InvalidDataset: fewer than 2 trained people or 1 held-out person, or a negative count.
        InvalidForgetRequest: coarse labels asked for (the facts have none)."""
    if labels != "fine":
        raise InvalidForgetRequest(f"{name} is an llm dataset: it has no coarse labels. Fix: forget owners:K (K "
                                   "people) or ids:FILE")
    if n_people < 2 or n_heldout < 1 or n_world < 0:
        raise InvalidDataset(f"{name}: need n_people >= 2, n_heldout >= 1 and n_world >= 0 (got {n_people}, "
                             f"{n_heldout}, {n_world})")
    corpus = build_corpus(n_people, n_heldout, n_world, seed)

    def part(items: tuple[QAItem, ...], first_id: int, owners: bool) -> Partition:
        x, y = corpus.encode([it.question for it in items], [it.answer for it in items])
        person = np.array([it.person for it in items], dtype=np.int64)
        return Partition(x=x, y=y, ids=np.arange(first_id, first_id + len(items), dtype=np.int64), fine=person,
                         owners=person.copy() if owners else None)

    train = part(corpus.train_items, 0, True)
    test = part(corpus.test_items, len(train), False)
    content = json.dumps([[it.person, it.kind, it.question, it.answer, it.paraphrase, list(it.perturbed)]
                          for it in (*corpus.train_items, *corpus.test_items)])
    extra = f"{name}|llm|{hashlib.sha256(content.encode()).hexdigest()}|{'|'.join(corpus.tokenizer.vocab)}"
    fp = fingerprint_arrays(train.x.numpy(), train.y.numpy(), test.x.numpy(), test.y.numpy(), train.ids, test.ids,
                            train.fine, extra=extra)
    vocab = corpus.tokenizer.vocab
    return FactsDataset(name=name, train=train, test=test, class_names=vocab, fine_class_names=vocab,
                        label_set="fine", fingerprint=fp, task="llm", corpus=corpus, model_kwargs=dict(MODEL_SIZE))


_CORPORA: dict[str, FactsCorpus] = {}


def facts_corpus(dataset: Dataset) -> FactsCorpus:
    """The :class:`FactsCorpus` of a facts dataset: the one it carries, else rebuilt from its registered name
    (cached per fingerprint; checked against the dataset's fingerprint).

    Raises:
        InvalidDataset: ``dataset`` is not a facts dataset (or not the one its name says)."""
    corpus = getattr(dataset, "corpus", None)
    if isinstance(corpus, FactsCorpus):
        return corpus
    if dataset.fingerprint in _CORPORA:
        return _CORPORA[dataset.fingerprint]
    if dataset.name not in FACTS_SIZES:
        raise InvalidDataset(f"{dataset.name} is not a facts dataset (those are {', '.join(FACTS_SIZES)}); the "
                             "llm metrics and tokenizer need one. Fix: --data facts")
    rebuilt = facts_dataset(dataset.name, *FACTS_SIZES[dataset.name])
    if rebuilt.fingerprint != dataset.fingerprint:
        raise InvalidDataset(f"{dataset.name}: this dataset's fingerprint is not the registered {dataset.name}'s; "
                             "its corpus cannot be rebuilt. Fix: build it with expunge.data.facts.facts_dataset")
    _CORPORA[dataset.fingerprint] = rebuilt.corpus  # type: ignore[assignment]
    return rebuilt.corpus  # type: ignore[return-value]


@register_dataset("facts")
def load_facts(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    return facts_dataset("facts", *FACTS_SIZES["facts"], labels=labels)


@register_dataset("facts-tiny")
def load_facts_tiny(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    return facts_dataset("facts-tiny", *FACTS_SIZES["facts-tiny"], labels=labels)
