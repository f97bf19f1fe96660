"""The README's promises hold: its first two commands are `make demo` and `make test`, and every ```python block runs.

Each Python block runs in a fresh interpreter, in a temporary directory, with ``EXPUNGE_CACHE`` pointing at a fresh
temporary store, so it trains its Original and oracle from scratch exactly as a newcomer's first run would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block, in order."""
    return [(m.group(1).lower(), m.group(2)) for m in FENCE.finditer(text)]


def commands(blocks: list[tuple[str, str]]) -> list[str]:
    """The commands of the code blocks in order: non-blank lines that are not comments, without trailing comments or
    a ``$`` prompt. Blocks in a non-shell language (a ``text`` diagram, Python) hold no commands."""
    out = []
    for lang, body in blocks:
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        for line in body.splitlines():
            line = line.split(" #")[0].strip().removeprefix("$ ").strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def test_the_first_two_commands_are_make_demo_and_make_test():
    blocks = code_blocks(README.read_text())
    assert commands(blocks)[:2] == ["make demo", "make test"]
    # nor may any block of another language come before them (a reader copies the first blocks)
    first_two = [lang for lang, _ in blocks[:2]]
    assert all(lang in ("", "bash", "sh", "shell", "console") for lang in first_two), first_two


def test_the_command_parser_can_fail():
    blocks = code_blocks("```bash\nmake test   # tests\n```\n\n```bash\nmake demo\n```\n")
    assert commands(blocks)[:2] == ["make test", "make demo"]


def python_blocks() -> list[str]:
    return [body for lang, body in code_blocks(README.read_text()) if lang in ("python", "py")]


def test_the_readme_has_a_python_quick_start():
    assert python_blocks(), "README.md lost its ```python quick-start"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_python_block_runs(index: int, tmp_path: Path):
    script = tmp_path / f"readme_block_{index}.py"
    script.write_text(python_blocks()[index])
    env = {**os.environ, "EXPUNGE_CACHE": str(tmp_path / "cache"), "PYTHONHASHSEED": "0"}
    env.pop("EXPUNGE_PRESETS", None)  # the shipped presets only, as on a fresh machine
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"README python block {index} failed:\n{proc.stdout}\n{proc.stderr}"
    assert proc.stdout.strip(), "the quick-start prints its result"
    assert (tmp_path / "cache" / "original").is_dir() and (tmp_path / "cache" / "oracle").is_dir()
