"""``csv:PATH?target=COL`` — a user's CSV file as a regression dataset.

``expunge unlearn --data csv:houses.csv --target price ...`` (the CLI adds ``?target=price``), or
``expunge.load_dataset("csv:houses.csv?target=price")``, or ``datasets: ["csv:houses.csv?target=price"]`` in a
harness config. The name carries everything needed to load the data again, so ``expunge evaluate`` and the harness
rebuild it from the run record like a registered dataset.

The file: UTF-8 text, comma-separated, a header row naming every column (unique, non-empty names), then one example
per row. Every column must hold finite numbers (the target and the features); ``#``-comments and blank lines are
skipped. Optional query keys: ``target=COL`` (required: the column to predict), ``drop=A,B`` (columns to ignore,
e.g. an id or a text column), ``test=0.25`` (test share). The file is only read, never modified.

Choices, made here (the same as the bundled ``diabetes``): the split is a seeded 75/25 shuffle (fixed seed 0: the
split, and so every id, is a property of the file's content); example ids are the data rows' numbers (0 = the first
row after the header); features and target are standardized with the *training* mean and std (a constant column
keeps std 1), so the ``regression`` task's parity tolerances (in target standard deviations) keep their meaning; the
fingerprint hashes the raw numbers and the column names, so an edited file never reuses models cached for the old one.

Every problem is an :class:`~expunge.errors.InvalidDataset` (a missing file: :class:`~expunge.errors.DatasetNotFound`)
naming the column, the row (1-based line number in the file) and the value, with the fix; nothing is trained or
written before the data is valid.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np

from expunge.data.datasets import Dataset, LabelSet, from_arrays, register_dataset
from expunge.errors import DatasetNotFound, InvalidDataset

SPLIT_SEED = 0
DEFAULT_TEST_SHARE = 0.25
MIN_ROWS = 8
KEYS = ("target", "drop", "test")


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``PATH?target=COL&drop=A,B`` → (PATH, {key: value}); unknown or repeated keys are refused."""
    path, _, query = spec.partition("?")
    if not path:
        raise InvalidDataset("csv: no file named. Fix: --data csv:PATH --target COL (or csv:PATH?target=COL)")
    opts: dict[str, str] = {}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key not in KEYS:
            raise InvalidDataset(f"csv:{spec}: unknown option {key!r}. Fix: use {', '.join(KEYS)} "
                                 "(csv:PATH?target=COL&drop=A,B&test=0.25)")
        if len(values) != 1:
            raise InvalidDataset(f"csv:{spec}: option {key!r} given {len(values)} times. Fix: give it once")
        opts[key] = values[0]
    return path, opts


def read_table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of every data row; comment and blank lines skipped."""
    if not path.is_file():
        raise DatasetNotFound(f"csv file {path} not found. Fix: pass the path of an existing CSV file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDataset(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}). Fix: save it as UTF-8 "
                             "CSV") from None
    lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InvalidDataset(f"{path} is empty. Fix: a header row, then one example per row")
    rows = list(csv.reader(io.StringIO("\n".join(line for _, line in lines))))
    header = [h.strip() for h in rows[0]]
    return header, [(lines[k][0], r) for k, r in enumerate(rows[1:], start=1)]


def check_header(path: Path, header: list[str]) -> None:
    if any(not h for h in header):
        raise InvalidDataset(f"{path}: column {header.index('') + 1} of the header has no name. Fix: name every "
                             "column")
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InvalidDataset(f"{path}: duplicate column name(s) {', '.join(map(repr, dup))}. Fix: make names unique")


def numeric_matrix(path: Path, header: list[str], rows: list[tuple[int, list[str]]], columns: list[str]) -> np.ndarray:
    """The float64 values of ``columns``; the first non-numeric, missing or non-finite cell is refused by name."""
    pos = [header.index(c) for c in columns]
    out = np.empty((len(rows), len(columns)), dtype=np.float64)
    for r, (line, cells) in enumerate(rows):
        if len(cells) != len(header):
            raise InvalidDataset(f"{path}: line {line} has {len(cells)} cells but the header has {len(header)} "
                                 "columns. Fix: one value per column on every row")
        for j, (name, p) in enumerate(zip(columns, pos, strict=True)):
            cell = cells[p].strip()
            try:
                v = float(cell)
            except ValueError:
                v = None
            if v is None or not np.isfinite(v):
                what = "is empty" if not cell else f"holds {cell!r}, not a finite number"
                raise InvalidDataset(f"{path}: column {name!r}, line {line} {what}. Fix: fill it with a number, or "
                                     f"drop the column (?drop={name}) or the row")
            out[r, j] = v
    return out


def _standardize(a: np.ndarray, train: np.ndarray) -> np.ndarray:
    mean, std = a[train].mean(axis=0), a[train].std(axis=0)
    return (a - mean) / np.where(std > 0, std, 1.0)


@register_dataset("csv:")
def load_csv(*, spec: str, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    """A regression dataset from ``spec`` = ``PATH?target=COL[&drop=A,B][&test=SHARE]`` (relative paths: from
    ``data_dir`` when given, else the working directory)."""
    raw_path, opts = parse_spec(spec)
    path = Path(data_dir) / raw_path if data_dir and not Path(raw_path).is_absolute() else Path(raw_path)
    header, rows = read_table(path)
    check_header(path, header)
    target = opts.get("target")
    if not target:
        raise InvalidDataset(f"{path}: no target column named. Fix: --target COL (or csv:PATH?target=COL); columns: "
                             f"{', '.join(header)}")
    drop = [c for c in opts.get("drop", "").split(",") if c]
    for name in [target, *drop]:
        if name not in header:
            raise InvalidDataset(f"{path}: no column {name!r}. Fix: pick one of {', '.join(header)}")
    if target in drop:
        raise InvalidDataset(f"{path}: the target {target!r} is also dropped. Fix: remove it from drop=")
    features = [c for c in header if c != target and c not in drop]
    if not features:
        raise InvalidDataset(f"{path}: no feature column is left besides the target {target!r}. Fix: keep at least "
                             "one numeric feature column")
    if len(rows) < MIN_ROWS:
        raise InvalidDataset(f"{path}: {len(rows)} data row(s); at least {MIN_ROWS} are needed for a train/test "
                             "split. Fix: add examples")
    try:
        test_share = float(opts.get("test", DEFAULT_TEST_SHARE))
    except ValueError:
        test_share = float("nan")
    if not 0 < test_share < 1:
        raise InvalidDataset(f"{path}: test={opts.get('test')!r} is not a share between 0 and 1. Fix: e.g. test=0.25")
    x_raw = numeric_matrix(path, header, rows, features)
    y_raw = numeric_matrix(path, header, rows, [target])[:, 0]
    n = len(rows)
    n_test = min(n - 2, max(2, round(test_share * n)))
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    te, tr = np.sort(order[:n_test]), np.sort(order[n_test:])
    x, y = _standardize(x_raw, tr), _standardize(y_raw, tr)
    name = f"csv:{spec}"
    names = np.frombuffer("\x1f".join([target, *features]).encode(), dtype=np.uint8)
    return from_arrays(name, x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te], train_ids=tr, test_ids=te,
                       labels=labels, task="regression", raw_for_fingerprint=(x_raw, y_raw, names))
