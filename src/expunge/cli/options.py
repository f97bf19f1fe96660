"""Command-line option types and helpers shared by every ``expunge`` command module."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from expunge.errors import ExpungeError

DataOpt = Annotated[str, typer.Option("--data", help="dataset name (digits, fashion-mnist)")]
ModelOpt = Annotated[str, typer.Option("--model", help="architecture (mlp, cnn, resnet)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed of the original, the oracles, the requests and the method")]
StoreOpt = Annotated[Path | None, typer.Option("--store", help="artifact cache (default $EXPUNGE_CACHE or "
                                                               "~/.cache/expunge)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="folder with dataset files (Fashion-MNIST IDX)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document")]
ForgetOpt = Annotated[str, typer.Option("--forget", help="what to forget: class:3 | classes:3,5 | subclass:NAME | "
                                                         "random:0.1 | owners:K | ids:FILE (`expunge scenarios`)")]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", help="NAME=VALUE hyperparameter override")]
PresetOpt = Annotated[str | None, typer.Option("--preset", help="DATASET/MODEL/SCENARIO: start from this tuned preset "
                                                                "(default: the shipped one matching the request, if "
                                                                "any); --param overrides it")]
PaperDefaultsOpt = Annotated[bool, typer.Option("--paper-defaults", help="use the paper's hyperparameters even when "
                                                                         "a tuned preset matches the request")]
TaskOpt = Annotated[str | None, typer.Option("--task", help="the dataset's task (classification, regression); "
                                                            "default: the dataset's own")]


def parse_params(items: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` items (``--param``, ``--set``) as a mapping; values are parsed by the target's dataclass."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ExpungeError(f"--param expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def emit_json(obj: Any) -> None:
    """Print exactly one JSON document on stdout."""
    from expunge._io import to_json_bytes

    sys.stdout.write(to_json_bytes(obj).decode())


def list_registered(registry: Any, as_json: bool, line: Callable[[dict[str, Any]], str]) -> None:
    """Every registered class's ``describe()``: one JSON document with ``as_json``, else ``line(d)`` for each."""
    described = [cls.describe() for _, cls in registry.items()]
    if as_json:
        emit_json(described)
        return
    for d in described:
        typer.echo(line(d))


def open_store(path: Path | None) -> Any:
    """The artifact store at ``path`` (default ``$EXPUNGE_CACHE`` or ``~/.cache/expunge``)."""
    from expunge.store import ArtifactStore

    return ArtifactStore(path)


def dir_arg(path: Path | None) -> str | None:
    return None if path is None else str(path)
