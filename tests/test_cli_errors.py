"""Every bad invocation of ``expunge`` ends in one ``error:`` line on stderr, exit status 2, nothing on stdout and
nothing written — and fails before anything is trained (issue 23, "Clean errors everywhere").

Each row of :data:`CASES` runs the real command line in a subprocess, in a fresh working directory holding the bad
inputs (:func:`make_inputs`) with an empty store, and compares a snapshot of both trees (paths, sizes, mtimes) before
and after. Nothing in the table trains: a row that could only fail after training would be a bug (and would take
minutes, not the second or two each row takes).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

RECORD = {"method": "ssd", "params": {"alpha": 10.0}, "dataset": "digits", "model": "mlp", "forget": "class:3",
          "seed": 0, "metrics": {"forget_acc": 0.1}, "original": {"forget_acc": 1.0}, "retrain": {"forget_acc": 0.0},
          "gap_to_retrain": {"forget_acc": 0.1}, "time_s": 1.0, "retrain_time_s": 10.0, "time_ratio_to_retrain": 0.1}
KEY = "0" * 32  # a well-formed unlearned_key that is in no store
FASHION = {"train-images-idx3-ubyte": (20, 28, 28), "train-labels-idx1-ubyte": (20,),
           "t10k-images-idx3-ubyte": (10, 28, 28), "t10k-labels-idx1-ubyte": (10,)}


def idx_bytes(a: np.ndarray) -> bytes:
    """A uint8 IDX file: magic 0x00 0x00 0x08 ndim, big-endian dims, then the values."""
    return bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def fashion_dir(root: Path, name: str, **broken: bytes) -> None:
    """A Fashion-MNIST folder of tiny valid IDX files (gzipped), with the files named in ``broken`` replaced."""
    folder = root / name
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem, shape in FASHION.items():
        a = rng.integers(0, 10 if len(shape) == 1 else 256, shape)
        data = broken.get(stem, gzip.compress(idx_bytes(a), mtime=0))
        (folder / f"{stem}.gz").write_bytes(data)


def make_inputs(root: Path) -> None:
    """The bad inputs the table names, relative to the working directory ``root``."""
    (root / "afile").write_text("a file, not a folder\n")
    (root / "dangling").symlink_to(root / "nowhere" / "store")
    agg = root / "agg"
    agg.mkdir()
    docs = {"good": RECORD, "number": 5, "nonobject": [RECORD, 3], "emptylist": [],
            "noseed": {k: v for k, v in RECORD.items() if k != "seed"},
            "seedstr": {**RECORD, "seed": "0"}, "metricstr": {**RECORD, "metrics": {"forget_acc": "high"}},
            "metricbool": {**RECORD, "metrics": {"forget_acc": True}},
            "sectionint": {**RECORD, "original": 5}, "timestr": {**RECORD, "time_s": "1 s"},
            "methodnull": {**RECORD, "method": None}}
    for name, doc in docs.items():
        (agg / f"{name}.json").write_text(json.dumps(doc))
    (agg / "empty.json").write_text("\n")
    (agg / "notjson.json").write_text("{not json")
    (agg / "binary.json").write_bytes(b"\xff\xfe\x00\x01")
    images = idx_bytes(np.zeros((20, 28, 28)))
    valid = gzip.compress(images, mtime=0)
    fashion_dir(root, "fm-notgzip", **{"train-images-idx3-ubyte": b"plain bytes, not gzip"})
    fashion_dir(root, "fm-cutgzip", **{"train-images-idx3-ubyte": valid[: len(valid) // 2]})
    fashion_dir(root, "fm-truncated", **{"train-images-idx3-ubyte": gzip.compress(images[:-100])})
    fashion_dir(root, "fm-magic", **{"t10k-labels-idx1-ubyte": gzip.compress(b"\x00\x00\x0d\x01" + bytes(14))})
    fashion_dir(root, "fm-header", **{"train-labels-idx1-ubyte": gzip.compress(b"\x00\x00\x08\x03\x00\x00")})
    fashion_dir(root, "fm-counts", **{"train-labels-idx1-ubyte": gzip.compress(idx_bytes(np.zeros(19)))})
    fashion_dir(root, "fm-labels", **{"t10k-labels-idx1-ubyte": gzip.compress(idx_bytes(np.full(10, 12)))})
    fashion_dir(root, "fm-shape", **{"t10k-images-idx3-ubyte": gzip.compress(idx_bytes(np.zeros((10, 27, 28))))})
    fashion_dir(root, "fm-swapped", **{"train-images-idx3-ubyte": gzip.compress(idx_bytes(np.zeros(20)))})


def case(*args: str, fragment: str, env: dict[str, str] | None = None, id: str) -> object:
    return pytest.param(list(args), fragment, env or {}, id=id)


CASES = [
    # usage errors from the CLI framework (a traceback and exit 1 before the handler matched typer's click copy)
    case("unlearn", "--seed", "abc", fragment="Invalid value for '--seed'", id="seed-not-an-integer"),
    case("unlearn", "--bogus", fragment="No such option: --bogus (see `expunge unlearn --help`)", id="unknown-option"),
    case("unlearn", "--sed", "3", fragment="Possible options: --preset, --seed", id="misspelt-option"),
    case("evaluate", KEY, "--tier", "5", fragment="Invalid value for '--tier'", id="tier-out-of-range"),
    case("bogus", fragment="No such command 'bogus'", id="unknown-command"),
    case("aggregate", fragment="Missing argument", id="missing-argument"),
    case("methods", "--bogus", fragment="No such option", id="methods-unknown-option"),
    case("demo", "--threads", "0", fragment="Invalid value for '--threads'", id="demo-zero-threads"),
    case("tune", "--trials", "0", fragment="Invalid value for '--trials'", id="tune-zero-trials"),
    case("aggregate", "--confidence", "2", "agg/good.json", fragment="'--confidence'", id="confidence-above-1"),
    case("evaluate", KEY, "--shadows", "1", fragment="'--shadows'", id="one-shadow"),
    # seeds NumPy refuses (a traceback after loading the data, or a silent run with a negative seed)
    case("unlearn", "--seed", "-1", fragment="'--seed'", id="negative-seed"),
    case("unlearn", "--seed", str(2**32), fragment="'--seed'", id="seed-too-large"),
    case("train", "--seed", "-3", fragment="'--seed'", id="train-negative-seed"),
    case("scenario", "random", "--seed", "-1", fragment="'--seed'", id="scenario-negative-seed"),
    case("tune", "--seed", str(2**40), fragment="'--seed'", id="tune-huge-seed"),
    # folders that will be written (a traceback when the first result was saved, after training)
    case("unlearn", "--store", "afile", fragment="--store afile is a file, not a folder", id="store-is-a-file"),
    case("train", "--store", "afile/sub", fragment="lies under", id="store-under-a-file"),
    case("train", "--store", "dangling", fragment="broken symbolic link", id="store-dangling-symlink"),
    case("train", fragment="EXPUNGE_CACHE", env={"EXPUNGE_CACHE": "afile"}, id="expunge-cache-is-a-file"),
    case("scenario", "random", "--store", "afile", fragment="is a file", id="scenario-store-is-a-file"),
    case("evaluate", KEY, "--store", "afile", fragment="is a file", id="evaluate-store-is-a-file"),
    case("demo", "--out", "afile", fragment="--out afile is a file", id="demo-out-is-a-file"),
    case("demo", "--out", "afile/results", fragment="lies under", id="demo-out-under-a-file"),
    case("demo", "--store", "afile", fragment="is a file", id="demo-store-is-a-file"),
    case("tune", "--presets-dir", "afile", fragment="--presets-dir afile is a file", id="presets-dir-is-a-file"),
    case("tune", fragment="EXPUNGE_PRESETS", env={"EXPUNGE_PRESETS": "afile"}, id="expunge-presets-is-a-file"),
    # Fashion-MNIST files that are there but unusable
    case("train", "--data", "fashion-mnist", "--data-dir", "fm-notgzip", fragment="cannot be read", id="idx-not-gzip"),
    case("train", "--data", "fashion-mnist", "--data-dir", "fm-cutgzip", fragment="cannot be read",
         id="idx-cut-gzip-stream"),
    case("unlearn", "--data", "fashion-mnist", "--data-dir", "fm-truncated", fragment="is truncated",
         id="idx-truncated"),
    case("unlearn", "--data", "fashion-mnist", "--data-dir", "fm-magic", fragment="bad magic number",
         id="idx-wrong-magic"),
    case("train", "--data", "fashion-mnist", "--data-dir", "fm-header", fragment="ends early", id="idx-cut-header"),
    case("scenario", "random", "--data", "fashion-mnist", "--data-dir", "fm-counts",
         fragment="has 20 images but", id="idx-counts-differ"),
    case("train", "--data", "fashion-mnist", "--data-dir", "fm-labels", fragment="holds label 12",
         id="idx-label-out-of-range"),
    case("train", "--data", "fashion-mnist", "--data-dir", "fm-shape", fragment="not N 28x28 images",
         id="idx-wrong-image-size"),
    case("train", "--data", "fashion-mnist", "--data-dir", "fm-swapped", fragment="not N 28x28 images",
         id="idx-labels-as-images"),
    # aggregate inputs
    case("aggregate", "agg/number.json", fragment="expected a run record (a JSON object) or a list",
         id="aggregate-not-a-record"),
    case("aggregate", "agg/nonobject.json", fragment="record 1 is a number 3", id="aggregate-list-of-non-objects"),
    case("aggregate", "agg/noseed.json", fragment="lacks field(s) seed", id="aggregate-missing-field"),
    case("aggregate", "agg/seedstr.json", fragment="'seed' must be an integer", id="aggregate-seed-a-string"),
    case("aggregate", "agg/methodnull.json", fragment="'method' must be a string", id="aggregate-method-null"),
    case("aggregate", "agg/metricstr.json", fragment="metrics['forget_acc'] must be a number",
         id="aggregate-metric-a-string"),
    case("aggregate", "agg/metricbool.json", fragment="must be a number", id="aggregate-metric-a-boolean"),
    case("aggregate", "agg/sectionint.json", fragment="'original' must be an object", id="aggregate-section-a-number"),
    case("aggregate", "agg/timestr.json", fragment="'time_s' must be a number", id="aggregate-time-a-string"),
    case("aggregate", "agg/empty.json", fragment="is empty", id="aggregate-empty-file"),
    case("aggregate", "agg/notjson.json", fragment="cannot read run records", id="aggregate-not-json"),
    case("aggregate", "agg/binary.json", fragment="cannot read run records", id="aggregate-binary-file"),
    case("aggregate", "agg", fragment="cannot read run records from agg", id="aggregate-a-directory"),
    case("aggregate", "agg/missing.json", fragment="No such file", id="aggregate-missing-file"),
    case("aggregate", "agg/emptylist.json", fragment="no run records", id="aggregate-no-records"),
    case("aggregate", "agg/good.json", "agg/number.json", fragment="agg/number.json",
         id="aggregate-good-then-bad-prints-nothing"),
    # the other commands' inputs that can be checked up front
    case("evaluate", KEY, fragment="no unlearned run", id="evaluate-unknown-key"),
    case("evaluate", KEY, "--metrics", "forget_ac", fragment="Did you mean 'forget_acc'",
         id="evaluate-unknown-metric"),
    case("evaluate", KEY, "--metrics", ",", fragment="names no metric", id="evaluate-empty-metrics"),
    case("evaluate", KEY, "--tier", "2", "--shadows", "3", fragment="must be even", id="evaluate-odd-shadows"),
    case("train", "--data", "diabetes", "--model", "cnn", fragment="cannot take diabetes's inputs",
         id="train-model-does-not-fit"),
    case("unlearn", "--data", "diabetes", "--model", "cnn", "--method", "finetune", "--forget", "random:0.1",
         fragment="cannot take diabetes's inputs", id="unlearn-model-does-not-fit"),
    case("scenario", "random", "--data", "diabetes", "--model", "resnet", fragment="cannot take",
         id="scenario-model-does-not-fit"),
    case("unlearn", "--task", "nope", fragment="unknown task", id="unlearn-unknown-task"),
    case("demo", "--methods", ",", fragment="names no method", id="demo-empty-methods"),
    case("demo", "--methods", "negrad", fragment="Did you mean 'neggrad'", id="demo-unknown-method"),
    case("demo", "--data", "diabetes", "--model", "cnn", fragment="cannot take", id="demo-model-does-not-fit"),
    case("scenario", "nope", fragment="unknown scenario", id="scenario-unknown"),
    case("scenario", "random", "--fraction", "2", fragment="'fraction' parameter", id="scenario-bad-parameter"),
    case("scenario", "random", "--fraction", fragment="needs a value", id="scenario-parameter-without-value"),
    case("scenario", "random", "extra", fragment="unexpected argument 'extra'", id="scenario-extra-argument"),
    case("scenario", "--set", "bad", "random", fragment="--set expects NAME=VALUE", id="scenario-bad-set"),
    case("tune", "--methods", ",", fragment="names no method", id="tune-empty-methods"),
    case("tune", "--fix", "bad", fragment="--fix expects METHOD:NAME=VALUE", id="tune-bad-fix"),
    case("tune", "--methods", "ssd", "--fix", "ssd:nope=1", fragment="no parameter 'nope'",
         id="tune-fix-unknown-parameter"),
    case("tune", "--set", "bad", fragment="--set expects NAME=VALUE", id="tune-bad-set"),
    case("tune", "--model", "cnn", "--data", "diabetes", "--scenario", "random", fragment="cannot take",
         id="tune-model-does-not-fit"),
]


def snapshot(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path under ``root`` (symlinks not followed) with whether it is a folder, its size and its mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


def run_case(args: list[str], env: dict[str, str], root: Path) -> tuple[subprocess.CompletedProcess[str], dict, dict]:
    """Run ``expunge ARGS`` in ``root/work`` (holding the bad inputs) with the empty store ``root/store``; return the
    process and snapshots of ``root`` before and after."""
    work, store = root / "work", root / "store"
    work.mkdir(parents=True)
    store.mkdir()
    make_inputs(work)
    before = snapshot(root)
    base = {k: v for k, v in os.environ.items() if k not in ("EXPUNGE_PRESETS", "EXPUNGE_DATA")}
    out = subprocess.run([sys.executable, "-m", "expunge.cli.main", *args], cwd=work, capture_output=True, text=True,
                         env={**base, "EXPUNGE_CACHE": str(store), "OMP_NUM_THREADS": "1", **env}, timeout=120)
    return out, before, snapshot(root)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.CompletedProcess[str], dict, dict]]:
    """Every row, run concurrently (each in its own folders): the rows are independent processes that mostly import
    torch, so running them side by side divides the table's wall time by the number of cores."""
    root = tmp_path_factory.mktemp("cli-errors")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {c.id: pool.submit(run_case, c.values[0], c.values[2], root / str(c.id)) for c in CASES}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize(("args", "fragment", "env"), CASES)
