"""The dashboard's HTTP interface: JSON under ``/api``, the static front-end under ``/`` and ``/static``.

Security and robustness (issue 27): the server binds to 127.0.0.1 unless told otherwise (:mod:`expunge.cli.serve`);
every route only reads; no request names a file — static files are a fixed list of package files, models are reached
through run ids and the keys their records list — so ``..`` in any encoding reaches nothing; nothing is unpickled
(weights are safetensors); a bad parameter is a 4xx JSON ``{"error": ...}`` and an unexpected failure a 500 JSON
without a traceback.

Model references (``a``, ``b``, ``{ref}``): ``ID`` (the unlearned model of run ID, as the screening table lists it),
``ID:original`` or ``ID:retrain`` (that run's Original and Retrain).
"""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from expunge.dashboard import views
from expunge.dashboard.catalog import Catalog, UnknownRun
from expunge.dashboard.jobs import BuildRefused, Jobs
from expunge.dashboard.outputs import ModelOutputs, OutputCache, WeightsMissing
from expunge.dashboard.representations import Representations, projections, unknown_projection
from expunge.errors import ArtifactError, ExpungeError, InvalidArtifactKey
from expunge.record import RunRecord
from expunge.store import ArtifactStore

log = logging.getLogger(__name__)
REF = re.compile(r"(\d{1,9})(?::(unlearned|original|retrain))?")
STATIC = {"index.html": "text/html", "app.js": "text/javascript", "views.js": "text/javascript",
          "repr.js": "text/javascript", "build.js": "text/javascript", "style.css": "text/css"}


class BadParameter(ExpungeError, ValueError):
    """A query or path parameter the API cannot use."""


def plotly_js() -> bytes:
    """Plotly's bundle from the installed ``plotly`` package (no CDN)."""
    try:
        return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        return b"console.warn('plotly is not installed: pip install plotly (the report extra)');"


def _static(name: str) -> bytes:
    return resources.files("expunge.dashboard").joinpath("static", name).read_bytes()


def parse_ref(ref: str) -> tuple[int, str]:
    m = REF.fullmatch(ref)
    if not m:
        raise BadParameter(f"model reference {ref[:40]!r} is not ID, ID:original or ID:retrain. Fix: use a run id "
                           "from /api/runs")
    return int(m.group(1)), m.group(2) or "unlearned"


def status_of(exc: ExpungeError) -> int:
    """404: no such run or weights; 409: the store or a busy build queue conflicts; 422: a view that does not apply to
    the run; 400: any other bad input."""
    if isinstance(exc, UnknownRun | WeightsMissing | InvalidArtifactKey):
        return 404
    if isinstance(exc, ArtifactError) or (isinstance(exc, BuildRefused) and "running" in str(exc)):
        return 409
    return 422 if isinstance(exc, views.ViewNotApplicable) else 400


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def host_of(header: str) -> str:
    """The host of a ``Host`` header: ``a:8000`` -> ``a``, ``[::1]:8000`` -> ``[::1]``."""
    return header.split("]")[0] + "]" if header.startswith("[") else header.rsplit(":", 1)[0]


