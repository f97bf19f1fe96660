"""``expunge serve``: bad folders are one error line (exit 2) before anything starts; it binds to 127.0.0.1 unless
told otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from expunge.cli.main import app


def test_a_missing_or_empty_folder_is_refused(tmp_path: Path) -> None:
    from expunge.cli.main import main

    for target, says in ((tmp_path / "nope", "is not a folder"), (tmp_path, "holds no results")):
        with pytest.raises(SystemExit) as exc, pytest.MonkeyPatch.context() as m:
            m.setattr("sys.argv", ["expunge", "serve", str(target)])
            main()
        assert exc.value.code == 2, says


def test_binds_to_localhost_by_default(bench: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw, app=app))
    res = CliRunner().invoke(app, ["serve", str(bench[0]), "--store", str(bench[1]), "--port", "8123"])
    assert res.exit_code == 0, res.output
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8123) and "http://127.0.0.1:8123/" in res.output
    CliRunner().invoke(app, ["serve", str(bench[0]), "--store", str(bench[1]), "--host", "0.0.0.0"])
    assert seen["host"] == "0.0.0.0"


def test_a_localhost_server_refuses_other_host_names(bench: tuple[Path, Path]) -> None:
    """DNS rebinding: a page under evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    from fastapi.testclient import TestClient

    from expunge.dashboard.app import LOOPBACK_HOSTS, create_app
    from expunge.store import ArtifactStore

    app_ = create_app(bench[0], store=ArtifactStore(bench[1]), allowed_hosts=LOOPBACK_HOSTS)
    with TestClient(app_, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/runs").status_code == 200
        assert c.get("/api/runs", headers={"host": "[::1]:8000"}).status_code == 200
        res = c.post("/api/build", json={}, headers={"host": "evil.example:8000"})
        assert res.status_code == 400 and "not served here" in res.json()["error"]
