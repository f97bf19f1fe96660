"""MkDocs hook: the reference parts of the docs are generated from the code at build time, so they cannot drift.

* A page asks for generated content with a marker comment on a line of its own, ``<!-- generated: NAME -->``;
  :func:`on_page_markdown` replaces it with ``GENERATORS[NAME]()``. An unknown name fails the build.
* ``methods``, ``metrics``, ``scenarios`` and ``tasks`` come from the registries (:func:`expunge.list_methods`,
  :func:`expunge.list_metrics`, :func:`expunge.list_scenarios`, :data:`expunge.tasks.TASKS`), with each plug-in's
  module docstring (its paper, reference and design choices); ``cli`` from the typer application; ``layers`` from
  the import-linter contracts in ``pyproject.toml``; ``presets`` from the shipped preset files.
* Benchmark numbers live only in ``benchmarks/results/*.md`` (written by the benchmark scripts and ``expunge results
  DIR --format markdown``). :func:`on_files`
  publishes each of them as the page ``results/<name>.md``, unchanged except for a line saying where it comes from
  (and a styling wrapper); ``results-index`` lists them. Prose pages link to those pages and never restate their
  numbers.

Nothing is written into ``docs/``: generated pages exist only in the build.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "benchmarks" / "results"
RESULTS_PREFIX = "results/"
MARKER = re.compile(r"^<!--\s*generated:\s*([\w-]+)\s*-->\s*$", re.MULTILINE)
if str(ROOT / "src") not in sys.path:  # a source checkout without `pip install -e .` builds too
    sys.path.append(str(ROOT / "src"))

# What each benchmark results file measures and which script writes it (the page titles come from the files).
RESULT_SOURCES = {
    "digits": "expunge results benchmarks/results/digits --format markdown",
    "foundation": "expunge results benchmarks/results/foundation --format markdown",
    "foundation-seed0": "expunge bench (configs/foundation.yaml at seeds [0]), then expunge results "
                        "benchmarks/results/foundation-seed0 --format markdown",
    "digits-zoo": "expunge results benchmarks/results/digits-zoo --format markdown",
    "federated": "expunge results benchmarks/results/federated --format markdown",
    "continual": "expunge bench configs/continual.yaml, then expunge results benchmarks/results/continual --format "
                 "markdown",
    "continual-stream": "benchmarks/continual.py benchmarks/results/continual",
    "fashion-zoo": "expunge results benchmarks/results/fashion-zoo --format markdown",
    "graph": "expunge bench configs/graph.yaml, then expunge results benchmarks/results/graph --format markdown",
    "graph-edges": "benchmarks/graph_edges.py benchmarks/results/graph",
    "recsys": "expunge results benchmarks/results/recsys --format markdown",
    "llm": "expunge results benchmarks/results/llm --format markdown",
    "llm-audits": "expunge results benchmarks/results/llm-audits --format markdown",
    "llm_memorisation": "benchmarks/llm_memorisation.py",
    "regression": "expunge results benchmarks/results/regression --format markdown",
    "evaluation_tiers": "benchmarks/evaluation_tiers.py",
    "inference_batch": "benchmarks/inference_batch.py",
    "ssd_vs_reference": "benchmarks/ssd_vs_reference.py",
    "ray_scaling": "benchmarks/ray_scaling.py",
    "llm_methods_sweep": "benchmarks/llm_methods_sweep.py",
    "per_example_digits": "configs/digits-per-example.yaml, then benchmarks/per_example.py",
    "digits-random-forgetting": "expunge bench configs/digits-random-forgetting.yaml, then expunge results "
                                "benchmarks/results/digits-random-forgetting --format markdown",
    "random_forgetting_digits": "configs/digits-random-forgetting.yaml, then benchmarks/per_example.py --name "
                                "random_forgetting_digits",
    "fashion-random-forgetting": "expunge bench configs/fashion-random-forgetting.yaml (committed: seed 0 and "
                                 "seeds 1-2 run as two stores, exported with --format jsonl and concatenated), then "
                                 "expunge results benchmarks/results/fashion-random-forgetting --format markdown",
    "fashion-random-forgetting-epsilon": "expunge bench configs/fashion-random-forgetting-epsilon.yaml, then expunge "
                                         "results benchmarks/results/fashion-random-forgetting-epsilon --format "
                                         "markdown",
    "llm_meta_eval": "benchmarks/llm_meta_eval.py --method npo --method-params ''",
    "llm_guards_audits": "benchmarks/llm_guards_audits.py",
    "llm_guards_audits_facts": "benchmarks/llm_guards_audits.py --data facts --forget owners:10 --seeds 0",
}


# ----------------------------------------------------------------------------------------------------------- helpers
def _cell(value: Any) -> str:
    """A markdown table cell: pipes escaped, newlines folded."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _code(value: Any) -> str:
    return f"`{value}`" if value not in (None, "") else ""


_ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`]+)`")
_TAG_LIKE = re.compile(r"<(?=[A-Za-z/!])")


def rst_to_md(text: str) -> str:
    """A module docstring (reST-flavoured) as markdown: roles become code spans, ``::`` a colon, and a ``<`` that
    would open an HTML tag outside code is escaped."""
    text = _ROLE.sub(lambda m: f"`{m.group(2).split('.')[-1] if m.group(1) else m.group(2)}`", text)
    out = []
    for line in text.splitlines():
        if line.rstrip().endswith("::"):
            line = line.rstrip()[:-1]
        if not line.startswith("    "):  # indented lines are code blocks: markdown escapes them itself
            parts = re.split(r"(``.*?``|`[^`]*`)", line)
            line = "".join(p if i % 2 else _TAG_LIKE.sub("&lt;", p) for i, p in enumerate(parts))
        out.append(line)
    return "\n".join(out).strip() + "\n"


def module_doc(module: str) -> str:
    """The docstring of ``module``, read from its source (no import needed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise PluginError(f"docs hook: module {module} not found")
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""


def _details(title: str, body: str) -> str:
    """A collapsed Material admonition (pymdownx.details) holding ``body``."""
    indented = "\n".join(("    " + line) if line.strip() else "" for line in body.splitlines())
    return f'??? note "{title}"\n\n{indented}\n\n'


def _type_name(raw: str) -> str:
    raw = re.sub(r"<class '([\w.]+)'>", r"\1", raw)
    return raw.replace("typing.", "")


def _params_table(params: list[dict[str, Any]]) -> str:
    if not params:
        return "No parameters.\n"
    rows = []
    for p in params:
        search = p.get("search")
        rows.append([f"`{p['name']}`", _code(json.dumps(p["default"])), _code(_type_name(str(p["type"]))),
                     _code(json.dumps(list(search)) if isinstance(search, tuple | list) else search)
                     if search is not None else "", p.get("help", "")])
    return _table(["parameter", "default", "type", "tuned over", "meaning"], rows)


def _access(access: str) -> str:
    return ", ".join(a.replace("_", " ") for a in access.split("+"))


# ----------------------------------------------------------------------------------------------------------- methods
def methods_md() -> str:
    import expunge
    from expunge.methods.base import METHODS

    described = expunge.list_methods()
    out = [f"{len(described)} registered methods.\n\n",
           _table(["method", "idea", "reads", "exact", "tasks"],
                  [[f"[`{m['name']}`](#{m['name']})", m["summary"], _access(m["access"]),
                    "yes" if m["exact"] else "", ", ".join(sorted(METHODS.get(m["name"]).tasks))]
                   for m in described]), "\n"]
    for m in described:
        cls = METHODS.get(m["name"])
        out.append(f"## `{m['name']}` {{#{m['name']}}}\n\n{m['summary']}\n\n")
        out.append(f"* **Paper:** {m['paper']}\n* **Reference:** {m['reference']}\n"
                   f"* **Reads:** {_access(m['access'])}{' — exact unlearning' if m['exact'] else ''}\n"
                   f"* **Tasks:** {', '.join(sorted(cls.tasks))}\n* **Module:** `{cls.__module__}`\n\n")
        out.append(_params_table(m["params"]) + "\n")
        doc = module_doc(cls.__module__)
        if doc:
            out.append(_details("Design notes (the module's docstring)", rst_to_md(doc)))
    return "".join(out)


# ----------------------------------------------------------------------------------------------------------- metrics
TIER_TITLES = {0: "Tier 0 — seconds, no training", 1: "Tier 1 — minutes, a few extra models",
               2: "Tier 2 — many models, opt-in, resumable"}


def metrics_md() -> str:
    import expunge
    from expunge.metrics.base import METRICS

    described = expunge.list_metrics()
    out = [f"{len(described)} registered metrics.\n\n"]
    for tier in sorted({m["tier"] for m in described}):
        out.append(f"## {TIER_TITLES.get(tier, f'Tier {tier}')} {{#tier-{tier}}}\n\n")
        in_tier = [m for m in described if m["tier"] == tier]
        for family in sorted({m["family"] for m in in_tier}):
            rows = [m for m in in_tier if m["family"] == family]
            modules = sorted({METRICS.get(m["name"]).__module__ for m in rows})
            out.append(f"### {family} {{#{family}-tier-{tier}}}\n\n")
            out.append(_table(["metric", "direction", "needs", "definition"],
                              [[f"`{m['name']}`", m["direction"],
                                ", ".join(m["needs"] + m["run_needs"]) or "—", m["definition"]] for m in rows]))
            out.append("\n")
            for module in modules:
                doc = module_doc(module)
                if doc:
                    out.append(_details(f"Notes from `{module}`", rst_to_md(doc)))
    return "".join(out)


# --------------------------------------------------------------------------------------------------------- scenarios
def scenarios_md() -> str:
    import expunge
    from expunge.scenarios.base import SCENARIOS

    described = expunge.list_scenarios()
    out = [f"{len(described)} registered scenarios.\n\n",
           _table(["scenario", "the request(s)", "`--forget` syntax", "parameters", "preset fallback"],
                  [[f"[`{s['name']}`](#{s['name']})", s["summary"], _syntaxes(s["request_kinds"]),
                    ", ".join(f"`{p['name']}={p['default']}`" for p in s["params"]),
                    _code(s["preset_fallback"])] for s in described]), "\n"]
    for s in described:
        cls = SCENARIOS.get(s["name"])
        out.append(f"## `{s['name']}` {{#{s['name']}}}\n\n")
        out.append(rst_to_md(module_doc(cls.__module__)) + "\n")
        if s["request_kinds"]:
            out.append("Request syntax: " + _syntaxes(s["request_kinds"]) + ".\n\n")
        fallback = s["preset_fallback"]
        out.append(f"Preset fallback: {f'`{fallback}`' if fallback else 'none'} · module `{cls.__module__}`\n\n")
        out.append(_params_table(s["params"]) + "\n")
    return "".join(out)


def _syntaxes(kinds: list[str]) -> str:
    """Request syntaxes as code spans, one per alternative (a ``|`` inside a code span breaks a table cell)."""
    return ", ".join(f"`{alt.strip()}`" for k in kinds for alt in k.split("|"))


# ------------------------------------------------------------------------------------------------------------- tasks
def tasks_md() -> str:
    from expunge.tasks import TASKS

    def per_example(cls: Any) -> str:
        crit = ", ".join(f"`{m}` {'(one-sided) ' if m in cls.one_sided_criteria else ''}≤ {tol}"
                         for m, tol in cls.per_example_criteria.items())
        return f"{crit} on {', '.join(sorted(cls.per_example_kinds))} requests" if crit else "none"

    out = [_table(["task", "summary", "headline metrics", "parity criteria: gap to Retrain at most",
                   "per-example criteria"],
                  [[f"`{name}`", cls.summary, ", ".join(f"`{m}`" for m in cls.headline_metrics),
                    ", ".join(f"`{m}` ≤ {tol}" for m, tol in cls.parity_criteria.items()), per_example(cls)]
                   for name, cls in TASKS.items()]), "\n"]
    for name, cls in TASKS.items():
        out.append(f"## `{name}`\n\n" + rst_to_md(module_doc(cls.__module__)) + "\n")
    return "".join(out)


# --------------------------------------------------------------------------------------------------------------- cli
def cli_md() -> str:
    import typer

    from expunge.cli.main import app

    group = typer.main.get_command(app)
    out = []
    for name, cmd in group.commands.items():
        out.append(f"### `expunge {name}` {{#{name}}}\n\n")
        out.append(rst_to_md(cmd.help or "") + "\n")
        rows = []
        for p in cmd.params:
            if p.param_type_name == "argument":
                rows.append([f"`{p.name.upper()}`" + (" …" if p.nargs == -1 else ""), "argument", p.help or ""])
                continue
            names = " / ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
            default = p.default
            shown = "" if default is None or default is False or p.multiple else f" (default `{default}`)"
            rows.append([names, "repeatable" if p.multiple else ("flag" if p.is_flag else "option"),
                         (p.help or "") + shown])
        out.append(_table(["", "kind", "meaning"], rows) + "\n")
    return "".join(out)


# ------------------------------------------------------------------------------------------------------------ layers
def _package_summary(name: str) -> str:
    doc = module_doc(f"expunge.{name}")
    first = " ".join(doc.split("\n\n")[0].split())
    return rst_to_md(first).strip()


def layers_md() -> str:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layer_contracts = [c for c in config["contracts"] if c["type"] == "layers"]
    out = []
    for contract in layer_contracts:
        rows = []
        for level, layer in enumerate(contract["layers"]):
            names = [n.strip() for n in layer.split("|")]
            rows.append([str(level + 1), " | ".join(f"`{n}`" for n in names),
                         "<br>".join(f"**{n}** — {_package_summary(n)}" for n in names)])
        out.append(_table(["", "layer (top imports bottom)", "what lives there"], rows) + "\n")
    forbidden = [c for c in config["contracts"] if c["type"] == "forbidden"]
    if forbidden:
        out.append("Further contracts:\n\n")
        for c in forbidden:
            out.append(f"* {c['name']}: {', '.join(f'`{s}`' for s in c['source_modules'])} never import "
                       f"{', '.join(f'`{s}`' for s in c['forbidden_modules'])}.\n")
        out.append("\n")
    return "".join(out)


# ----------------------------------------------------------------------------------------------------------- presets
def presets_md() -> str:
    from expunge import presets

    rows = []
    for path in sorted(presets.PACKAGE_DIR.glob(f"*{presets.SUFFIX}")):
        name = "/".join(path.stem.split("__"))
        for method, entry in sorted(json.loads(path.read_text()).items()):
            tuned = {k: v for k, v in entry.get("params", {}).items() if k in entry.get("search_space", {})}
            fixed = entry.get("fixed", {})
            requests = entry.get("validation", {}).get("requests", [])
            rows.append([f"`{name}`", f"`{method}`", _fmt_params(tuned), _fmt_params(fixed),
                         ", ".join(f"`{r.get('spec')}`" for r in requests), entry.get("n_trials", ""),
                         _num(entry.get("default_objective")), _num(entry.get("objective")),
                         _num(entry.get("eval_default_objective")), _num(entry.get("eval_objective"))])
    return _table(["preset", "method", "chosen values (searched fields)", "fixed", "validation request", "trials",
                   "validation objective: defaults", "chosen", "evaluation request: defaults", "chosen"], rows)


def _fmt_params(values: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={_num(v)}`" for k, v in values.items())


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


# ----------------------------------------------------------------------------------------------------------- results
def result_files() -> list[Path]:
    return sorted(RESULTS_DIR.glob("*.md"))


def result_page(path: Path) -> str:
    """The results file as a page: its own text, with a line naming its source after the title."""
    text = path.read_text()
    source = RESULT_SOURCES.get(path.stem, "benchmarks/")
    numbers = next((p.name + ("/" if p.is_dir() else "") for p in (path.with_suffix(".json"),
                    path.with_suffix(".csv"), path.with_suffix("")) if p.exists()), f"{path.stem}.json")
    note = (f"\n*Generated by `{source}`; copied unchanged from `benchmarks/results/{path.name}` when the docs are "
            f"built (numbers: `benchmarks/results/{numbers}`).*\n")
    lines = text.splitlines()
    title, body = (lines[0], lines[1:]) if lines and lines[0].startswith("# ") else (f"# {path.stem}", lines)
    # The wrapper only lets extra.css keep "mean ± half-width" cells on one line (md_in_html keeps it markdown).
    return "\n".join([title, note, '<div class="expunge-results" markdown>', *body, "", "</div>"]) + "\n"


def results_index_md() -> str:
    rows = []
    for path in result_files():
        title = path.read_text().splitlines()[0].lstrip("# ").strip()
        rows.append([f"[{title}]({RESULTS_PREFIX}{path.stem}.md)", f"`{RESULT_SOURCES.get(path.stem, '?')}`"])
    return _table(["results page", "written by"], rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "methods": methods_md, "metrics": metrics_md, "scenarios": scenarios_md, "tasks": tasks_md, "cli": cli_md,
    "layers": layers_md, "presets": presets_md, "results-index": results_index_md,
}


# -------------------------------------------------------------------------------------------------------- mkdocs API
def on_files(files: Files, config: Any) -> Files:
    for path in result_files():
        files.append(File.generated(config, f"{RESULTS_PREFIX}{path.stem}.md", content=result_page(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_uri}: unknown generated block {name!r}; known: {', '.join(GENERATORS)}")
        return GENERATORS[name]().rstrip() + "\n"

    return MARKER.sub(replace, markdown)


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """``mkdocs serve`` rebuilds when the code or the results the pages are generated from change."""
    for path in (ROOT / "src" / "expunge", RESULTS_DIR, ROOT / "pyproject.toml"):
        server.watch(str(path))
    return server

