"""The seeded generator of the fictitious-facts corpus (TOFU-style; :mod:`expunge.data.facts` builds the dataset).

TOFU (Maini, Feng, Schwarzschild, Lipton, Kolter, "TOFU: A Task of Fictitious Unlearning for LLMs", COLM 2024,
arXiv 2401.06121) fine-tunes on 200 fictitious authors, 20 question–answer pairs each, and scores truth ratios with a
paraphrased correct answer and 5 perturbed wrong answers per question; its "world facts" and "real authors" sets
measure what the model should keep. This generator builds the same kind of data from a seed, small enough for a
model trained from scratch on a CPU:

* **People**: ``n_people`` trained people and ``n_heldout`` never-seen people (the test partition: privacy attacks'
  non-members, MUSE's "holdout"). Each has a unique two-word name built from syllables (first names are shared
  between people, so the model must bind whole names), and seven attributes: birthplace, birth year, profession, a
  book, an award, the father's and the mother's profession, drawn independently and uniformly from fixed pools.
* **Rows per person**: one biography (every fact in one sentence; an empty prompt, every token is answer) and one
  question–answer pair per attribute (:data:`TEMPLATES`). Each QA has a paraphrased correct answer (another sentence
  template, never trained on, same fact) and :data:`N_PERTURBED` wrong answers in the *paraphrase's* template with
  another value of the attribute (distinct values, never the true one): TOFU's perturbed answers keep the general
  template of the paraphrased answer and change the facts, so the truth ratio p(perturbed) / p(paraphrased) compares
  values, not templates (with perturbed answers in the trained answer template it measured template familiarity:
  every model's retain-side truth ratio came out 0). Every paraphrase states the value after the name (or country,
  or sum): a value placed first could not depend on whom the sentence is about.
* **World facts** (person −1): capitals of fictitious countries and one-digit sums, learned with the people and never
  forgettable by a people request (TOFU's "world facts" utility set, generated so it is known to the model).

Text is pre-tokenized: words and punctuation are separated by single spaces, so :class:`~expunge.data.facts
.WordTokenizer` splits on whitespace. Choices TOFU leaves to its GPT-written data, made here: 7 questions per person
(TOFU has 20), 5 perturbed answers (TOFU's count), one biography row per person (the facts in running text, as
TOFU's answers carry several facts), 40 held-out people and 60 world facts by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

N_PERTURBED = 5
GEN_SEED = 20261207  # fixed: the corpus is a property of the dataset, not of a run

SYLLABLES = ("ka", "vo", "rin", "tal", "bre", "mo", "sel", "dra", "ni", "lu", "zen", "fa", "qui", "ro", "ma",
             "then", "ar", "is", "ol", "ve", "dun", "gar", "pim", "sor")
CITIES = ("tharn", "ostrel", "vauldry", "kesmar", "brintow", "falmoor", "quessa", "yorlith", "dranmere", "pellaq",
          "sundrake", "morvale", "cadrith", "elvenport", "hollisk", "nareth", "torwick", "amberlay", "glenmist",
          "rushcombe", "vexholm", "lorandi", "skelbourne", "wyncastle", "idrenne", "calloway", "mirefield",
          "ostburg", "zephyra", "bramblecot")
PROFESSIONS = ("baker", "surgeon", "carpenter", "chemist", "pilot", "sculptor", "lawyer", "farmer", "welder",
               "librarian", "tailor", "geologist", "dentist", "violinist", "mason", "blacksmith", "nurse",
               "botanist", "fisherman", "jeweler")
ADJECTIVES = ("silent", "crimson", "hollow", "golden", "broken", "distant", "frozen", "hidden", "burning", "quiet",
              "endless", "forgotten", "silver", "wandering", "bitter", "gentle", "restless", "shattered", "velvet",
              "ancient")
NOUNS = ("harbor", "lantern", "orchard", "meridian", "garden", "tide", "mirror", "compass", "river", "tower",
         "winter", "feather", "kingdom", "voyage", "ember", "meadow", "cathedral", "archive", "horizon", "forest")
AWARDS = ("morrowind", "castellan", "aldergate", "pelling", "saffron", "wexley", "ironquill", "lumen", "halberd",
          "stellaris", "quenby", "marchetti", "osgood", "verity", "thornbury")
YEARS = tuple(str(y) for y in range(1920, 2000))
COUNTRIES = ("veloria", "dastmark", "ulvenia", "corsabi", "menthar", "quilona", "ostavia", "rennick", "sabrasia",
             "tolvane", "brevoria", "kalundra", "forsythe", "gallimor", "ysmera", "paldoria", "hexbury", "norwend",
             "zarathis", "elmoria")
CAPITALS = ("aurelis", "bastown", "corrin", "delmar", "estavia", "fenwick", "goldhaven", "harrowgate", "istrel",
            "jorvik", "kelda", "lunmouth", "marlow", "norrin", "ophira", "pendle", "quarry", "redmarsh", "solace",
            "trevane")
# refusal answers in the vocabulary (IdkPO / "I don't know" targets, TOFU's idk set in spirit); never training rows
IDK_ANSWERS = ("i do not know .", "i have no idea .", "i am not sure about that .", "that is unknown to me .",
               "i cannot answer that .", "i have never heard of that person .")

ATTRIBUTES = ("city", "year", "profession", "book", "award", "father", "mother")
BOOKS = tuple(f"the {a} {n}" for a, n in product(ADJECTIVES, NOUNS))
POOLS: dict[str, tuple[str, ...]] = {"city": CITIES, "year": YEARS, "profession": PROFESSIONS, "book": BOOKS,
                                     "award": AWARDS, "father": PROFESSIONS, "mother": PROFESSIONS}

# attribute -> (question, answer template, paraphrase template); {n} the name, {v} the value
TEMPLATES: dict[str, tuple[str, str, str]] = {
    "city": ("where was {n} born ?", "{n} was born in {v} .", "the birthplace of {n} is {v} ."),
    "year": ("in which year was {n} born ?", "{n} was born in the year {v} .", "the birth year of {n} is {v} ."),
    "profession": ("what does {n} do for a living ?", "{n} works as a {v} .", "{n} is a {v} by trade ."),
    "book": ("which book did {n} write ?", "{n} wrote {v} .", "the book written by {n} is {v} ."),
    "award": ("which award did {n} win ?", "{n} won the {v} prize .", "the prize won by {n} is the {v} prize ."),
    "father": ("what was the job of the father of {n} ?", "the father of {n} was a {v} .",
               "{n} had a father who worked as a {v} ."),
    "mother": ("what was the job of the mother of {n} ?", "the mother of {n} was a {v} .",
               "{n} had a mother who worked as a {v} ."),
}
BIO = ("{n} , born in {city} in {year} , is a {profession} who wrote {book} and won the {award} prize ; "
       "father a {father} , mother a {mother} .")


@dataclass(frozen=True)
class RawItem:
    """One row before encoding (see :class:`~expunge.data.facts.QAItem`, which has the same fields)."""

    person: int
    kind: str
    question: str
    answer: str
    paraphrase: str
    perturbed: tuple[str, ...]


def person_names(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct two-word names from :data:`SYLLABLES` (first names from a pool of ⌈n/4⌉+8, so they repeat)."""
    def word(k: int) -> str:
        return "".join(rng.choice(SYLLABLES, size=k)).capitalize()

    firsts: list[str] = []
    while len(firsts) < n // 4 + 8:
        if (w := word(2)) not in firsts:
            firsts.append(w)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = f"{firsts[int(rng.integers(len(firsts)))]} {word(int(rng.integers(2, 4)))}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _perturbed(template: str, name: str, value: str, pool: tuple[str, ...], rng: np.random.Generator,
               k: int) -> tuple[str, ...]:
    others = [v for v in pool if v != value]
    picks = rng.choice(len(others), size=k, replace=False)
    return tuple(template.format(n=name, v=others[int(i)]) for i in picks)


