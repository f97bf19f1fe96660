"""``expunge report``: the HTML report of a bench folder, on a hand-made grid with known answers (two methods × a class,
a random and a sequential request × three seeds), its errors, and the page opened in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from expunge.harness.report import MissingPlotly, write_report
from expunge.harness.results import NoResults, ResultStore

pytest.importorskip("plotly")

SEEDS = (0, 1, 2)
PLOTS = 4 + 2 * 3
ORACLE_S, FINETUNE_S, SSD_S, SSD_PRE_S = 100.0, 10.0, 2.0, 16.0
# per request: (original, retrain) of forget_acc, test_acc, mia_loss_auc
BASE = {"class:3": ({"forget_acc": 1.0, "test_acc": 0.95, "mia_loss_auc": 0.70},
                    {"forget_acc": 0.0, "test_acc": 0.93, "mia_loss_auc": 0.50}),
        "random:0.1": ({"forget_acc": 1.0, "test_acc": 0.95, "mia_loss_auc": 0.60},
                       {"forget_acc": 0.90, "test_acc": 0.94, "mia_loss_auc": 0.50}),
        "sequential": ({"forget_acc": 1.0, "test_acc": 0.95, "mia_loss_auc": 0.60},
                       {"forget_acc": 0.90, "test_acc": 0.94, "mia_loss_auc": 0.50})}


def record(method: str, request: str, seed: int, *, step: int | None = None, cached: bool = False) -> dict[str, Any]:
    """ssd is at the Retrain everywhere; finetune too except on seed 2, where it keeps the forget set (a miss).
    ``cached``: ssd's statistic was in the store before the grid ran (every run records precompute_s = 0)."""
    original, retrain = BASE[request]
    miss = method == "finetune" and seed == 2
    metrics = {**retrain, "forget_acc": original["forget_acc"] if miss else retrain["forget_acc"]}
    if request == "class:3":
        metrics["classwise_acc_test"] = 0.9
        metrics["test_acc_forget_classes"] = 0.0
    ssd, first = method == "ssd", request == "class:3" and not cached  # computed by ssd's first request only
    fingerprint = f"{request}-{seed}" + ("" if step is None else f"-{step}")
    env = {"platform": "img", "torch_threads": 1}
    return {
        "method": method, "label": method, "params": {}, "task": "classification", "dataset": "digits",
        "dataset_fingerprint": "d", "model": "mlp", "forget": "random:0.02" if step is not None else request,
        "request": {"fingerprint": fingerprint, "n_retain": 1000, "kind": request.split(":")[0]}, "seed": seed,
        "metrics": metrics, "original": original, "retrain": retrain,
        "gap_to_retrain": {k: abs(v - retrain.get(k, v)) for k, v in metrics.items()},
        "time_s": SSD_S if ssd else FINETUNE_S, "retrain_time_s": ORACLE_S, "status": "ok", "env": env,
        "original_key": f"orig{seed}", "oracle_key": fingerprint,
        "access": {"train_stats": ["ssd_importances"], "precompute_s": SSD_PRE_S if first else 0.0} if ssd else {},
        "oracle_env": env,  # a record's extra fields are top-level keys of its JSON
        **({} if step is None else {"scenario": "sequential", "step": step, "k": 3})}


# per-example summaries: losses (percentiles 0..100) start at CENTRE[model] + 0.1·seed, step 0.001 per level
CENTRE = {"original": 0.01, "retrain": 1.0, "finetune": 0.2, "ssd": 0.5}


def summaries(model: str, request: str, seed: int) -> dict[str, dict[str, Any]]:
    low = CENTRE[model] + 0.1 * seed
    sets = {"forget": {"n": 101, "mean": low + 0.05, "q": [low + 0.001 * k for k in range(101)]},
            "test": {"n": 101, "mean": 2.05, "q": [2.0 + 0.001 * k for k in range(101)]}}
    forgotten = [3] if request == "class:3" else []
    test = [0.9, 0.8, 0.7, 0.0 if model != "original" and forgotten else 0.6]
    return {"mia_loss": {"feature": "classification per-example loss", "percent_step": 1, "sets": sets},
            "class_acc": {"classes": ["0", "1", "2", "3"], "forget_classes": forgotten, "test": test,
                          "n_test": [10] * 4, "forget": [None] * 4, "n_forget": [0] * 4}}