def test_bad_invocation_is_one_error_line(args: list[str], fragment: str, env: dict[str, str],
                                          request: pytest.FixtureRequest, results: dict):
    out, before, after = results[request.node.callspec.id]
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0][7:].strip(), out.stderr
    assert fragment in lines[0]
    assert out.stdout == ""
    assert after == before  # nothing written, created or touched under the working folder and the store


def test_unwritable_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The table runs as any user (root ignores permission bits), so the not-writable branch is forced here."""
    from expunge.cli import options
    from expunge.errors import InvalidPath

    monkeypatch.setattr(options.os, "access", lambda *a, **k: False)
    with pytest.raises(InvalidPath, match="not writable"):
        options.check_folder(tmp_path / "new" / "store", "--store")
    options.check_folder(tmp_path, "--store", write=False)  # reading a store needs no write permission


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True, "0"])
def test_prepare_refuses_unusable_seeds(seed: object, tmp_path: Path):
    """The public API checks the seed before loading anything (NumPy raised deep inside the request draw)."""
    import expunge
    from expunge.errors import InvalidSeed
    from expunge.store import ArtifactStore

    with pytest.raises(InvalidSeed, match="seeds are integers from 0 to 4294967295"):
        expunge.prepare("digits", "mlp", "random:0.1", seed=seed, store=ArtifactStore(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_click_errors_are_matched_whichever_click_raised_them():
    """typer 0.29 raises its vendored copy (typer._click); older typer raised click's own classes."""
    import typer

    click = pytest.importorskip("click")

    from expunge.cli.main import is_click_error

    vendored = type(typer.BadParameter("x"))
    assert is_click_error(vendored("bad")) and is_click_error(click.UsageError("bad"))
    assert not is_click_error(ValueError("x")) and not is_click_error(typer.Exit(1))


def test_installed_cli_framework_matches_the_pin():
    """typer is 0.x: a minor release changed where click's exceptions live, so pyproject pins the minor."""
    from packaging.requirements import Requirement

    deps = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    (typer_req,) = [Requirement(d) for d in deps if Requirement(d).name == "typer"]
    assert typer_req.specifier.contains(version("typer")), (typer_req, version("typer"))
    assert not typer_req.specifier.contains("0.99"), "pin typer's minor version (0.x)"