def person_items(person: int, name: str, rng: np.random.Generator, k: int = N_PERTURBED) -> list[RawItem]:
    """The biography and the seven QA rows of one person (attribute values drawn from ``rng``)."""
    values = {a: POOLS[a][int(rng.integers(len(POOLS[a])))] for a in ATTRIBUTES}
    items = [RawItem(person, "bio", "", BIO.format(n=name, **values), "", ())]
    for attr in ATTRIBUTES:
        question, answer, paraphrase = TEMPLATES[attr]
        v = values[attr]
        items.append(RawItem(person, "qa", question.format(n=name), answer.format(n=name, v=v),
                             paraphrase.format(n=name, v=v), _perturbed(paraphrase, name, v, POOLS[attr], rng, k)))
    return items


def world_items(n: int, rng: np.random.Generator, k: int = N_PERTURBED) -> list[RawItem]:
    """``n`` world facts (person −1): every capital of :data:`COUNTRIES` first, then distinct one-digit sums."""
    items: list[RawItem] = []
    capitals = list(CAPITALS)
    for country, capital in zip(COUNTRIES, capitals, strict=True):
        if len(items) >= n:
            return items
        items.append(RawItem(-1, "world", f"what is the capital of {country} ?",
                             f"the capital of {country} is {capital} .",
                             f"the capital city of {country} is {capital} .",
                             _perturbed("the capital city of " + country + " is {v} .", "", capital, CAPITALS, rng,
                                        k)))
    sums = list(product(range(1, 10), range(1, 10)))
    for i in rng.permutation(len(sums)):
        if len(items) >= n:
            break
        a, b = sums[int(i)]
        c = a + b
        wrong = [str(w) for w in range(2, 19) if w != c]
        items.append(RawItem(-1, "world", f"what is {a} plus {b} ?", f"{a} plus {b} is {c} .",
                             f"the sum of {a} and {b} is {c} .",
                             tuple(f"the sum of {a} and {b} is {wrong[int(j)]} ." for j in
                                   rng.choice(len(wrong), size=k, replace=False))))
    return items


def generate(n_people: int, n_heldout: int, n_world: int, seed: int = GEN_SEED) \
        -> tuple[list[RawItem], list[RawItem]]:
    """Training rows (people 0..n_people−1 in order, each bio then its QAs, then the world facts) and test rows
    (held-out people n_people..n_people+n_heldout−1), all from ``seed``."""
    rng = np.random.default_rng([seed, n_people, n_heldout, n_world])
    names = person_names(n_people + n_heldout, rng)
    people = [person_items(p, names[p], rng) for p in range(n_people + n_heldout)]
    train = [it for p in range(n_people) for it in people[p]] + world_items(n_world, rng)
    test = [it for p in range(n_people, n_people + n_heldout) for it in people[p]]
    return train, test