def dists(method: str, request: str, seed: int, steps: int) -> list[dict[str, Any]]:
    return [{"step": i, "role": role, "kind": kind, "payload": payload} for i in range(steps)
            for role in ("unlearned", "original", "retrain")
            for kind, payload in summaries(method if role == "unlearned" else role, request, seed).items()]


def make_grid(directory: Path, *, cached: bool = False, old_store: bool = False) -> Path:
    """The hand-made grid; ``old_store``: written as before the distributions table existed."""
    with ResultStore(directory) as rs:
        if old_store:
            rs.conn.execute("DROP TABLE distributions")
        for request in BASE:
            for seed in SEEDS:
                for method in ("finetune", "ssd"):
                    steps = [record(method, request, seed, step=i, cached=cached) for i in range(3)] \
                        if request == "sequential" else [record(method, request, seed, cached=cached)]
                    cell = {"key": f"{request}-{seed}-{method}", "dataset": "digits", "model": "mlp",
                            "request_label": request, "seed": seed, "method": method, "label": method}
                    summary = [] if old_store else dists(method, request, seed, len(steps))
                    rs.write_cell(cell, {"status": "ok", "records": steps, "distributions": summary})
        rs.write_cell({**cell, "key": "boom", "method": "neggrad"},
                      {"status": "failed", "records": [], "error": "RuntimeError: boom"})
    return directory


