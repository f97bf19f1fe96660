"""Grid config validation: each bad config is a BenchConfigError naming the key or value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from expunge.errors import ExpungeError
from expunge.harness.config import BenchConfigError, load_config, parse_config
from expunge.harness.grid import expand

GOOD: dict[str, Any] = {"datasets": ["digits"], "models": ["mlp"], "requests": [{"forget": "class:3"}],
                        "methods": ["finetune"], "seeds": [0]}


def with_(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


BAD = [
    pytest.param(with_(seed=[0]), ["unknown key 'seed'", "Did you mean 'seeds'", "Allowed keys: name, datasets"],
                 id="unknown-top-key"),
    pytest.param({k: v for k, v in GOOD.items() if k != "methods"}, ["methods", "Field required"], id="missing-key"),
    pytest.param(with_(methods=["finetun"]), ["methods[0].name", "unknown method 'finetun'",
                                               "Did you mean 'finetune'"], id="unknown-method"),
    pytest.param(with_(methods=[{"name": "ssd", "parms": {}}]), ["methods[0]", "unknown key 'parms'",
                                                                 "Allowed keys: name, label, preset"],
                 id="unknown-method-key"),
    pytest.param(with_(methods=[{"name": "ssd", "preset": "digits/mlp/full-class", "paper_defaults": True}]),
                 ["methods[0]", "not both"], id="preset-and-paper-defaults"),
    pytest.param(with_(methods=["ssd", "ssd"]), ["duplicate method labels: ssd", "label"], id="duplicate-method"),
    pytest.param(with_(datasets=["digit"]), ["datasets", "unknown dataset 'digit'", "'digits'"],
                 id="unknown-dataset"),
    pytest.param(with_(models=["mlpp"]), ["models", "unknown model 'mlpp'", "'mlp'"], id="unknown-model"),
    pytest.param(with_(metrics=["forget_ac"]), ["metrics", "unknown metric 'forget_ac'", "'forget_acc'"],
                 id="unknown-metric"),
    pytest.param(with_(requests=[{"scenario": "sequental"}]), ["requests[0].scenario", "'sequential'"],
                 id="unknown-scenario"),
    pytest.param(with_(requests=[{"forget": "clas:3"}]), ["requests[0].forget", "unknown forget kind 'clas'"],
                 id="bad-forget-spec"),
    pytest.param(with_(requests=[{}]), ["requests[0]", "exactly one of 'forget'"], id="empty-request"),
    pytest.param(with_(requests=[{"forget": "class:3", "params": {"k": 2}}]), ["requests[0]", "scenario"],
                 id="params-on-forget-spec"),
    pytest.param(with_(recipe={"optimizer": "rmsprop"}), ["recipe.optimizer", "'adam', 'sgd' or 'adamw'",
                                                          "got 'rmsprop'"], id="bad-optimizer"),
    pytest.param(with_(recipe={"epoch": 3}), ["recipe", "unknown key 'epoch'", "Did you mean 'epochs'"],
                 id="unknown-recipe-key"),
    pytest.param(with_(recipe={"epochs": 0}), ["recipe.epochs", "greater than or equal to 1", "got 0"],
                 id="zero-epochs"),
    pytest.param(with_(tier=5), ["tier", "less than or equal to 2", "got 5"], id="bad-tier"),
    pytest.param(with_(seeds=[0, 0]), ["seeds", "duplicate seeds: 0"], id="duplicate-seed"),
    pytest.param(with_(seeds=[-1]), ["seeds", "out of range"], id="negative-seed"),
    pytest.param(with_(seeds=[]), ["seeds", "at least 1"], id="no-seed"),
    pytest.param(with_(methods="ssd"), ["methods", "valid list"], id="methods-not-a-list"),
    pytest.param(with_(methods=[{"name": "ssd", "requests": ["class:4"]}]),
                 ["methods[0] (ssd).requests", "no request is labelled 'class:4'", "Did you mean 'class:3'",
                  "Request labels: class:3"], id="method-on-unknown-request"),
    pytest.param(with_(requests=[{"forget": "class:3", "name": "a"}, {"forget": "class:4", "name": "a"}]),
                 ["duplicate requests: a"], id="duplicate-request-name"),
    pytest.param(with_(requests=[{"forget": "class:3"}, {"forget": "class:4"}],
                       methods=[{"name": "ssd", "requests": ["class:3", "class:4"]},
                                {"name": "ssd", "params": {"alpha": 5}, "requests": ["class:4"]}]),
                 ["duplicate method labels: ssd", "disjoint 'requests'"], id="same-label-on-one-request"),
    pytest.param(with_(tier2={"shadows": 7}), ["tier2.shadows", "must be even"], id="odd-shadows"),
    pytest.param(with_(tier2={"models": 1}), ["tier2.models", "greater than or equal to 2", "got 1"],
                 id="one-model"),
    pytest.param(with_(tier2={"shadow": 8}), ["tier2", "unknown key 'shadow'", "Did you mean 'shadows'"],
                 id="unknown-tier2-key"),
    pytest.param(with_(tier2={"shadows": 8}, requests=[{"scenario": "sequential"}]),
                 ["tier2 options apply to forget requests"], id="tier2-with-scenario"),
]


@pytest.mark.parametrize(("doc", "fragments"), BAD)
def test_bad_config_names_key_and_allowed_values(doc: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(BenchConfigError) as info:
        parse_config(doc, "grid.yaml")
    msg = str(info.value)
    assert msg.startswith("grid.yaml: ")
    for fragment in fragments:
        assert fragment in msg, msg


BAD_COMBINATIONS = [  # valid names, but wrong together: found when the grid is expanded, before any training
    pytest.param(with_(methods=[{"name": "ssd", "params": {"alpha": -1}}]), ["methods[0] (ssd)", "alpha"],
                 id="bad-param-value"),
    pytest.param(with_(methods=[{"name": "ssd", "params": {"alphaa": 1}}]), ["methods[0] (ssd)", "alphaa",
                                                                            "Did you mean alpha"],
                 id="unknown-param"),
    pytest.param(with_(methods=[{"name": "ssd", "preset": "nowhere/mlp/full-class"}]), ["methods[0] (ssd)",
                                                                                         "nowhere"],
                 id="unknown-preset"),
    pytest.param(with_(requests=[{"forget": "class:30"}]), ["requests[0] (class:30) on digits", "30"],
                 id="class-not-in-dataset"),
    pytest.param(with_(requests=[{"scenario": "sequential", "params": {"kk": 2}}]), ["requests[0]", "kk"],
                 id="unknown-scenario-param"),
]


@pytest.mark.parametrize(("doc", "fragments"), BAD_COMBINATIONS)
def test_bad_combination_is_found_when_expanding(doc: dict[str, Any], fragments: list[str]) -> None:
    config = parse_config(doc)
    with pytest.raises(BenchConfigError) as info:
        expand(config)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_method_shorthand_and_full_form_are_the_same() -> None:
    short = parse_config(with_(methods=["ssd"]))
    full = parse_config(with_(methods=[{"name": "ssd"}]))
    assert short == full
    assert [c.key for c in expand(short)] == [c.key for c in expand(full)]


@pytest.mark.parametrize(("text", "fragment"), [
    ("datasets: [digits\n", "not valid YAML"),
    ("- digits\n", "a grid config is a YAML mapping"),
    ("", "a grid config is a YAML mapping"),
    ("!!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),  # safe_load: no object construction
])
def test_unreadable_yaml_is_a_config_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(text)
    with pytest.raises(BenchConfigError, match=fragment):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(BenchConfigError, match="cannot read the grid config"):
        load_config(tmp_path / "absent.yaml")


def test_shipped_digits_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "configs" / "digits.yaml")
    cells = expand(config)
    assert len(cells) == 16  # 1 dataset × 1 model × 2 requests × 2 seeds × 4 methods
    assert issubclass(BenchConfigError, ExpungeError)


def test_tier2_sizes_reach_the_cells_and_their_keys() -> None:
    """The per-example config's K and N reach every cell's evaluation extras and key (another K is another cell);
    a config without tier2 keeps its keys and passes no extras."""
    config = load_config(Path(__file__).parents[2] / "configs" / "digits-per-example.yaml")
    cells = expand(config)
    assert len(cells) == 12 and {c.method for c in cells} >= {"retrain", "finetune"}
    assert all(c.extras == {"tier2": {"shadows": 8, "models": 8}} for c in cells)
    assert {"ulira_auc", "klom_p95_forget"} <= set(cells[0].metrics or ())
    other = expand(parse_config({**config.model_dump(), "tier2": {"shadows": 4, "models": 4}}))
    assert not {c.key for c in cells} & {c.key for c in other}
    plain = expand(parse_config(GOOD))
    assert plain[0].extras == {} and "extras" not in plain[0].key_parts