def create_app(directory: str | Path, *, store: ArtifactStore | None = None, data_dir: str | None = None,
               cache_outputs: bool = True, allowed_hosts: tuple[str, ...] | None = None) -> FastAPI:
    """The dashboard of ``directory``. ``allowed_hosts``: the ``Host`` header values served (a request naming
    another — a DNS-rebinding page reaching 127.0.0.1 under its own name — gets a 400); None serves any."""
    catalog = Catalog(directory)
    outputs = OutputCache(store or ArtifactStore(), data_dir, write=cache_outputs)
    reprs = Representations(outputs)
    jobs = Jobs(Path(directory), outputs.store.root, data_dir, writable=catalog.db_dir == Path(directory))
    app = FastAPI(title="expunge dashboard", docs_url=None, redoc_url=None, openapi_url=None,
                  on_shutdown=[jobs.close, catalog.close])
    app.state.catalog, app.state.jobs = catalog, jobs

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)

    @app.middleware("http")
    async def check_host(request: Request, call_next: Any) -> Response:
        host = host_of(request.headers.get("host", ""))
        if allowed_hosts is not None and host not in allowed_hosts:
            return error(400, f"host {host[:60]!r} is not served here (allowed: {', '.join(allowed_hosts)})")
        return await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, "not found" if exc.status_code == 404 else str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return error(400, "bad parameter: " + "; ".join(parts))

    @app.exception_handler(ExpungeError)
    async def expunge_error(request: Request, exc: ExpungeError) -> JSONResponse:
        return error(status_of(exc), str(exc))

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("dashboard: %s failed", request.url.path)  # the traceback stays in the server's log
        return error(500, f"internal error ({type(exc).__name__}); see the server log")

    @app.get("/")
    def index() -> Response:
        return Response(_static("index.html"), media_type="text/html")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name == "plotly.min.js":
            return Response(plotly_js(), media_type="text/javascript")
        if name not in STATIC:
            raise StarletteHTTPException(404)
        return Response(_static(name), media_type=STATIC[name])

    @app.get("/api/runs")
    def runs() -> dict[str, Any]:
        return catalog.screening()

    @app.get("/api/runs/{run_id}/timeline")
    def timeline(run_id: int) -> dict[str, Any]:
        return catalog.timeline(run_id)

    def model(ref: str, view: str) -> tuple[RunRecord, ModelOutputs]:
        run_id, role = parse_ref(ref)
        rec, _ = catalog.record(run_id)
        views.require(rec.task, view)  # before loading anything: a graph model cannot run on plain inputs
        return rec, outputs.outputs(rec, role)

    @app.get("/api/models/{ref}/info")
    def info(ref: str) -> dict[str, Any]:
        run_id, role = parse_ref(ref)
        rec, _ = catalog.record(run_id)
        out: dict[str, Any] = {"ref": ref, "run": run_id, "role": role, "method": rec.method, "task": rec.task,
                               "dataset": rec.dataset, "forget": rec.forget}
        try:
            views.require(rec.task, "attack")
            image = views.is_image(outputs.outputs(rec, role))
            out["weights"] = True
        except (WeightsMissing, ArtifactError, views.ViewNotApplicable) as exc:
            image, out["weights"], out["weights_error"] = None, False, str(exc)
        out["views"] = views.applicable(rec.task, image)
        return out

    @app.get("/api/models/{ref}/classwise")
    def classwise(ref: str) -> dict[str, Any]:
        return views.classwise(model(ref, "classwise")[1])

    @app.get("/api/models/{ref}/predictions")
    def predictions(ref: str, split: str = "test") -> dict[str, Any]:
        if split not in views.SPLITS:
            raise BadParameter(f"split {split[:20]!r} is not one of {list(views.SPLITS)}")
        return views.predictions(model(ref, "predictions")[1], split)

    @app.get("/api/attack")
    def attack(a: str, b: str, feature: str = "loss", threshold: float | None = None) -> dict[str, Any]:
        if threshold is not None and not abs(threshold) < float("inf"):
            raise BadParameter("threshold must be a finite number")
        return views.attack_view([("A", model(a, "attack")[1]), ("B", model(b, "attack")[1])], feature, threshold)

    def pair(a: str, b: str, view: str) -> dict[str, tuple[RunRecord, str]]:
        out = {}
        for name, ref in (("A", a), ("B", b)):
            run_id, role = parse_ref(ref)
            out[name] = (catalog.record(run_id)[0], role)
            views.require(out[name][0].task, view)
        return out

    @app.get("/api/cka")
    def cka(a: str, b: str) -> dict[str, Any]:
        return reprs.cka(pair(a, b, "layers"))

    @app.get("/api/embeddings")
    def embeddings(a: str, b: str, method: str = "pca") -> dict[str, Any]:
        if method not in projections():
            raise BadParameter(unknown_projection(method))
        return reprs.embeddings(pair(a, b, "embeddings"), method)

    @app.get("/api/example")
    def example(a: str, b: str, group: str, index: int) -> dict[str, Any]:
        """Example ``index`` of ``group`` in A's sample: its label, image and both models' predictions."""
        models = pair(a, b, "embeddings")
        dataset, pos, test = reprs.example(models["A"][0], group, index)
        part = dataset.test if test else dataset.train
        out: dict[str, Any] = {"id": int(part.ids[pos]), "group": group,
                               "label": views.label_of(dataset, part.y[pos].item())}
        if views.is_image_data(dataset):
            out["image"] = views.image(part.x[pos].numpy())
        for name, (rec, role) in models.items():
            o = outputs.outputs(rec, role)
            z = (o.test if test else o.train)[pos]
            out[name] = views.label_of(dataset, int(z.argmax()) if dataset.task == "classification" else float(z[0]))
        return out

    @app.get("/api/methods")
    def methods(task: str | None = None) -> list[dict[str, Any]]:
        """The registered methods (for ``task``), each with its hyperparameters: name, default, type, help."""
        from expunge.methods.base import METHODS

        return [{k: d[k] for k in ("name", "summary", "tasks", "params")}
                for d in (cls.describe() for _, cls in METHODS.items()) if task is None or task in d["tasks"]]

    @app.post("/api/build", status_code=202)
    def build(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        """Start a build: ``{"template": run id, "method", "params": {...}, "forget", "seeds": [..], "label"}``."""
        template = body.get("template")
        if not isinstance(template, int) or isinstance(template, bool):
            raise BadParameter("template must be the id of a run of this folder (its dataset, model and recipe)")
        cell = catalog.record(template)[1]
        method = body.get("method")
        if not isinstance(method, str):
            raise BadParameter("method must be a registered method's name (GET /api/methods)")
        job = jobs.start(cell, method, body.get("params", {}), body.get("forget"), body.get("seeds", [0]),
                         body.get("label"))
        return {"id": job.id, "label": job.label, "cells": len(job.keys)}

    @app.get("/api/jobs")
    def list_jobs() -> list[dict[str, Any]]:
        return jobs.describe(catalog.stored_cells())

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: int) -> dict[str, Any]:
        try:
            job = jobs.cancel(job_id)
        except LookupError as exc:
            raise UnknownRun(str(exc)) from None
        return {"id": job.id, "state": job.state}

    return app