class Table(HTMLParser):
    """The screening table's body rows as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr" and ("class", "row") in attrs:
            self.rows.append([])
        self.inside = tag == "td" and bool(self.rows)

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.rows[-1].append(data)
            self.inside = False


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict[str, Any]]:
    directory = make_grid(tmp_path_factory.mktemp("grid") / "out")
    info = write_report(directory, directory / "report.html")
    return directory / "report.html", (directory / "report.html").read_text(encoding="utf-8"), info


def test_the_report_is_self_contained(report: tuple[Path, str, dict[str, Any]]) -> None:
    _, text, info = report
    assert re.search(r"<(script|link|img|iframe)[^>]*(src|href)\s*=", text, re.I) is None  # nothing fetched at all
    assert "cdn" not in " ".join(re.findall(r"<script[^>]*>", text)).lower()
    # trade-off, class-wise metrics, closure, curves; then per request (3): MIA distributions, per-class accuracy
    assert info["plots"] == PLOTS and text.count('class="plotly-graph-div"') == PLOTS
    assert text.count("Plotly.newPlot") == PLOTS and len(re.findall(r"\* plotly\.js v", text)) == 1  # bundle once
    for request in BASE:
        assert f"MIA loss distributions, forget vs test: digits/mlp {request}" in text
        assert f"Per-class test accuracy: digits/mlp {request}" in text
    assert "3 (forgotten)" in text and "before per-example summaries" not in text


def test_an_old_store_without_summaries_says_so_instead_of_drawing(tmp_path: Path) -> None:
    directory = make_grid(tmp_path / "old", old_store=True)
    info = write_report(directory, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert info["plots"] == 4 and "MIA loss distributions" not in text and "Per-class test accuracy" not in text
    assert "before per-example summaries were stored" in text


def test_mia_boxes_average_the_seeds_percentiles_and_take_each_baseline_once_per_seed(
        report: tuple[Path, str, dict[str, Any]]) -> None:
    """Vincentized over 3 seeds: level k of ssd's forget losses is 0.5 + 0.1·mean(0, 1, 2) + 0.001 k, so the box's
    median is 0.65 and its whiskers the 5th/95th percentiles 0.605/0.695; the Original and the Retrain enter once per
    seed (3 payloads), not once per method (6). Sequential: the last step."""
    from expunge.harness.report import load_groups
    from expunge.harness.report_dists import load_distributions, mia_boxes, payloads

    groups, _ = load_groups(report[0].parent)
    dist = load_distributions(report[0].parent)
    assert dist is not None
    seq = [g for g in groups if g.request == "sequential"]
    by_model = payloads(seq, dist, "mia_loss")
    assert {m: len(ps) for m, ps in by_model.items()} == {"Original": 3, "Retrain": 3, "finetune": 3, "ssd": 3}
    forget = next(t for t in mia_boxes(by_model).data if t.name == "forget")
    ssd = list(forget.x).index("ssd")
    assert (forget.median[ssd], forget.lowerfence[ssd], forget.upperfence[ssd]) == \
        pytest.approx((0.65, 0.605, 0.695))
    assert forget.q1[list(forget.x).index("Original")] == pytest.approx(0.01 + 0.1 + 0.025)


def test_class_bars_mark_the_forgotten_class(report: tuple[Path, str, dict[str, Any]]) -> None:
    from expunge.harness.report import load_groups
    from expunge.harness.report_dists import class_bars, load_distributions, payloads

    groups, _ = load_groups(report[0].parent)
    dist = load_distributions(report[0].parent)
    assert dist is not None
    fig = class_bars(payloads([g for g in groups if g.request == "class:3"], dist, "class_acc"))
    assert [t.name for t in fig.data] == ["Original", "Retrain", "finetune", "ssd"]
    assert list(fig.data[0].x) == ["0", "1", "2", "3 (forgotten)"] and fig.data[0].y[3] == pytest.approx(0.6)
    assert fig.data[1].y[3] == 0.0
    (shade,) = fig.layout.shapes
    assert (shade.x0, shade.x1) == (2.5, 3.5)
    random = class_bars(payloads([g for g in groups if g.request == "random:0.1"], dist, "class_acc"))
    assert list(random.data[0].x) == ["0", "1", "2", "3"] and not random.layout.shapes


def test_the_table_has_one_row_per_method_and_request_with_the_rules_verdicts(
        report: tuple[Path, str, dict[str, Any]]) -> None:
    """Known answers: finetune misses the forget bound on seed 2 only (2/3 seeds, never judged on the mean); speed-up
    100 s / 10 s; ssd's 16 s one-off statistic is shared by the 5 requests on each seed's Original (class, random and
    three sequential steps), so its amortised speed-up is 100 / (2 + 16/5) = 19.2×, while its speed-up is 50×."""
    parser = Table()
    parser.feed(report[1])
    rows = {(r[1], r[2]): r for r in parser.rows}
    assert sorted(rows) == sorted((q, m) for q in BASE for m in ("finetune", "ssd"))
    for row in parser.rows:
        assert row[3] == "3"  # seeds
        assert re.fullmatch(r"[0-3]/3 seeds.*", row[-4])
    assert rows[("class:3", "finetune")][-4].startswith("2/3 seeds")
    assert rows[("class:3", "ssd")][-4].startswith("3/3 seeds")
    assert "no power: test_acc 3/3" in rows[("class:3", "ssd")][-4]  # Original within 0.02 of the Retrain
    assert rows[("sequential", "finetune")][-4].startswith("2/3 seeds")
    assert rows[("class:3", "finetune")][-3:] == ["10.0×", "10.0×", "none"]
    assert rows[("class:3", "ssd")][-3:] == ["50.0×", "19.2×", "one-off 16.0 s"]
    forget = rows[("class:3", "finetune")][4:8]  # unlearned, original, retrain, gap: mean ± 95% t over 3 seeds
    assert forget[1:3] == ["1.000", "0.000"]
    assert forget[0] == forget[3][1:] and forget[3].startswith("+0.333 ± 1.434")  # t(0.975, 2)·s/√3 = 1.434


def test_a_precompute_hidden_by_a_cache_hit_is_unknown_unless_the_store_prices_it(tmp_path: Path) -> None:
    """Every ssd run hit a cached statistic (precompute_s = 0): never read as free — "unknown", no amortised
    speed-up — until the store's manifests give its cost (16 s per Original: 19.2× as when it was measured)."""
    directory = make_grid(tmp_path / "grid", cached=True)

    def ssd_row(**kw: Any) -> list[str]:
        write_report(directory, tmp_path / "r.html", **kw)
        parser = Table()
        parser.feed((tmp_path / "r.html").read_text(encoding="utf-8"))
        return next(r for r in parser.rows if r[1:3] == ["class:3", "ssd"])

    assert ssd_row()[-3:] == ["50.0×", "— (n=0/3)", "one-off unknown"]
    costs = {(f"orig{s}", "ssd_importances"): SSD_PRE_S for s in SEEDS}
    assert ssd_row(store_costs=costs)[-3:] == ["50.0×", "19.2×", "one-off 16.0 s"]


