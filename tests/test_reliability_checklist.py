"""The reliability checklist (docs/reliability-checklist.md) cannot point at nothing: its rows are numbered 1..N
without gaps, and every test a row names exists (``tests/FILE.py::name``; ``::name`` reuses the row's last file)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reliability-checklist.md"
ROW = re.compile(r"^\| (\d+) \|(.+)\|$", re.M)
REF = re.compile(r"`((?:tests/[\w/]+\.py)?)::(\w+)`")


def rows() -> list[tuple[int, str]]:
    return [(int(n), rest) for n, rest in ROW.findall(PAGE.read_text())]


def test_rows_are_numbered_without_gaps_and_cover_the_checklist():
    numbers = [n for n, _ in rows()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 35


def test_every_named_test_exists():
    defined: dict[str, set[str]] = {}
    missing = []
    for n, text in rows():
        refs = REF.findall(text)
        assert refs, f"row {n} names no test"
        current = None
        for path, name in refs:
            current = path or current
            assert current, f"row {n}: ::{name} without a file before it"
            if current not in defined:
                tree = ast.parse((ROOT / current).read_text())
                defined[current] = {f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
            if name not in defined[current]:
                missing.append(f"row {n}: {current}::{name}")
    assert not missing, missing
