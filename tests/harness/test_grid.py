"""Cell keys: stable, and a change touches exactly the cells it determines."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from expunge.harness.config import parse_config
from expunge.harness.grid import Cell, cell_key, expand, settings

BASE: dict[str, Any] = {
    "datasets": ["digits"], "models": ["mlp"],
    "requests": [{"forget": "class:3"}, {"forget": "random:0.1"}, {"scenario": "sequential", "params": {"k": 2}}],
    "methods": ["finetune", {"name": "ssd", "params": {"alpha": 10}}, {"name": "neggrad", "paper_defaults": True}],
    "seeds": [0, 1],
}


def keys(doc: dict[str, Any]) -> dict[tuple[str, int, str], str]:
    return {(c.request_label, c.seed, c.label): c.key for c in expand(parse_config(doc))}


def test_grid_is_the_full_product_with_distinct_keys() -> None:
    cells = expand(parse_config(BASE))
    assert len(cells) == 3 * 2 * 3
    assert len({c.key for c in cells}) == len(cells)
    assert {c.method for c in cells} == {"finetune", "ssd", "neggrad"}


def test_keys_are_stable_across_processes() -> None:
    """The key is a content hash (sorted-key JSON), not Python's per-process salted hash: a resumed grid in a new
    process finds its cells."""
    code = ("from expunge.harness.config import parse_config; from expunge.harness.grid import expand; "
            f"print(' '.join(c.key for c in expand(parse_config({BASE!r}))))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert other == [c.key for c in expand(parse_config(BASE))]


def test_changing_one_methods_param_changes_only_its_cells() -> None:
    before = keys(BASE)
    changed = {**BASE, "methods": ["finetune", {"name": "ssd", "params": {"alpha": 20}},
                                   {"name": "neggrad", "paper_defaults": True}]}
    after = keys(changed)
    assert before.keys() == after.keys()
    moved = {k for k in before if before[k] != after[k]}
    assert moved == {k for k in before if k[2] == "ssd"}
    assert len(moved) == 6


def test_label_is_display_only() -> None:
    relabelled = {**BASE, "methods": ["finetune", {"name": "ssd", "params": {"alpha": 10}, "label": "ssd a10"},
                                      {"name": "neggrad", "paper_defaults": True}]}
    assert sorted(keys(BASE).values()) == sorted(keys(relabelled).values())


def test_adding_a_seed_keeps_existing_keys() -> None:
    more = keys({**BASE, "seeds": [0, 1, 2]})
    assert set(keys(BASE).values()) < set(more.values())


def test_param_equal_to_the_default_is_the_same_cell() -> None:
    """Keys hash the resolved hyperparameters, so spelling out a default value does not recompute anything."""
    from expunge.methods.base import METHODS

    default_lr = METHODS.get("finetune").Params().to_dict()["lr"]
    implicit = keys({**BASE, "methods": [{"name": "finetune", "paper_defaults": True}]})
    explicit = keys({**BASE, "methods": [{"name": "finetune", "paper_defaults": True, "params": {"lr": default_lr}}]})
    assert implicit == explicit


def test_recipe_scenario_and_metric_changes_reach_the_key() -> None:
    base = keys(BASE)
    assert set(keys({**BASE, "recipe": {"epochs": 3}}).values()).isdisjoint(base.values())
    assert set(keys({**BASE, "tier": 1}).values()).isdisjoint(base.values())
    seq3 = keys({**BASE, "requests": [*BASE["requests"][:2], {"scenario": "sequential", "params": {"k": 3}}]})
    same = {k for k in base if k in seq3 and base[k] == seq3[k]}
    assert same == {k for k in base if not k[0].startswith("sequential")}


def test_key_hashes_every_part() -> None:
    cell: Cell = expand(parse_config(BASE))[0]
    assert cell.key == cell_key(cell.key_parts)
    assert set(cell.key_parts) >= {"dataset", "model", "recipe", "request", "seed", "method", "params", "tier",
                                   "metrics", "expunge"}


def test_settings_group_cells_sharing_an_original() -> None:
    cells = expand(parse_config(BASE))
    groups = list(settings(cells))
    assert [len(g) for g in groups] == [9, 9]  # one Original per seed: 3 requests × 3 methods each
    assert all(len({c.seed for c in g}) == 1 for g in groups)


def test_a_method_restricted_to_some_requests_runs_only_there() -> None:
    # a tuned row beside the paper-default row of the same method, only on the requests it was tuned for
    doc = {**BASE, "methods": [{"name": "ssd", "paper_defaults": True},
                               {"name": "ssd", "label": "ssd [tuned]", "requests": ["class:3", "random:0.1"]}]}
    cells = expand(parse_config(doc))
    assert sorted({c.request_label for c in cells if c.label == "ssd [tuned]"}) == ["class:3", "random:0.1"]
    assert len([c for c in cells if c.label == "ssd"]) == 3 * 2


def test_request_name_is_display_only() -> None:
    named = {**BASE, "requests": [{"forget": "class:3", "name": "full-class"}, *BASE["requests"][1:]]}
    assert {k[1:]: v for k, v in keys(named).items() if k[0] == "full-class"} == \
        {k[1:]: v for k, v in keys(BASE).items() if k[0] == "class:3"}


def test_one_label_with_per_request_params_on_disjoint_requests() -> None:
    doc = {**BASE, "methods": [{"name": "ssd", "label": "ssd [tuned]", "requests": ["class:3"]},
                               {"name": "ssd", "label": "ssd [tuned]", "params": {"alpha": 5},
                                "requests": ["random:0.1"]}]}
    cells = {(c.request_label, c.seed): c for c in expand(parse_config(doc))}
    assert cells["random:0.1", 0].params["alpha"] == 5 and cells["class:3", 0].params["alpha"] != 5
    assert len(cells) == 2 * 2