def test_errors_are_one_line_and_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "expunge.cli.main", "report", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)

    (tmp_path / "empty").mkdir()
    with ResultStore(tmp_path / "failed") as rs:  # a store whose only cell failed: no record to report
        rs.write_cell({"key": "x", "dataset": "digits", "model": "mlp", "request_label": "class:3", "seed": 0,
                       "method": "ssd", "label": "ssd"}, {"status": "failed", "records": [], "error": "boom"})
    for folder, words in (("missing", "is not a folder"), ("empty", "holds no bench results"),
                          ("failed", "holds no run record")):
        res = cli(folder, "--out", "r.html")
        assert res.returncode == 2, res.stderr
        (line,) = res.stderr.strip().splitlines()
        assert line.startswith("error: ") and words in line and "Fix:" in line
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(NoResults):
        write_report(tmp_path / "failed", tmp_path / "r.html")
    make_grid(tmp_path / "grid")
    monkeypatch.setitem(sys.modules, "plotly.offline", None)  # plotly not installed
    with pytest.raises(MissingPlotly, match="expunge\\[report\\]"):
        write_report(tmp_path / "grid", tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_the_report_renders_in_headless_chromium(report: tuple[Path, str, dict[str, Any]]) -> None:
    """The system Chromium (Playwright's own download is not used): no console error or page error, the table's 6
    rows, and every plot div drawn by Plotly (its .main-svg layer present, with marks in it), the MIA box plots
    among them."""
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no system chromium (CI installs it with apt: see .ci/run)")
    path, text, _ = report
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: errors.append(f"network: {r.url}") if not r.url.startswith("file:") else None)
            page.goto(path.as_uri(), wait_until="load")
            try:
                page.wait_for_function("document.querySelectorAll('.plotly-graph-div .main-svg').length >= "
                                       f"{PLOTS}", timeout=20_000)
            except sync_api.TimeoutError:
                pytest.fail(f"the plots were not drawn; page errors: {errors}")
            assert page.locator("#screening tr.row").count() == 6
            plots = page.locator(".plotly-graph-div")
            assert plots.count() == text.count('class="plotly-graph-div"') == PLOTS
            for i in range(plots.count()):
                assert plots.nth(i).locator(".main-svg").count() >= 1
                assert plots.nth(i).locator(".trace, .point, .barlayer path, .boxlayer path").count() >= 1
            assert page.locator(".boxlayer .trace").count() >= 3 * 2  # forget and test boxes on every request
        finally:
            browser.close()
    assert errors == []


def test_class_wise_bars_take_the_original_and_retrain_once_per_seed() -> None:
    """Two methods share each seed's Original (0.8 on seed 0, 1.0 on seed 1): its bar's interval is over 2 values
    (t(0.975, 1) · 0.1 = 1.271), not over one copy per method (4 values: 0.184, falsely narrow)."""
    from expunge.harness.report import Group
    from expunge.harness.report_plots import classwise
    from expunge.record import RunRecord

    groups = []
    for method in ("finetune", "ssd"):
        g = Group("digits", "mlp", "class:3", method)
        for seed, orig in ((0, 0.8), (1, 1.0)):
            doc = record(method, "class:3", seed)
            doc["original"] = {**doc["original"], "classwise_acc_test": orig}
            g.records.append(RunRecord.from_json(doc))
        groups.append(g)
    (bar,) = [t for t in classwise(groups).data if t.name == "classwise_acc_test"]
    original = list(bar.x).index("Original")
    assert bar.y[original] == pytest.approx(0.9)
    assert bar.error_y.array[original] == pytest.approx(12.7062 * 0.1, rel=1e-4)


def test_summaries_that_failed_are_named_under_the_figure(tmp_path: Path) -> None:
    directory = make_grid(tmp_path / "grid")
    with ResultStore(directory) as rs:
        cell = {"key": "broken", "dataset": "digits", "model": "mlp", "request_label": "class:3", "seed": 0,
                "method": "neggrad", "label": "neggrad"}
        rs.write_cell(cell, {"status": "ok", "records": [record("neggrad", "class:3", 0)], "distributions": [],
                             "distributions_error": "RuntimeError: boom"})
    info = write_report(directory, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert info["plots"] == PLOTS  # neggrad has no box and no bar; every other model still drawn
    assert "Not computed for: error: RuntimeError: boom (neggrad)" in text
