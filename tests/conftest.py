from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import settings

from expunge.api import prepare
from expunge.data.datasets import Dataset, load_dataset
from expunge.protocols.pipeline import Prepared
from expunge.record import RunRecord
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe

# Tests use tiny models: one intra-op thread is as fast and does not oversubscribe the 2 cores when several pytest
# processes (or a benchmark) run at once.
torch.set_num_threads(1)

# Property tests draw the same examples on every run: CI is red only when the code changed, never because a new
# draw landed in a statistical tail (tests may still override max_examples etc.; they inherit this profile).
settings.register_profile("expunge", derandomize=True, database=None)
settings.load_profile("expunge")

FAST = TrainRecipe(epochs=10, batch_size=64, optimizer="adam", lr=2e-3)


@pytest.fixture(scope="session")
def make_record() -> Callable[..., RunRecord]:
    """A RunRecord with placeholder identity fields and the given ones (objective and report tests)."""

    def make(**fields: Any) -> RunRecord:
        base: dict[str, Any] = {"method": "finetune", "params": {}, "task": "classification", "dataset": "digits",
                                "dataset_fingerprint": "fp", "model": "mlp", "forget": "random:0.1", "request": {},
                                "seed": 0, "metrics": {}, "original": {}, "retrain": {}, "gap_to_retrain": {}}
        return RunRecord(**{**base, **fields})

    return make


@pytest.fixture(scope="session")
def fast_recipe() -> TrainRecipe:
    return FAST


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load_dataset("digits")


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "store")


@pytest.fixture(scope="session")
def session_store(tmp_path_factory: pytest.TempPathFactory) -> ArtifactStore:
    return ArtifactStore(tmp_path_factory.mktemp("session-store"))


@pytest.fixture(scope="session")
def prepared_class3(session_store: ArtifactStore) -> Prepared:
    """digits / mlp, forget class 3, a short recipe: shared by method and metric tests."""
    return prepare("digits", "mlp", "class:3", seed=0, store=session_store, recipe=FAST, progress=False)


# A tiny federation (digits-fed-iid: 10 clients of ~135 images, mlp_small): 5 FedAvg rounds, ~1 s
FED_FAST = TrainRecipe(epochs=5, batch_size=32, optimizer="adam", lr=1e-2)


@pytest.fixture(scope="session")
def prepared_federated(session_store: ArtifactStore) -> Prepared:
    """digits-fed-iid / mlp_small, forget one client (owners:1): for methods of the federated task."""
    return prepare("digits-fed-iid", "mlp_small", "owners:1", seed=0, store=session_store, recipe=FED_FAST,
                   progress=False)


@pytest.fixture(scope="session")
def tiny_graph() -> Dataset:
    """A 3-class stochastic block model of 90 nodes (graph task): method and metric tests of the graph setting."""
    from expunge.data.graphs import sbm_dataset

    return sbm_dataset("tiny-sbm", sizes=(30, 30, 30), p_in=0.15, p_out=0.01, n_features=8, signal=0.6, seed=3)


GRAPH_FAST = TrainRecipe(epochs=60, batch_size=32, optimizer="adam", lr=1e-2)


@pytest.fixture(scope="session")
def prepared_graph(session_store: ArtifactStore, tiny_graph: Dataset) -> Prepared:
    """tiny_graph / gcn, forget class 0: for methods that support only the graph task."""
    return prepare(tiny_graph, "gcn", "class:0", seed=0, store=session_store, recipe=GRAPH_FAST, progress=False)


@pytest.fixture(scope="session")
def prepared_random(session_store: ArtifactStore) -> Prepared:
    return prepare("digits", "mlp", "random:0.1", seed=0, store=session_store, recipe=FAST, progress=False)


@pytest.fixture(scope="session")
def prepared_recsys(session_store: ArtifactStore) -> Prepared:
    """recsys-synth / mf, forget 3 users, a short recipe: the contract suites' request for recsys-only plug-ins."""
    return prepare("recsys-synth", "mf", "owners:3", seed=0, store=session_store, recipe=FAST, progress=False)


@pytest.fixture(scope="session")
def prepared_regression(session_store: ArtifactStore) -> Prepared:
    """diabetes / mlp, forget random:0.1 (≈ 1 s of training): the contract suites' request for regression-only
    plug-ins."""
    return prepare("diabetes", "mlp", "random:0.1", seed=0, store=session_store, progress=False)


# facts-tiny (12 people, 106 rows) on a one-block gpt_tiny: 8 epochs ≈ 2 s; the facts are half learned (enough for
# methods and metrics to have something to move, not a memorisation test)
LLM_FAST = TrainRecipe(epochs=8, batch_size=16, optimizer="adamw", lr=5e-3)


@pytest.fixture(scope="session")
def prepared_llm(session_store: ArtifactStore) -> Prepared:
    """facts-tiny / a one-block gpt_tiny, forget 2 people (owners:2): the contract suites' request for llm-only
    plug-ins."""
    from expunge.models import ModelSpec

    ds = load_dataset("facts-tiny")
    spec = ModelSpec("gpt_tiny", ds.input_shape, ds.num_outputs, {"n_layer": 1, "n_embd": 32, "n_head": 2})
    return prepare(ds, spec, "owners:2", seed=0, store=session_store, recipe=LLM_FAST, progress=False)


# The prepared request the contract suites run a plug-in on, by the first task it supports (classification first).
PREPARED_FOR_TASK = {"classification": "prepared_class3", "recsys": "prepared_recsys",
                     "regression": "prepared_regression", "graph": "prepared_graph", "federated": "prepared_federated",
                     "llm": "prepared_llm"}


@pytest.fixture
def prepared_for(request: pytest.FixtureRequest) -> Callable[[frozenset[str]], Prepared]:
    """The contract suites' prepared request for a plug-in declaring ``tasks`` (digits class:3 when it supports
    classification)."""

    def get(tasks: frozenset[str]) -> Prepared:
        task = "classification" if "classification" in tasks else sorted(tasks & PREPARED_FOR_TASK.keys())[0]
        return request.getfixturevalue(PREPARED_FOR_TASK[task])

    return get
