"""Command-line option types and helpers shared by every ``expunge`` command module."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from expunge.errors import ExpungeError, IncompatibleModel, InvalidPath

DataOpt = Annotated[str, typer.Option("--data", help="dataset name (digits, fashion-mnist, diabetes, "
                                                    "synthetic-regression, fashion-rotation, sbm, karate, "
                                                    "recsys-synth, movielens, facts, facts-tiny; fashion-mnist-cl "
                                                    "for the continual scenario) or csv:PATH (with --target)")]
TargetOpt = Annotated[str | None, typer.Option("--target", help="with --data csv:PATH: the column to predict")]
ModelOpt = Annotated[str, typer.Option("--model", help="architecture (mlp, cnn, resnet; gcn, sage for graphs; mf for "
                                                      "recommendation; gpt_tiny for llm facts)")]
SEED_MAX = 2**32 - 1  # NumPy's legacy seeding (used by scikit-learn) refuses seeds outside [0, 2**32)
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="seed of the original, the oracles, the "
                                                                          "requests and the method (0 to 2**32-1)")]
StoreOpt = Annotated[Path | None, typer.Option("--store", help="artifact cache (default $EXPUNGE_CACHE or "
                                                               "~/.cache/expunge)")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="folder with dataset files (Fashion-MNIST IDX)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document")]
ForgetOpt = Annotated[str, typer.Option("--forget", help="what to forget: class:3 | classes:3,5 | subclass:NAME | "
                                                         "random:0.1 | owners:K (llm: K people) | edges:0.05 | "
                                                         "ids:FILE (`expunge scenarios`)")]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", help="NAME=VALUE hyperparameter override")]
PresetOpt = Annotated[str | None, typer.Option("--preset", help="DATASET/MODEL/SCENARIO: start from this tuned preset "
                                                                "(default: the shipped one matching the request, if "
                                                                "any); --param overrides it")]
PaperDefaultsOpt = Annotated[bool, typer.Option("--paper-defaults", help="use the paper's hyperparameters even when "
                                                                         "a tuned preset matches the request")]
TaskOpt = Annotated[str | None, typer.Option("--task", help="the dataset's task (classification, regression, recsys, "
                                                            "graph, llm); default: the dataset's own")]


def with_target(data: str, target: str | None) -> str:
    """``data`` with ``--target`` folded into its name (``csv:PATH`` → ``csv:PATH?target=COL``): the name alone then
    reloads the dataset (run records, ``expunge evaluate``, harness configs)."""
    if target is None:
        return data
    if not data.startswith("csv:"):
        raise ExpungeError(f"--target names the column to predict of a csv:PATH dataset; {data!r} has its own targets. "
                           "Fix: drop --target, or pass --data csv:PATH")
    from urllib.parse import quote

    return f"{data}{'&' if '?' in data else '?'}target={quote(target, safe='')}"


ThreadsOpt = Annotated[int | None, typer.Option("--threads", min=1, help="torch (and BLAS) threads for training, "
                                                                       "unlearning and evaluation (default: torch's "
                                                                       "own, every core)")]


def apply_threads(threads: int | None) -> None:
    """``--threads``: torch's intra-op threads and the BLAS/OpenMP pools scikit-learn uses (the attacks), so that a
    run beside other work does not oversubscribe the cores (on 2 busy cores, 2 threads ran up to 5× slower than 1).
    Nothing changes without it. The thread count changes floating-point reduction order: records of runs at
    different counts can differ in the last digits."""
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn

        threadpool_limits(threads)
    except ImportError:  # pragma: no cover - scikit-learn always brings it
        pass


def parse_params(items: list[str], flag: str = "--param") -> dict[str, str]:
    """``NAME=VALUE`` items (``--param``, ``--set``: ``flag``, named in the error) as a mapping; values are parsed by
    the target's dataclass."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ExpungeError(f"{flag} expects NAME=VALUE, got {item!r}")
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


def open_store(path: Path | None, *, write: bool = True) -> Any:
    """The artifact store at ``path`` (default ``$EXPUNGE_CACHE`` or ``~/.cache/expunge``), checked before any work:
    :class:`~expunge.errors.InvalidPath` when it is a file or lies under one, or (``write``) cannot be written."""
    if path is not None:
        check_folder(path, "--store", write=write)  # before importing the store (and torch): a typo fails at once
    from expunge.store import ArtifactStore, default_store_root

    if path is None:
        root = default_store_root()
        check_folder(root, "EXPUNGE_CACHE" if os.environ.get("EXPUNGE_CACHE") else "the store", write=write)
    return ArtifactStore(path)


def check_folder(path: Path, what: str, *, write: bool = True) -> None:
    """Raise :class:`~expunge.errors.InvalidPath` unless ``path`` is a folder, or can be created as one, that this
    process may write into (``write``). Checked up front so that a bad path fails before minutes of training, not
    when the first result is saved; nothing is created here."""
    target = probe = path.absolute()
    while not probe.exists() and probe.parent != probe:  # the nearest existing ancestor decides if it can be made
        if probe.is_symlink():  # a dangling symlink: creating the folder through it would fail
            raise InvalidPath(f"{what} {path}: {probe} is a broken symbolic link. Fix: use another folder")
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == target else f"lies under {probe}, which is a file"
        raise InvalidPath(f"{what} {path} {where}, not a folder. Fix: use a folder (it is created if missing)")
    if write and not os.access(probe, os.W_OK | os.X_OK):
        raise InvalidPath(f"{what} {path}: {probe} is not writable by this user. Fix: use a folder you can write to")


def dir_arg(path: Path | None) -> str | None:
    return None if path is None else str(path)


def check_model_fits(dataset: Any, model: str) -> None:
    """Build ``model`` for ``dataset`` and pass two training examples through it, so that an architecture that cannot
    take the dataset's inputs (the image CNN on diabetes' 10 features) is an :class:`~expunge.errors.IncompatibleModel`
    before training rather than a traceback from inside it. An unknown name is an ``UnknownName``."""
    import torch

    from expunge.train.oracle import model_spec_for

    spec = model_spec_for(dataset, model)
    try:
        net = spec.build(seed=0).eval()
        with torch.no_grad():
            net(dataset.train.x[:2])
    except (ValueError, RuntimeError, TypeError, IndexError) as exc:
        raise IncompatibleModel(f"model {model!r} cannot take {dataset.name}'s inputs of shape "
                                f"{tuple(dataset.input_shape)} ({' '.join(str(exc).split())}). Fix: pick another "
                                "--model (mlp takes any input)") from None
