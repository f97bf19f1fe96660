"""The public API: `import expunge` is light; prepare → unlearn → evaluate on a registered dataset and on one's own
model and arrays; presets by default with their source recorded; a model unlearned elsewhere scored side by side."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from torch import nn

import expunge
from expunge.errors import InvalidForgetRequest, UnknownIds
from expunge.protocols.pipeline import Prepared
from expunge.record import RunRecord
from expunge.store import ArtifactStore

TINY = expunge.TrainRecipe(epochs=15, batch_size=32, optimizer="adam", lr=3e-3)


def test_import_is_light_and_exports_the_api():
    code = "import sys, expunge; print(int('torch' in sys.modules)); print(','.join(expunge.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "0", "importing expunge must not import torch (the API loads lazily)"
    assert {"prepare", "unlearn", "evaluate", "list_methods", "list_metrics", "list_scenarios",
            "RunRecord"} <= set(out[1].split(","))
    for name in expunge.__all__:
        assert getattr(expunge, name) is not None and (name == "__version__" or getattr(expunge, name).__doc__)


def test_listings_come_from_the_registries():
    assert {"ssd", "finetune", "retrain"} <= {m["name"] for m in expunge.list_methods()}
    assert {"forget_acc", "mia_loss_auc"} <= {m["name"] for m in expunge.list_metrics(tier=0)}
    assert {"full-class", "sequential"} <= {s["name"] for s in expunge.list_scenarios()}


@pytest.fixture(scope="module")
def own(tmp_path_factory) -> tuple[Prepared, np.ndarray]:
    """A user's arrays and model factory: two Gaussian blobs, an MLP of the user's own."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    x = (rng.normal(size=(300, 8)) + 1.5 * y[:, None]).astype(np.float32)
    data = expunge.from_arrays("blobs", x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:],
                               class_names=("a", "b"))

    class Net(nn.Module):
        def __init__(self, num_classes: int) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, num_classes))

        def forward(self, x):
            return self.body(x)

    forget = data.train.ids[:12]
    store = ArtifactStore(tmp_path_factory.mktemp("own"))
    return expunge.prepare(data, Net, forget, recipe=TINY, store=store, progress=False), forget


def test_own_model_and_data_forget_these_ids(own):
    prep, forget = own
    assert np.array_equal(prep.splits.forget_ids, np.sort(forget))
    assert prep.spec.name.startswith("user:") and "architecture" in prep.spec.kwargs
    record, model = expunge.unlearn(prep, "finetune", {"epochs": 2})
    assert isinstance(record, RunRecord) and isinstance(model, nn.Module)
    assert record.params_source == "user" or record.params_source.startswith("paper defaults")
    assert record.params["epochs"] == 2 and record.forget.startswith("ids:12@")
    assert set(record.metrics) >= {"forget_acc", "test_acc", "mia_loss_auc"}
    exact, _ = expunge.unlearn(prep, "retrain", {"same_seeds_as_oracle": True}, save=False)
    assert exact.gap_to_retrain["forget_acc"] == 0.0 and exact.gap_to_retrain["test_acc"] == 0.0


def test_a_model_unlearned_elsewhere_is_scored_side_by_side(own):
    prep, _ = own
    rec = expunge.evaluate(prep, prep.oracle.model)  # "my method" happens to return the oracle
    assert rec.method == "external" and rec.gap_to_retrain["forget_acc"] == 0.0
    nothing = expunge.evaluate(prep, prep.original.model)
    assert nothing.metrics["forget_acc"] == nothing.original["forget_acc"]


def test_a_trained_original_is_adopted_and_a_stored_run_re_evaluated(own, tmp_path):
    prep, forget = own
    store = ArtifactStore(tmp_path / "s")
    factory = type(prep.original.model)
    adopted = expunge.prepare(prep.dataset, factory, forget, recipe=TINY, store=store, original=prep.original.model,
                              progress=False)
    assert adopted.original.manifest["user_supplied"] is True and adopted.original.train_time_s is None
    rec, _ = expunge.unlearn(adopted, "finetune", {"epochs": 1})
    again = expunge.evaluate(rec, store=store, metrics=["forget_acc"], dataset=prep.dataset)  # not registered
    assert again.metrics["forget_acc"] == pytest.approx(rec.metrics["forget_acc"], abs=1e-12)


def test_presets_are_the_default_and_the_source_is_recorded(prepared_class3):
    tuned, _ = expunge.unlearn(prepared_class3, "ssd", save=False)
    paper, _ = expunge.unlearn(prepared_class3, "ssd", paper_defaults=True, save=False)
    assert tuned.params_source == "preset digits/mlp/full-class" and paper.params_source == "paper defaults"
    assert paper.params["alpha"] == 10.0  # (this preset's tuning kept ssd's defaults: no trial beat them)
    over, _ = expunge.unlearn(prepared_class3, "ssd", {"lam": 0.5}, save=False)
    assert over.params["lam"] == 0.5 and over.params_source == "preset digits/mlp/full-class + lam=0.5"


def test_bad_requests_fail_before_anything_is_trained(tmp_path):
    store = ArtifactStore(tmp_path / "s")
    with pytest.raises(UnknownIds, match="99999"):
        expunge.prepare("digits", "mlp", [1, 99999], store=store, progress=False)
    with pytest.raises(InvalidForgetRequest):
        expunge.prepare("digits", "mlp", "class:42", store=store, progress=False)
    assert not any(store.root.rglob("*.safetensors")) if store.root.exists() else True
