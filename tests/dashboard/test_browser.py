"""The dashboard in the system Chromium (headless, Playwright; Playwright's own browser download is not used): load it
on the tiny digits grid, sort and filter the screening table, pick two models, and check that every built view draws
with no console error, no page error and no request leaving the machine; screenshots of each view are saved under
``test-artifacts/dashboard/`` (or ``$EXPUNGE_TEST_ARTIFACTS``)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(os.environ.get("EXPUNGE_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "dashboard"
VIEWS = ("classwise", "predictions", "layers", "embeddings", "attack", "timeline")


@pytest.fixture(scope="module")
def server(bench: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard on a copy of the grid's folder (the Build test adds a run to it)."""
    uvicorn = pytest.importorskip("uvicorn")
    from expunge.dashboard.app import create_app
    from expunge.store import ArtifactStore

    folder = tmp_path_factory.mktemp("served") / "out"
    shutil.copytree(bench[0], folder)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(folder, store=ArtifactStore(bench[1])), host="127.0.0.1",
                                        port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[tuple[Any, list[str]]]:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no system chromium (CI installs it with apt: see .ci/run)")
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            pg.on("pageerror", lambda e: errors.append(str(e)))
            pg.on("request", lambda r: errors.append(f"network: {r.url}") if not r.url.startswith(server) else None)
            pg.goto(server + "/", wait_until="load")
            pg.wait_for_selector("body[data-loaded]", timeout=20_000)
            yield pg, errors
        finally:
            browser.close()


def pick(pg: Any, a: str, b: str) -> None:
    """Pick runs by the text of their row, or B as the Retrain of A; wait until every view is drawn."""
    pg.locator("#filter").fill("")
    pg.locator(f"#runs-table tbody tr:has-text('{a}') input[name=pick-a]").first.check()
    if b == "retrain":
        pg.locator("#b-retrain").click()
    else:
        pg.locator(f"#runs-table tbody tr:has-text('{b}') input[name=pick-b]").first.check()
    pg.wait_for_function("document.body.dataset.ready && [...document.querySelectorAll('.view[id^=view-]')]"
                         ".every(v => v.dataset.rendered)", timeout=60_000)


def shoot(pg: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_screening_table_sorts_and_filters(page: tuple[Any, list[str]]) -> None:
    pg, errors = page
    rows = pg.locator("#runs-table tbody tr")
    assert rows.count() == 4
    pg.locator("#runs-table th[data-key='v:forget_acc']").click()
    values = [float(t) for t in pg.locator("#runs-table tbody tr td:nth-child(9)").all_inner_texts()]
    assert values == sorted(values)
    pg.locator("#filter").fill("neggrad")
    assert rows.count() == 1
    pg.locator("#filter").fill("")
    shoot(pg, "1-screening")
    assert errors == []


def test_two_methods_every_view_draws(page: tuple[Any, list[str]]) -> None:
    pg, errors = page
    pick(pg, "finetune", "neggrad_plus")
    for view in VIEWS:
        section = pg.locator(f"#view-{view}")
        assert section.get_attribute("data-rendered") == "1", (view, section.locator(".msg").inner_text())
        assert section.locator(".main-svg").count() >= 1
        section.screenshot(path=str(ARTIFACTS / f"view-{view}-two-methods.png"))
    assert pg.locator("#plot-classwise-test .barlayer .trace").count() == 4  # A, B, Original, Retrain
    assert pg.locator("#plot-cka-forget .scatterlayer .trace").count() == 4  # A and B vs Original and Retrain
    # hovering an example in A's embedding shows it in B too, with its image and both predictions
    pg.locator("#plot-emb-A .scatterlayer .trace .point").first.hover(force=True)
    pg.wait_for_selector("#emb-detail-text", timeout=20_000)
    assert "A predicts" in pg.locator("#emb-detail-text").inner_text() and pg.locator("#emb-detail canvas").count() == 1
    assert pg.locator("#plot-emb-B .hoverlayer .hovertext").count() >= 1
    assert pg.locator("#attack-table tr").count() == 3
    assert pg.locator("#exposed-A canvas").count() == 8 and pg.locator("#exposed-B canvas").count() == 8
    before = pg.locator("#attack-table tr:nth-child(2) td:nth-child(2)").inner_text()
    pg.locator("#attack-threshold").evaluate("el => { el.value = '5'; el.dispatchEvent(new Event('input')); }")
    assert pg.locator("#attack-strategy").input_value() == "custom"
    after = pg.locator("#attack-table tr:nth-child(2) td:nth-child(2)").inner_text()
    assert before != after or after == "0.500"
    for strategy in ("max_success", "max_attack_score", "common"):
        pg.locator("#attack-strategy").select_option(strategy)
    pg.locator("#pred-split").select_option("forget")
    pg.wait_for_function("document.querySelector('#plot-pred-A .gtitle')?.textContent.includes('forget')")
    shoot(pg, "2-two-methods")
    assert errors == []


def test_a_method_against_its_retrain_and_a_sequential_timeline(page: tuple[Any, list[str]]) -> None:
    pg, errors = page
    pick(pg, "neggrad_plus", "retrain")
    assert "Retrain of" in pg.locator("#pick-b").inner_text()
    shoot(pg, "3-method-vs-retrain")
    pick(pg, "sequential", "sequential")
    assert pg.locator("#plot-timeline .scatterlayer .trace").count() >= 3
    assert pg.locator("#plot-timeline .scatterlayer .trace").first.locator(".point").count() == 2
    pg.locator("#view-timeline").screenshot(path=str(ARTIFACTS / "view-timeline-sequential.png"))
    assert errors == []


def test_a_build_is_refused_when_invalid_and_joins_the_table_when_done(page: tuple[Any, list[str]]) -> None:
    pg, errors = page
    option = pg.locator("#build-template option", has_text="finetune · class:3").first
    pg.locator("#build-template").select_option(option.get_attribute("value"))
    pg.locator("#build-method").select_option("finetune")
    pg.locator("#build-params input[data-name=lr]").fill("-1")
    pg.locator("#build-start").click()
    pg.wait_for_function("document.querySelector('#build-msg').textContent.startsWith('refused')")
    assert "lr" in pg.locator("#build-msg").inner_text() and pg.locator("#build-jobs tr").count() == 0
    pg.locator("#build-params input[data-name=lr]").fill("0.01")
    pg.locator("#build-params input[data-name=epochs]").fill("2")
    pg.locator("#build-label").fill("finetune built in the page")
    pg.locator("#build-start").click()
    pg.wait_for_selector("#build-jobs tr[data-job]")
    pg.locator("#build").screenshot(path=str(ARTIFACTS / "view-build-running.png"))
    pg.wait_for_selector("#build-jobs tr[data-state=done]", timeout=120_000)
    pg.wait_for_selector("#runs-table tbody tr:has-text('finetune built in the page')", timeout=10_000)
    assert pg.locator("#runs-table tbody tr").count() == 5
    pg.locator("#build").screenshot(path=str(ARTIFACTS / "view-build-done.png"))
    # the browser logs the refused request's 400 itself; nothing else may be logged
    assert [e for e in errors if "status of 400 (Bad Request)" not in e] == []
    assert len(errors) == 1
