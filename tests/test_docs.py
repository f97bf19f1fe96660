"""The docs cannot drift: reference pages are generated from the registries, every benchmark results file is a page,
and hand-written pages restate no benchmark numbers. (`make test` also runs `mkdocs build --strict`.)"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("mkdocs")
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def hook():
    spec = importlib.util.spec_from_file_location("docs_generate_hook", DOCS / "hooks" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_pages_list_every_registered_plugin(hook):
    import expunge
    from expunge.tasks import TASKS

    methods, metrics, scenarios, tasks = hook.methods_md(), hook.metrics_md(), hook.scenarios_md(), hook.tasks_md()
    for m in expunge.list_methods():
        assert f"## `{m['name']}` {{#{m['name']}}}" in methods
    for m in expunge.list_metrics():
        assert f"| `{m['name']}` |" in metrics
    for s in expunge.list_scenarios():
        assert f"## `{s['name']}` {{#{s['name']}}}" in scenarios
    assert "hard-forget" in scenarios
    for name in TASKS.names():
        assert f"## `{name}`" in tasks


def test_every_marker_names_a_generator_and_every_reference_page_has_its_marker(hook):
    used = {}
    for page in DOCS.glob("*.md"):
        for name in hook.MARKER.findall(page.read_text()):
            assert name in hook.GENERATORS, f"{page.name}: unknown generated block {name}"
            used[name] = page.name
    assert used["methods"] == "methods.md" and used["metrics"] == "metrics.md"
    assert used["scenarios"] == "scenarios.md" and used["tasks"] == "tasks.md"
    assert set(used) == set(hook.GENERATORS)


def test_unknown_marker_fails_the_build(hook):
    from mkdocs.exceptions import PluginError

    page = SimpleNamespace(file=SimpleNamespace(src_uri="x.md"))
    with pytest.raises(PluginError, match="unknown generated block 'nope'"):
        hook.on_page_markdown("<!-- generated: nope -->\n", page, None, None)
    assert "| `ssd` |" not in hook.on_page_markdown("no marker here\n", page, None, None)


def test_every_results_file_is_a_page_in_the_nav(hook):
    nav = (ROOT / "mkdocs.yml").read_text()
    files = hook.result_files()
    assert files
    for path in files:
        assert f"results/{path.stem}.md" in nav, f"add results/{path.stem}.md to the Benchmarks nav in mkdocs.yml"
        assert path.stem in hook.RESULT_SOURCES, f"say which script writes {path.name} in RESULT_SOURCES"
        page = hook.result_page(path)
        assert page.splitlines()[0] == path.read_text().splitlines()[0]
        assert path.read_text().splitlines()[-1] in page  # the numbers are copied, not rewritten


SPEED_UP = re.compile(r"\d(?:\.\d+)?\s?×(?!\s?\d)")  # "186×", "≈ 1.2×" — not "8×8" or "4 shards × 2 slices"
INTERVAL = re.compile(r"\d\s?±\s?\d")  # "0.914 ± 0.013" — not "mean ± 95% half-width"


def prose(text: str) -> str:
    """The text outside fenced code blocks (a pasted command output may quote numbers)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def test_hand_written_pages_restate_no_benchmark_numbers():
    for page in DOCS.glob("*.md"):
        text = prose(page.read_text())
        assert not INTERVAL.search(text), f"{page.name}: results with intervals belong in benchmarks/results/"
        found = SPEED_UP.search(text)
        assert not found, f"{page.name}: speed-ups belong in benchmarks/results/ ({found.group()!r})"


def test_the_number_guard_can_fail():
    assert SPEED_UP.search("analytic_head at ≈ 370× the retrain speed")
    assert not SPEED_UP.search("8×8 digits, 4 shards × 2 slices, 28×28 images")
    assert INTERVAL.search("test accuracy 0.914 ± 0.013") and not INTERVAL.search("mean ± 95% half-width")


def test_docstrings_become_markdown(hook):
    md = hook.rst_to_md("See :class:`~expunge.record.RunRecord` and :func:`expunge.judge`::\n\n    x <y\n\na <b> c")
    assert "`RunRecord`" in md and "`expunge.judge`:" in md and "::" not in md
    assert "    x <y" in md and "a &lt;b> c" in md


def test_contributing_states_the_enforced_layers():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    stated = ">".join(layer.replace(" ", "") for layer in layers)
    assert stated in re.sub(r"\s+", "", (ROOT / "CONTRIBUTING.md").read_text())
