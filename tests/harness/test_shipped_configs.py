"""The shipped grid configs (configs/*.yaml) expand — names, scenario parameters, presets and overrides resolve —
without training anything, into the grids the retired benchmark scripts ran (method_zoo.py, foundation.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from expunge.data.datasets import FASHION_DEFAULT_DIR
from expunge.harness.config import load_config
from expunge.harness.grid import Cell, expand

CONFIGS = Path(__file__).parents[2] / "configs"
needs_fashion = pytest.mark.skipif(not Path(FASHION_DEFAULT_DIR).is_dir(),
                                   reason=f"Fashion-MNIST is not installed at {FASHION_DEFAULT_DIR}")


def cells_of(name: str) -> list[Cell]:
    return expand(load_config(CONFIGS / f"{name}.yaml"))


def per_request(cells: list[Cell]) -> dict[str, int]:
    return dict(Counter(c.request_label for c in cells if c.seed == 0))


def test_every_shipped_config_is_listed_here() -> None:
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == {"digits", "digits-per-example", "digits-random-forgetting",
                                                          "digits-zoo", "fashion-zoo", "fashion-random-forgetting",
                                                          "fashion-random-forgetting-epsilon", "foundation", "graph",
                                                          "recsys", "regression", "federated", "llm", "llm-audits",
                                                          "continual"}


def test_digits_random_forgetting_runs_the_new_families_with_the_per_example_criteria() -> None:
    cells = cells_of("digits-random-forgetting")
    assert per_request(cells) == {"random:0.1": 10, "owners:20": 10}
    by = {(c.request_label, c.label): c for c in cells if c.seed == 0}
    assert by["random:0.1", "reset_finetune:shrink,epochs=3"].params["damage"] == "shrink"
    assert by["owners:20", "dmm:multiplier=30"].params["multiplier"] == 30
    assert {"ulira_auc", "klom_p95_forget"} <= set(by["random:0.1", "dmm"].metrics)


def test_fashion_random_forgetting_is_issue_28s_setting_on_the_foundation_original() -> None:
    cells = cells_of("fashion-random-forgetting")
    assert per_request(cells) == {"random-10%": 9, "owners-100": 9}
    assert {c.seed for c in cells} == {0, 1, 2} and {(c.dataset, c.model) for c in cells} == {("fashion-mnist", "cnn")}
    by = {(c.request_label, c.label): c for c in cells if c.seed == 0}
    assert by["owners-100", "reset_finetune:shrink"].params["damage"] == "shrink"
    assert by["random-10%", "oracle_matching:epochs=10"].params["epochs"] == 10
    # the tuned rows read the random preset (owners falls back to it), tuned with the matching epochs held at 2
    assert by["owners-100", "dmm [tuned]"].params["epochs"] == 2
    assert by["owners-100", "dmm [tuned]"].params["multiplier"] > 30
    # seed 0 is the foundation grid's Original and random-10% oracle: same recipe, same request spec
    foundation = {(c.request_label, c.seed): c for c in cells_of("foundation")}
    assert by["random-10%", "scrub"].request == foundation["random-10%", 0].request
    # the reduced ε-score grid is the same seed-0 cells with N = 4 seeded runs and oracles
    eps = {c.label: c for c in cells_of("fashion-random-forgetting-epsilon")}
    assert {c.seed for c in eps.values()} == {0}
    assert all((c.params, c.request) == (by["random-10%", label].params, by["random-10%", label].request)
               for label, c in eps.items())
    assert eps["scrub"].extras == {"tier2": {"models": 4}}


def test_recsys_is_three_methods_on_five_request_shapes() -> None:
    cells = cells_of("recsys")
    assert per_request(cells) == {"users-10": 3, "core-5%": 3, "edge-5%": 3, "random-5%": 3, "items-2": 3}
    assert {c.seed for c in cells} == {0, 1, 2} and {c.dataset for c in cells} == {"recsys-synth"}
    by = {(c.request_label, c.label): c for c in cells if c.seed == 0}
    assert by["core-5%", "finetune"].params["optimizer"] == "adam"  # the Original's optimiser, not SGD
    assert by["core-5%", "reverse_bpr"].params_source == "paper defaults"


def test_graph_is_the_graph_methods_on_node_and_edge_requests() -> None:
    cells = cells_of("graph")
    assert per_request(cells) == {"random:0.1": 14, "class:0": 14, "edges:0.05": 14}  # 7 rows x gcn, sage
    assert {c.seed for c in cells} == {0, 1, 2} and {c.model for c in cells} == {"gcn", "sage"}
    by = {(c.request_label, c.model, c.label): c for c in cells if c.seed == 0}
    assert by["edges:0.05", "gcn", "distill_to_delete"].params_source == "paper defaults"
    assert by["class:0", "sage", "neggrad adam"].params["optimizer"] == "adam"


def test_digits_zoo_is_every_method_on_five_scenarios() -> None:
    cells = cells_of("digits-zoo")
    # 22 methods; the class-only svd_class and unsir only on full-class (the script stored them as "not applicable")
    assert per_request(cells) == {"full-class": 22, "sub-class": 20, "random": 20, "owners": 20, "sequential": 20}
    assert {c.seed for c in cells} == {0, 1, 2}
    by = {(c.request_label, c.label): c for c in cells if c.seed == 0}
    assert by["sub-class", "ssd"].params_source == "preset digits/mlp/full-class"  # the scenario's preset fallback
    assert by["owners", "ssd"].params_source == "preset digits/mlp/random"
    assert by["full-class", "retrain"].params_source == "paper defaults"


@needs_fashion
def test_fashion_zoo_has_paper_default_and_tuned_rows() -> None:
    cells = cells_of("fashion-zoo")
    assert per_request(cells) == {"full-class": 24, "sub-class": 19, "random": 22, "owners": 24, "sequential": 22}
    by = {(c.request_label, c.label): c for c in cells if c.seed == 0}
    tuned = {k: c for k, c in by.items() if k[1].endswith("[tuned]")}
    assert len(tuned) == 12
    for (req, label), cell in tuned.items():  # a "[tuned]" row never silently runs the paper's defaults
        assert cell.params_source.startswith("preset fashion-mnist/cnn/"), (req, label, cell.params_source)
    assert by["sequential", "bad_teacher [tuned]"].params_source == "preset fashion-mnist/cnn/random"
    # one label, per-request params: the owners preset is cut to 2 epochs, the random one is not
    assert by["owners", "random_label [tuned]"].params_source == "preset fashion-mnist/cnn/owners + epochs=2"
    assert by["random", "random_label [tuned]"].params_source == "preset fashion-mnist/cnn/random"
    assert by["random", "finetune"].params["epochs"] == 2 and by["random", "fisher"].params["fisher_fraction"] == 0.1
    assert by["sequential", "ssd [current I_D]"].params["full_importance"] == "current"
    assert by["full-class", "ssd"].request == {"scenario": "full-class", "params": {"classes": "Sandal"}}


@needs_fashion
def test_foundation_is_six_methods_on_two_requests() -> None:
    cells = cells_of("foundation")
    assert per_request(cells) == {"full-class": 6, "random-10%": 6}
    by = {(c.request_label, c.label): c for c in cells if c.seed == 0}
    assert by["full-class", "ssd:alpha=30"].params["alpha"] == 30
    assert by["random-10%", "neggrad_plus:epochs=2"].params_source == "paper defaults + epochs=2"
    assert len({c.setting for c in cells}) == 3  # one Original per seed, shared by both requests


def test_digits_per_example_carries_its_tier2_sizes() -> None:
    cells = cells_of("digits-per-example")
    assert {c.request_label for c in cells} == {"random:0.1", "owners:20"}
    assert {c.label for c in cells} >= {"retrain", "finetune", "ssd"}
    assert all(c.extras == {"tier2": {"shadows": 8, "models": 8}} for c in cells)  # K = 8 shadows, N = 8 models


def test_regression_is_blindspot_and_baselines_on_two_datasets_with_equal_budgets() -> None:
    cells = cells_of("regression")
    assert {c.dataset for c in cells} == {"diabetes", "synthetic-regression"} and {c.seed for c in cells} == {0, 1, 2}
    assert per_request(cells) == {"random:0.1": 12, "owners:5": 12}  # 6 rows x 2 datasets
    by = {(c.dataset, c.request_label, c.label): c for c in cells if c.seed == 0}
    assert by["diabetes", "owners:5", "blindspot_regression [paper defaults]"].params["epochs"] == 1
    for label in ("blindspot_regression", "gaussian_amnesiac", "finetune", "neggrad"):  # one budget for all
        p = by["diabetes", "random:0.1", label].params
        assert (p["epochs"], p["batch_size"]) == (10, 32), label
    assert all(c.tier == 1 for c in cells)  # relearn_steps and ain


@needs_fashion
def test_federated_is_conda_federaser_and_retrain_on_two_partitions() -> None:
    cells = cells_of("federated")
    assert per_request(cells) == {"backdoor-client": 8, "one-client": 8}  # 4 methods × 2 partitions
    assert {c.seed for c in cells} == {0, 1, 2}
    by = {(c.request_label, c.label): c for c in cells if c.seed == 0}
    assert by["backdoor-client", "conda:round_start"].params["reference"] == "round_start"
    assert by["one-client", "conda"].params_source == "paper defaults"


def test_continual_is_one_stream_with_ckd_the_buffer_baselines_and_retrain() -> None:
    cells = cells_of("continual")
    assert per_request(cells) == {"stream": 5}
    assert {c.seed for c in cells} == {0, 1, 2} and {c.dataset for c in cells} == {"fashion-mnist-cl"}
    by = {c.label: c for c in cells if c.seed == 0}
    assert set(by) == {"ckd", "ckd:kd_weight=0", "finetune", "bad_teacher", "retrain"}
    assert by["ckd:kd_weight=0"].params["kd_weight"] == 0
    assert {"cl_avg_acc", "cl_bwt", "cl_removed_acc"} <= set(by["ckd"].metrics)
