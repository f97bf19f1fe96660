"""Command-line option types shared by every ``expunge`` command module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataOpt = Annotated[str, typer.Option("--data", help="dataset name (digits, fashion-mnist)")]
ModelOpt = Annotated[str, typer.Option("--model", help="architecture (mlp, cnn, resnet)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="seed of the original, the oracles, the requests and the method")]
StoreOpt = Annotated[Path | None, typer.Option("--store", help="artifact cache (default $EXPUNGE_CACHE or "
                                                               "~/.cache/expunge)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="folder with dataset files (Fashion-MNIST IDX)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document")]
