"""Views 4 and 5: layer-wise linear CKA (a model against itself is 1 at every layer; the Gram form equals the
metric's feature form), the stratified sample, and the embeddings' and examples' payloads."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from expunge.dashboard.representations import cka_from_grams, layer_grams, layers, stratified_sample
from expunge.metrics.functional.representation import linear_cka


def first(client: Any, method: str) -> int:
    return next(r["id"] for r in client.get("/api/runs").json()["rows"]
                if r["method"] == method and r["request"] == "class:3")


def test_gram_cka_is_the_metrics_linear_cka() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 7)), rng.normal(size=(40, 300))
    y[:, :7] += 3 * x
    xc, yc = x - x.mean(0), y - y.mean(0)
    assert cka_from_grams(xc @ xc.T, yc @ yc.T) == pytest.approx(linear_cka(x, y))


def test_layer_grams_hook_every_parametrised_module() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    grams = layer_grams(net, torch.randn(5, 4))
    assert [n for n, _ in layers(net)] == list(grams) == ["1", "3"]
    assert all(g.shape == (5, 5) and np.allclose(g, g.T) for g in grams.values())
    assert net.training  # the caller's mode is restored


def test_the_sample_is_class_stratified(digits: Any) -> None:
    from expunge.data.request import ForgetRequest, Splits

    splits = Splits.from_ids(digits, np.asarray(digits.train.ids[:300]), request=ForgetRequest("ids", ids=(0,)))
    sample = stratified_sample(digits, splits, per_group=50)
    assert {g: len(v) for g, v in sample.items()} == {"forget": 50, "retain": 50, "test": 50}
    counts = np.bincount(digits.train.y.numpy()[sample["retain"]], minlength=10)
    assert counts.max() - counts.min() <= 1
    assert set(sample["forget"]) <= set(splits.forget.tolist())
    assert stratified_sample(digits, splits, per_group=50)["test"].tolist() == sample["test"].tolist()


def test_cka_of_a_model_against_itself_is_one(client: Any) -> None:
    run = first(client, "finetune")
    d = client.get("/api/cka", params={"a": f"{run}:retrain", "b": str(run)}).json()
    own = [p for p in d["pairs"] if p["model"] == "A" and p["reference"] == "Retrain"]
    assert {p["group"] for p in own} == {"forget", "retain"}
    assert all(v == pytest.approx(1.0) for p in own for v in p["cka"])
    assert own[0]["layers"] == ["body.1", "body.3", "head"]
    other = [p for p in d["pairs"] if p["model"] == "B" and p["reference"] == "Original"]
    assert all(0 <= v <= 1 for p in other for v in p["cka"])


def test_embeddings_and_examples(client: Any) -> None:
    a, b = first(client, "finetune"), first(client, "neggrad_plus")
    d = client.get("/api/embeddings", params={"a": str(a), "b": str(b)}).json()
    n = len(d["group"])
    assert d["group"].count("forget") == 137 and d["group"].count("test") == 200 and d["group"].count("retain") == 200
    assert all(len(d["models"][k]["x"]) == len(d["models"][k]["prediction"]) == n for k in "AB")
    ex = client.get("/api/example", params={"a": str(a), "b": str(b), "group": "forget", "index": 0}).json()
    assert ex["label"] == "3" and len(ex["image"]["pixels"]) == 64 and {"A", "B"} <= set(ex)
    bad = client.get("/api/example", params={"a": str(a), "b": str(b), "group": "forget", "index": 500})
    assert bad.status_code == 400 and "no example 500" in bad.json()["error"]
    assert client.get("/api/embeddings", params={"a": str(a), "b": str(b), "method": "mds"}).status_code == 400


def test_umap_is_offered_where_umap_learn_is_installed(client: Any) -> None:
    """The dashboard extra installs umap-learn: UMAP projects both models, the same way twice (seeded)."""
    pytest.importorskip("umap")
    from expunge.dashboard.representations import project, projections

    assert "umap" in projections()
    f = np.random.default_rng(0).normal(size=(60, 8))
    e = project(f, "umap")
    assert e.shape == (60, 2) and np.array_equal(e, project(f, "umap"))
    a, b = first(client, "finetune"), first(client, "neggrad_plus")
    d = client.get("/api/embeddings", params={"a": str(a), "b": str(b), "method": "umap"})
    assert d.status_code == 200 and d.json()["method"] == "umap"
