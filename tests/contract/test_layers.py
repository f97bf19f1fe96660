"""The layer contracts of pyproject.toml ([tool.importlinter]) hold, and they can fail: a module that imports upward
(a metric importing a method) breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with ``cwd``'s pyproject.toml on the package under ``cwd/src``."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_layer_contracts_are_kept():
    pytest.importorskip("importlinter")
    out = lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 2 kept, 0 broken." in out.stdout


def test_a_metric_importing_a_method_breaks_them(tmp_path: Path):
    """Fault injection: copy the package, add an upward import, and the same contracts fail."""
    pytest.importorskip("importlinter")
    shutil.copytree(ROOT / "src" / "expunge", tmp_path / "src" / "expunge",
                    ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "src" / "expunge" / "metrics" / "sneaky.py"
    bad.write_text('"""A metric that re-runs a method itself."""\n\nfrom expunge.methods.base import get_method\n')
    out = lint_imports(tmp_path)
    assert out.returncode != 0
    assert "expunge.metrics.sneaky -> expunge.methods.base" in out.stdout
