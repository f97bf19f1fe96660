"""``expunge serve DIR``: the local comparison dashboard of a bench folder (:mod:`expunge.dashboard`).

Hooked into :mod:`expunge.cli.main` by :func:`register`. Binds to 127.0.0.1 unless ``--host`` says otherwise. A missing
folder, one without results, or the dashboard extra not installed is one ``error: ...`` line and exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from expunge.cli.options import DataDirOpt, StoreOpt, dir_arg
from expunge.errors import ExpungeError, InvalidPath


def serve_cmd(
    directory: Annotated[Path, typer.Argument(help="the --out folder of an `expunge bench` run, or a committed "
                                                   "results folder (benchmarks/results/NAME)")],
    host: Annotated[str, typer.Option("--host", help="address to bind (default: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port")] = 8000,
    store: StoreOpt = None,
    data_dir: DataDirOpt = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="keep computed model outputs in memory instead of "
                                                              "caching them in the artifact store")] = False,
) -> None:
    """Serve a web dashboard comparing two unlearned models side by side (screening table, class-wise accuracy,
    prediction matrices, layer-wise CKA, embeddings, membership-inference attack, sequential timeline, and Build to
    start new runs). Read-only over DIR except the cells Build jobs store; what the views need is computed once per
    model from the stored weights and cached in the artifact store (--store, default $EXPUNGE_CACHE) unless
    --no-cache."""
    if not directory.is_dir():
        raise InvalidPath(f"DIR {directory} is not a folder. Fix: pass the --out folder of an `expunge bench` run")
    if store is not None and not store.is_dir():
        raise InvalidPath(f"--store {store} is not a folder. Fix: pass the artifact store the grid ran with")
    try:
        import uvicorn

        from expunge.dashboard.app import create_app
    except ModuleNotFoundError as exc:
        raise ExpungeError(f"the dashboard needs {exc.name}. Fix: pip install 'expunge[dashboard]'") from None
    from expunge.dashboard.app import LOOPBACK_HOSTS
    from expunge.store import ArtifactStore

    # bound to this machine: only its own names are served (a DNS-rebinding page cannot reach it under another one)
    hosts = (*LOOPBACK_HOSTS, host) if host not in ("0.0.0.0", "::", "") else None
    app = create_app(directory, store=ArtifactStore(store), data_dir=dir_arg(data_dir), cache_outputs=not no_cache,
                     allowed_hosts=hosts)
    typer.echo(f"expunge dashboard of {directory}: http://{host}:{port}/ (Ctrl-C stops it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
