"""The fictitious-facts generator, the word tokenizer and the corpus encoding (known answers on the tiny corpus)."""

from __future__ import annotations

import copy

import pytest
import torch

from expunge.data.facts import UNK_ID, FactsCorpus, QAItem, WordTokenizer, build_corpus, encode_rows
from expunge.data.facts_gen import ATTRIBUTES, IDK_ANSWERS, N_PERTURBED, POOLS, TEMPLATES, generate
from expunge.tasks.token_logprobs import EOS_ID, IGNORE_INDEX, PAD_ID


@pytest.fixture(scope="module")
def corpus() -> FactsCorpus:
    return build_corpus(12, 4, 10)


def test_generation_is_deterministic_and_seeded():
    a, b = generate(12, 4, 10), generate(12, 4, 10)
    assert a == b
    assert generate(12, 4, 10, seed=1) != a


def test_rows_per_person_and_partitions(corpus):
    train, test = corpus.train_items, corpus.test_items
    assert len(train) == 12 * (1 + len(ATTRIBUTES)) + 10 and len(test) == 4 * (1 + len(ATTRIBUTES))
    assert [it.person for it in train[:8]] == [0] * 8 and train[0].kind == "bio"
    assert {it.person for it in train if it.kind != "world"} == set(range(12))
    assert {it.person for it in test} == set(range(12, 16))  # held-out people are never trained on
    assert all(it.person == -1 for it in train if it.kind == "world")
    assert sum(it.kind == "world" for it in train) == 10


def test_names_are_unique_and_appear_in_their_rows(corpus):
    bios = [it for it in (*corpus.train_items, *corpus.test_items) if it.kind == "bio"]
    names = [" ".join(b.answer.split()[:2]) for b in bios]
    assert len(set(names)) == len(names) == 16
    for it in (*corpus.train_items, *corpus.test_items):
        if it.person >= 0:
            name = names[it.person]
            assert name in it.answer and (it.kind == "bio" or name in it.question)


def test_paraphrase_and_perturbed_answers(corpus):
    for it in corpus.train_items:
        if it.kind == "bio":
            assert it.question == "" and it.paraphrase == "" and it.perturbed == ()
            continue
        assert len(it.perturbed) == N_PERTURBED == len(set(it.perturbed))
        assert it.answer not in it.perturbed and it.paraphrase != it.answer
        # the paraphrase's template (TOFU): a perturbed answer differs from the paraphrase in the value's words only
        for wrong in it.perturbed:
            assert len(wrong.split()) == len(it.paraphrase.split())
            diff = [(a, w) for a, w in zip(it.paraphrase.split(), wrong.split(), strict=True) if a != w]
            assert 1 <= len(diff) <= 2  # a book title "the ADJ NOUN" can differ in two words
            assert [w for w, _ in diff] == [w for w in it.paraphrase.split() if w not in wrong.split()]


def test_qa_answers_state_the_biography_facts(corpus):
    """Every QA's true value is the one in the person's biography (the facts are consistent)."""
    person0 = [it for it in corpus.train_items if it.person == 0]
    bio = person0[0].answer
    for attr, it in zip(ATTRIBUTES, person0[1:], strict=True):
        _, answer, _ = TEMPLATES[attr]
        values = [v for v in POOLS[attr] if it.answer == answer.format(n=" ".join(bio.split()[:2]), v=v)]
        assert len(values) == 1 and values[0] in bio


def test_world_sums_are_right():
    train, _ = generate(3, 1, 60)
    sums = [it for it in train if it.question.startswith("what is") and "plus" in it.question]
    assert sums
    for it in sums:
        a, b, c = int(it.question.split()[2]), int(it.question.split()[4]), int(it.answer.split()[-2])
        assert it.paraphrase == f"the sum of {a} and {b} is {c} ."
        assert a + b == c and all(int(w.split()[-2]) != c for w in it.perturbed)


def test_tokenizer_known_answers():
    tok = WordTokenizer(["b", "a", "a", "c"])
    assert tok.vocab == ("<pad>", "<eos>", "<unk>", "a", "b", "c") and tok.vocab_size == 6
    assert (tok.pad_id, tok.eos_id) == (PAD_ID, EOS_ID)
    assert tok.encode("a c  b zz") == [3, 5, 4, UNK_ID]
    assert tok.decode([3, 5, EOS_ID, PAD_ID]) == "a c"
    assert tok.decode(torch.tensor([4])) == "b"
    assert copy.deepcopy(tok) == tok and copy.deepcopy(tok).encode("c") == [5]  # state = the vocabulary


def test_vocabulary_covers_the_corpus_and_refusals(corpus):
    tok = corpus.tokenizer
    texts = [t for it in (*corpus.train_items, *corpus.test_items)
             for t in (it.question, it.answer, it.paraphrase, *it.perturbed)] + list(IDK_ANSWERS)
    for t in texts:
        assert UNK_ID not in tok.encode(t)
        assert tok.decode(tok.encode(t)) == " ".join(t.split())
    assert tok.vocab[3:] == tuple(sorted(tok.vocab[3:]))  # deterministic: sorted words
    assert build_corpus(12, 4, 10).tokenizer == tok


def test_encoding_layout():
    tok = WordTokenizer(["what", "is", "x", "?", "y", "."])
    ids, labels = encode_rows(tok, ["what is x ?", ""], ["y .", "x is y ."], max_len=8)
    q, a = tok.encode("what is x ?"), tok.encode("y .")
    assert ids[0].tolist() == [*q, *a, EOS_ID, PAD_ID]
    assert labels[0].tolist() == [IGNORE_INDEX] * 4 + [*a, EOS_ID, IGNORE_INDEX]
    bio = tok.encode("x is y .")
    assert labels[1, :5].tolist() == [*bio, EOS_ID]  # a biography: every token labelled
    with pytest.raises(ValueError, match="max_len=4"):
        encode_rows(tok, ["what is x ?"], ["y ."], max_len=4)


def test_max_len_fits_every_answer_and_refusal(corpus):
    for it in corpus.train_items[:16]:
        for a in (it.answer, it.paraphrase, *it.perturbed):
            if a:
                corpus.encode([it.question], [a])
    longest = max(corpus.train_items, key=lambda it: len(it.question.split())).question
    ids, _ = corpus.encode([longest] * len(IDK_ANSWERS), list(IDK_ANSWERS))
    assert ids.shape == (len(IDK_ANSWERS), corpus.max_len)
    prompts = corpus.prompts([corpus.train_items[1].question, ""])
    assert prompts[0].dtype == torch.long and prompts[0].tolist() == corpus.tokenizer.encode(
        corpus.train_items[1].question) and len(prompts[1]) == 0


def test_items_are_the_contract_dataclass(corpus):
    it = corpus.train_items[1]
    assert isinstance(it, QAItem) and it.kind == "qa" and isinstance(it.perturbed, tuple)
