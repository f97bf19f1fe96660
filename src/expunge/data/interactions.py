"""Implicit-feedback interaction datasets for the ``recsys`` task: a MovieLens-format file reader, a seeded synthetic
set with latent structure, and the builder both go through.

An **example is one (user, item) interaction**: ``x`` is the int64 pair ``(user index, item index)`` (shape (n, 2)),
``y`` the item index (the target a recommender ranks among all items), the example's **owner is its user** (so
``owners:K`` forgets K users), and the dataset's "classes" are the items (``class_names`` are the items' ids as they
appear in the file), so a recommender has ``num_outputs`` = number of items. Users and items are re-indexed
0..n−1 in order of their first appearance after sorting by raw id; ``model_kwargs`` carries ``n_users`` for the
model factory (:func:`expunge.train.oracle.model_spec_for`).

Train/test split: per user, a seeded 20% of the user's interactions (rounded down, so users with fewer than 5
interactions keep all of theirs in training) are held out as test interactions — the leave-some-out protocol of
BPR/LightGCN evaluations. Ids are row numbers of the deduplicated, sorted interaction table (train and test ids are
disjoint). The split seed is fixed (:data:`SPLIT_SEED`): the split is a property of the dataset, not of a run.

Built in:

* ``recsys-synth`` (the default; nothing to download): 300 users × 400 items from a seeded low-rank model —
  user and item factors N(0, 1) in 8 dimensions plus an item popularity term N(0, 1); each user's activity is
  log-normal (median 25 interactions, clipped to 5..120, so CURE4Rec's core/edge users differ by ~10×), and the
  user's items are drawn without replacement with probability ∝ exp(u·v/√8 + popularity) (Gumbel top-k). About
  9k interactions; a trained matrix factorisation recovers the structure (test Recall@20 ≈ 0.2-0.3 vs ≈ 0.05 at random).
* ``movielens`` — a user's MovieLens-format file, read by :func:`read_interactions` from ``data_dir`` (a file, or a
  folder holding ``u.data``, ``ratings.csv``, ``ratings.dat`` or one ``*.inter`` file), else ``$EXPUNGE_DATA``, else
  the MovieLens-100K copy the ``recbole`` package ships (``recbole/dataset_example/ml-100k/ml-100k.inter``, found
  without importing recbole). Every rating counts as an interaction (implicit feedback, as CURE4Rec and MMRecUN treat
  MovieLens); duplicate (user, item) rows keep the first. The file is only read, never modified.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from expunge.data.datasets import Dataset, LabelSet, Partition, fingerprint_arrays, register_dataset
from expunge.errors import DatasetNotFound, InvalidDataset, InvalidInteractionFile

SPLIT_SEED = 20261207
TEST_SHARE = 0.2
MOVIELENS_NAMES = ("u.data", "ratings.csv", "ratings.dat")
_FIX = ("each data line must be `user SEP item [SEP rating [SEP timestamp]]` with SEP a tab, comma or `::` "
        "(u.data, ratings.csv, ratings.dat or RecBole .inter); an optional first header line is skipped")


def read_interactions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The raw user and item ids (strings) of a MovieLens-format file, in file order, duplicates included.

    Separators: tab (``u.data``, RecBole ``.inter``), ``::`` (``ratings.dat``) or comma (``ratings.csv``), decided by
    the first data line. A first line whose second field is not an integer is a header and skipped (``userId,movieId,
    ...``, ``user_id:token ...``). Columns past the second (rating, timestamp) are read but not used; a rating that is
    present must be a number.

    Raises:
        InvalidInteractionFile: the file is not UTF-8 text, is empty, or a line (named with its number and content)
            has fewer than two fields, an empty or non-integer user or item id, or a non-numeric rating.
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInteractionFile(f"{path} is not UTF-8 text (byte {exc.start}). Fix: {_FIX}") from None
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise InvalidInteractionFile(f"{path} holds no interaction. Fix: {_FIX}")
    sep = "::" if "::" in lines[0][1] else "\t" if "\t" in lines[0][1] else ","
    first = lines[0][1].split(sep)
    if len(first) >= 2 and not _is_int(first[1].split(":")[0]) and not _is_int(first[1]):
        lines = lines[1:]  # header
    users, items = [], []
    for lineno, line in lines:
        fields = [f.strip() for f in line.split(sep)]
        problem = None
        if len(fields) < 2:
            problem = f"has {len(fields)} field(s) with separator {sep!r}"
        elif not _is_int(fields[0]) or not _is_int(fields[1]):
            problem = f"user id {fields[0]!r} / item id {fields[1]!r} are not both integers"
        elif len(fields) > 2 and fields[2] and not _is_number(fields[2]):
            problem = f"rating {fields[2]!r} is not a number"
        if problem:
            raise InvalidInteractionFile(f"{path} line {lineno} ({line[:60]!r}) {problem}. Fix: {_FIX}; correct or "
                                         "delete that line in a copy of the file (this file is only read)")
        users.append(fields[0])
        items.append(fields[1])
    if not users:
        raise InvalidInteractionFile(f"{path} has a header but no interaction. Fix: {_FIX}")
    return np.asarray(users), np.asarray(items)


def _is_int(s: str) -> bool:
    return s.lstrip("-").isdigit()


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _reindex(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense indices 0..n−1 of integer-valued raw ids (ordered by numeric id) and the sorted unique raw ids."""
    values = raw.astype(np.int64)
    uniq, inverse = np.unique(values, return_inverse=True)
    return inverse.astype(np.int64), uniq


