"""A tiny real digits grid shared by the dashboard tests: a class request (finetune, neggrad_plus) and a two-step
sequential stream (finetune), one seed, 1 training epoch — every model in a real artifact store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

TINY: dict[str, Any] = {"name": "tiny-dash", "datasets": ["digits"], "models": ["mlp"], "recipe": {"epochs": 1},
                        "requests": [{"forget": "class:3"},
                                     {"scenario": "sequential", "params": {"k": 2, "base": "random:0.02"}}],
                        "methods": ["finetune", {"name": "neggrad_plus", "requests": ["class:3"]}],
                        "metrics": ["forget_acc", "retain_acc", "test_acc", "mia_loss_auc"], "seeds": [0]}


@pytest.fixture(scope="session")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(bench folder, artifact store) of the tiny grid."""
    from expunge.harness.config import parse_config
    from expunge.harness.grid import expand
    from expunge.harness.results import ResultStore
    from expunge.harness.run import SequentialExecutor, run_grid

    root = tmp_path_factory.mktemp("dash")
    out, store = root / "out", root / "store"
    with ResultStore(out) as rs:
        summary = run_grid(expand(parse_config(TINY)), rs, SequentialExecutor(), store_root=str(store))
    assert summary.ok == 3, summary
    return out, store


@pytest.fixture(scope="session")
def client(bench: tuple[Path, Path]) -> Any:
    from fastapi.testclient import TestClient

    from expunge.dashboard.app import create_app
    from expunge.store import ArtifactStore

    out, store = bench
    with TestClient(create_app(out, store=ArtifactStore(store)), raise_server_exceptions=False) as c:
        yield c
