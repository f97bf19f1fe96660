"""Adding a scenario takes one file: this test file defines a toy scenario — its request kind (``tail:N``: the N
highest training ids), its parameters (flags of `expunge scenario`), its preset fallback and a derived dataset (a
noisy copy) that `expunge evaluate` rebuilds — registers it, and uses it through the registries, the API and the CLI
without touching any other file."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from expunge import api
from expunge._hparams import Hyperparams, hp
from expunge.cli.main import app
from expunge.data.datasets import Dataset, from_arrays, load_dataset
from expunge.data.request import REQUEST_KINDS, ForgetRequest, RequestKind, register_request_kind
from expunge.errors import MalformedForgetSpec
from expunge.evaluation import evaluate_run
from expunge.scenarios.base import SCENARIOS, Setting, SingleRequest, register_scenario
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe

DERIVATION = "toy-noise"


class TailKind(RequestKind):
    """``tail:N``: the N training examples with the highest ids."""

    name, syntax, scenario = "tail", "tail:5", "tail"

    def parse(self, arg: str, written: str) -> ForgetRequest:
        if not arg.isdigit() or int(arg) < 1:
            raise MalformedForgetSpec(f"tail:{arg}: give a positive count, e.g. tail:5")
        return ForgetRequest("tail", n=int(arg))

    def spec(self, request: ForgetRequest) -> str:
        return f"tail:{request.n}"

    def select(self, request: ForgetRequest, dataset: Dataset, rng: np.random.Generator) \
            -> tuple[np.ndarray, tuple[int, ...]]:
        return np.sort(dataset.train.ids)[-request.n:], ()


@dataclass(frozen=True, kw_only=True)
class TailParams(Hyperparams):
    n: int = hp(5, "how many of the highest training ids to forget", low=1)
    noise: float = hp(0.0, "std of Gaussian noise added to a derived copy of the inputs (0: the dataset itself)",
                      low=0.0)


def noisy(clean: Dataset, noise: float) -> Dataset:
    rng = np.random.default_rng(0)
    x = clean.train.x.numpy() + rng.normal(0, noise, clean.train.x.shape).astype(np.float32)
    return from_arrays(f"{clean.name}+noise", x_train=x, y_train=clean.train.fine, x_test=clean.test.x.numpy(),
                       y_test=clean.test.fine, class_names=clean.fine_class_names, train_ids=clean.train.ids,
                       test_ids=clean.test.ids, derivation={"kind": DERIVATION, "clean": clean.name, "noise": noise})


class Tail(SingleRequest[TailParams]):
    """Forget the N training examples with the highest ids (a toy plug-in)."""

    name, Params, request_kind = "tail", TailParams, "tail"
    preset_fallback = "random"
    derivation_kind = DERIVATION

    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        return ForgetRequest("tail", n=self.params.n + (1 if validation else 0))

    def prepare(self, dataset: str | Dataset, model: str, **kwargs: Any) -> Setting:
        ds = load_dataset(dataset) if isinstance(dataset, str) else dataset
        return super().prepare(noisy(ds, self.params.noise) if self.params.noise else ds, model, **kwargs)

    @classmethod
    def rebuild_dataset(cls, derivation: Mapping[str, Any], data_dir: str | None) -> tuple[Dataset, dict[str, Any]]:
        return noisy(load_dataset(derivation["clean"]), float(derivation["noise"])), {}


@pytest.fixture
def plugged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArtifactStore]:
    """The toy scenario registered for one test, then removed again; a store of its own."""
    register_request_kind(TailKind)
    register_scenario(Tail)
    monkeypatch.setenv("EXPUNGE_CACHE", str(tmp_path / "cache"))
    try:
        yield ArtifactStore(tmp_path / "cache")
    finally:
        SCENARIOS.unregister("tail")
        REQUEST_KINDS.unregister("tail")


def cli(*args: str) -> Any:
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_listed_with_its_parameters_request_kind_and_fallback(plugged):
    listed = {d["name"]: d for d in cli("scenarios")}["tail"]
    assert {p["name"] for p in listed["params"]} == {"n", "noise"}
    assert listed["request_kinds"] == ["tail:5"] and listed["preset_fallback"] == "random"
    assert ForgetRequest.parse("tail:7").spec == "tail:7"


def test_its_request_kind_works_in_expunge_unlearn(plugged):
    rec = cli("unlearn", "--model", "mlp", "--forget", "tail:6", "--method", "finetune", "--param", "epochs=1")
    train_ids = load_dataset("digits").train.ids
    assert rec["forget"] == "tail:6" and rec["request"]["n_forget"] == 6
    assert rec["params_source"].startswith("preset digits/mlp/random")  # the fallback's shipped preset
    assert rec["request"]["n_retain"] == len(train_ids) - 6


def test_its_parameters_are_flags_and_its_derived_dataset_is_rebuilt(plugged):
    (rec,) = cli("scenario", "tail", "--n", "4", "--noise", "0.05", "--model", "mlp", "--method", "finetune",
                 "--param", "epochs=1", "--paper-defaults")
    assert rec["scenario"] == "tail" and rec["scenario_params"] == {"n": 4, "noise": 0.05}
    assert rec["dataset"] == "digits+noise" and rec["forget"] == "tail:4"
    again = evaluate_run(rec["unlearned_key"], store=plugged, metrics=["forget_acc", "test_acc"])
    assert again.metrics["forget_acc"] == pytest.approx(rec["metrics"]["forget_acc"], abs=1e-12)
    assert again.dataset_fingerprint == rec["dataset_fingerprint"]  # rebuilt exactly, fingerprint-checked


def test_bad_flag_is_a_one_line_error(plugged):
    res = CliRunner().invoke(app, ["scenario", "tail", "--nn", "4", "--model", "mlp"])
    assert res.exit_code != 0 and "scenario tail has no parameter 'nn'" in str(res.exception or res.output)


def test_the_api_sees_it(plugged):
    assert "tail" in {d["name"] for d in api.list_scenarios()}
    _, source = api.resolve_params("ssd", dataset="digits", model="mlp", scenario="tail")
    assert source == "preset digits/mlp/random"
    sc = SCENARIOS.get("tail")({"n": 3})
    setting = sc.prepare("digits", "mlp", seed=0, store=plugged, recipe=TrainRecipe(epochs=2), progress=False,
                         metrics=("forget_acc",))
    records: Iterable[Any] = sc.run(setting, "finetune", {"epochs": 1}, metrics=("forget_acc",), save=False)
    assert [r.forget for r in records] == ["tail:3"]