def interactions_dataset(name: str, users: np.ndarray, items: np.ndarray, *, item_names: Sequence[str],
                         n_users: int, split_seed: int = SPLIT_SEED, test_share: float = TEST_SHARE,
                         raw_ids: Sequence[np.ndarray] = ()) -> Dataset:
    """A ``recsys`` :class:`Dataset` from dense user and item indices (duplicates dropped, first kept).

    Raises:
        InvalidDataset: the arrays differ in length, an index is out of range, or fewer than two interactions stay
            in training."""
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    n_items = len(item_names)
    if len(users) != len(items):
        raise InvalidDataset(f"{name}: {len(users)} user indices but {len(items)} item indices")
    if users.size and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items):
        raise InvalidDataset(f"{name}: user indices must be in 0..{n_users - 1} and item indices in 0..{n_items - 1}")
    pairs = np.unique(np.stack([users, items], axis=1), axis=0)  # sorted by (user, item), deduplicated
    rng = np.random.default_rng(split_seed)
    is_test = np.zeros(len(pairs), dtype=bool)
    starts = np.flatnonzero(np.r_[True, pairs[1:, 0] != pairs[:-1, 0]])
    for s, e in zip(starts, np.r_[starts[1:], len(pairs)], strict=True):
        k = int(np.floor(test_share * (e - s)))
        if k:
            is_test[s + rng.choice(e - s, size=k, replace=False)] = True
    ids = np.arange(len(pairs), dtype=np.int64)
    tr, te = ids[~is_test], ids[is_test]
    if tr.size < 2:
        raise InvalidDataset(f"{name}: only {tr.size} training interaction(s); need at least 2")
    # the raw ids (a file's user and item ids) are part of the content: two files with the same shape differ
    fp = fingerprint_arrays(pairs, ids, is_test, *raw_ids, extra=f"{name}|recsys|{n_users}|{'|'.join(item_names)}")

    def part(sel: np.ndarray, owners: bool) -> Partition:
        x = torch.as_tensor(pairs[sel])
        return Partition(x=x, y=x[:, 1].clone(), ids=ids[sel], fine=pairs[sel, 1].copy(),
                         owners=pairs[sel, 0].copy() if owners else None)

    names = tuple(str(n) for n in item_names)
    return Dataset(name=name, train=part(tr, True), test=part(te, False), class_names=names, fine_class_names=names,
                   label_set="fine", fingerprint=fp, task="recsys", model_kwargs={"n_users": int(n_users)})


def synthetic_interactions(n_users: int = 300, n_items: int = 400, dim: int = 8, median_activity: float = 25.0,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """User and item indices of a seeded low-rank implicit-feedback set (module docstring)."""
    rng = np.random.default_rng([seed, 0x5EC])
    u, v = rng.normal(size=(n_users, dim)), rng.normal(size=(n_items, dim))
    popularity = rng.normal(size=n_items)
    activity = np.clip(np.round(rng.lognormal(np.log(median_activity), 0.6, size=n_users)), 5, min(120, n_items))
    users, items = [], []
    for user in range(n_users):
        logits = u[user] @ v.T / np.sqrt(dim) + popularity
        chosen = np.argsort(-(logits + rng.gumbel(size=n_items)))[:int(activity[user])]  # Gumbel top-k
        users.append(np.full(len(chosen), user))
        items.append(chosen)
    return np.concatenate(users), np.concatenate(items)


@register_dataset("recsys-synth")
def load_recsys_synth(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    users, items = synthetic_interactions()
    return interactions_dataset("recsys-synth", users, items, item_names=[str(i) for i in range(400)], n_users=300)


def _recbole_ml100k() -> Path | None:
    spec = importlib.util.find_spec("recbole")  # locates the package without importing it (it imports torch etc.)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k" / "ml-100k.inter"
    return path if path.is_file() else None


def find_interaction_file(data_dir: str | None) -> Path:
    """The MovieLens-format file to read (module docstring: ``data_dir``, ``$EXPUNGE_DATA``, recbole's copy)."""
    places = [Path(p) for p in (data_dir, os.environ.get("EXPUNGE_DATA")) if p]
    if data_dir:
        places = places[:1]  # an explicit path is the only place looked at
    for place in places:
        if place.is_file():
            return place
        if place.is_dir():
            found = [place / n for n in MOVIELENS_NAMES if (place / n).is_file()] + sorted(place.glob("*.inter"))
            if found:
                return found[0]
    if not data_dir and (bundled := _recbole_ml100k()) is not None:
        return bundled
    searched = ", ".join(str(p) for p in places) or "no --data-dir or EXPUNGE_DATA given"
    names = ", ".join(MOVIELENS_NAMES)
    raise DatasetNotFound(f"no MovieLens-format file found ({searched}; looked for a file, or {names} or *.inter in a "
                          "folder). Fix: pass --data-dir PATH (u.data, ratings.csv, ratings.dat or "
                          "a RecBole .inter file), or `pip install recbole`, which ships MovieLens-100K")


@register_dataset("movielens")
def load_movielens(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    path = find_interaction_file(data_dir)
    raw_users, raw_items = read_interactions(path)
    users, user_ids = _reindex(raw_users)
    items, item_ids = _reindex(raw_items)
    return interactions_dataset("movielens", users, items, item_names=[str(i) for i in item_ids],
                                n_users=len(user_ids), raw_ids=(user_ids, item_ids))
