"""Contract suite over every registered metric (the metric twin of test_methods_contract.py): a new metric file gets
these checks for free.

Per metric: metadata and ``describe()``; determinism (two fresh contexts with fresh stores give the same values);
missing inputs give ``MetricValue(None, reason)`` — a missing role, missing run info, another task, a collapsed model
(NaN outputs), a context without the tier-2 providers; degenerate inputs (a one-example forget set, a constant-output
model) give None with a reason or a finite number, never NaN/inf or an exception; retrain-as-method (bit-identical to
the oracle) gives zero gap to the Retrain wherever both values are defined. Metrics defined for the unlearned role
only (``Metric.unlearned_only``: they judge the method's distribution of models against the oracles') have no
Retrain value; with retrain as the method they reach their ``Metric.ideal`` value instead (so do metrics whose Retrain
row is a noise floor of independent retrains, ``Metric.retrain_is_floor``: KLoM; that floor is not below it).

A toy metric registered in this file (:class:`ContractToyMetric`) is picked up by ``evaluate()``, ``expunge metrics
--json`` and every check here: adding a metric takes one file.

Problems are tiny (2-D Gaussian blobs, 3 classes, the MLP, a 15-epoch recipe) and tier-2 metrics run with K = 4
shadows and N = 3 seeded models, so every tier runs in the default suite (≈ 1.5 min for the whole module).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fakes_tier01 import TINY, blobs, regression_blobs
from torch import nn
from typer.testing import CliRunner

from expunge.cli.main import app
from expunge.data.datasets import load_dataset
from expunge.data.interactions import interactions_dataset, synthetic_interactions
from expunge.data.request import ForgetRequest
from expunge.methods.base import RunContext, get_method
from expunge.metrics.base import (
    METRICS,
    ROLES,
    EvalContext,
    Metric,
    MetricValue,
    RunInfo,
    Tier,
    evaluate,
    register_metric,
)
from expunge.metrics.functional.divergence import softmax
from expunge.models import ModelSpec
from expunge.protocols.pipeline import Prepared, eval_context, prepare_splits, run_step
from expunge.protocols.runner import run_method
from expunge.store import ArtifactStore
from expunge.tasks import TASKS, Task, register_task
from expunge.tasks import base as tasks_base
from expunge.train.loop import TrainRecipe

TIER2_SIZES = {"tier2": {"shadows": 4, "models": 3}, "llm_eval_items": 16}  # llm: retain questions generated
PROBLEM_TASKS = ("classification", "regression", "recsys", "graph", "llm")  # the tasks Problems.prep has a problem of
LLM_TINY = TrainRecipe(epochs=8, batch_size=16, optimizer="adamw", lr=5e-3)  # tests/conftest.py's LLM_FAST
METHOD, METHOD_PARAMS = "finetune", {"epochs": 1}  # the method tier-2 pipelines re-run in the generic contexts
RUN_FIELDS = {f.name for f in dataclasses.fields(RunInfo)}
DESCRIBE_KEYS = {"name", "family", "tier", "definition", "direction", "needs", "run_needs", "tasks"}


@register_metric
class ContractToyMetric(Metric):
    """Mean top-1 probability on the forget set: a metric written in a test file, checked like every other."""

    name, family, tier = "contract_toy_forget_confidence", "contract_toy", Tier.CHEAP
    definition = "mean top-1 softmax probability on the forget set (a toy metric of the contract suite)"

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        p = softmax(ctx.logits(role, "forget"))  # NaN outputs raise NonFiniteOutputs: None with the reason
        if len(p) == 0:
            return MetricValue(None, reason="empty forget split")
        return MetricValue(float(p.max(axis=1).mean()))


NAMES = METRICS.names()  # every registered metric, the toy included
METRICS.unregister(ContractToyMetric.name)  # registered again for this module's tests only (fixture below)


@pytest.fixture(scope="module", autouse=True)
def toy_metric() -> Iterator[type[Metric]]:
    register_metric(ContractToyMetric)
    yield ContractToyMetric
    METRICS.unregister(ContractToyMetric.name)


# --- problems and contexts ------------------------------------------------------------------------------------------
def task_of(name: str) -> str:
    """The task a metric is checked on: classification when it supports it, else its first task."""
    tasks = METRICS.get(name).tasks
    return "classification" if "classification" in tasks else sorted(tasks)[0]


def run_info(prep: Prepared, store: ArtifactStore | None = None) -> RunInfo:
    return RunInfo(model_spec=prep.spec, recipe=prep.recipe, store=store or prep.store, method=METHOD,
                   method_params=get_method(METHOD, METHOD_PARAMS).params.to_dict(), original_key=prep.original.key)


def context(prep: Prepared, unlearned_model: nn.Module | None, *, store: ArtifactStore | None = None,
            run: RunInfo | None = None, roles: tuple[str, ...] = ROLES, providers: bool = True,
            dataset: Any = None) -> EvalContext:
    """A fresh context (no cached results) over ``prep``'s request with the given roles and inputs."""
    models = {"unlearned": unlearned_model, "original": prep.original.model, "retrain": prep.oracle.model}
    models = {r: m for r, m in models.items() if r in roles}
    run = run_info(prep, store) if run is None else run
    ds = prep.dataset if dataset is None else dataset
    if providers:
        return eval_context(ds, prep.splits, models, seed=prep.seed, run=run, extras=copy.deepcopy(TIER2_SIZES))
    return EvalContext(ds, prep.splits, models, seed=prep.seed, run=run, extras=copy.deepcopy(TIER2_SIZES))


class Problems:
    """Tiny problems of each task (classification: 2-D Gaussian blobs; regression: a noisy linear function), their
    prepared requests, an unlearned model and the contexts the checks share — each built once, on first use."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp, self._made = tmp, {}

    def _once(self, key: tuple[Any, ...], make: Any) -> Any:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def prep(self, task: str, kind: str = "random") -> Prepared:
        """Original and oracle of a request on ``task``'s problem, with their tier-0/1 values (run_step's gaps);
        ``kind``: "random" (a quarter), "class" (class 1) or "single" (one example, no baseline)."""

        if task not in PROBLEM_TASKS:
            pytest.skip(f"the contract suite has no {task} problem yet")

        def make() -> Prepared:
            if task == "llm":  # facts-tiny (12 people) on a one-block gpt_tiny; "random" forgets 2 people
                ds = load_dataset("facts-tiny")
                spec = ModelSpec("gpt_tiny", ds.input_shape, ds.num_outputs, {"n_layer": 1, "n_embd": 32, "n_head": 2})
                request = ForgetRequest.parse("owners:2") if kind == "random" else \
                    ForgetRequest("ids", ids=(int(ds.train.ids[7]),))
                return prepare_splits(ds, spec, request.resolve(ds, seed=0), store=ArtifactStore(
                    self.tmp.mktemp(f"metric-contract-llm-{kind}")), recipe=LLM_TINY,
                                      metrics=[] if kind == "single" else None, tier=1, progress=False,
                                      extras=TIER2_SIZES)
            if task == "recsys":  # tiny interactions (30 users, 40 items) and a matrix factorisation
                users, items = synthetic_interactions(n_users=30, n_items=40, seed=5)
                ds = interactions_dataset("contract-recsys", users, items, item_names=[str(i) for i in range(40)],
                                          n_users=30)
            elif task == "graph":  # a tiny block model; its "random" request deletes edges (the edge metrics' input)
                from expunge.data.graphs import sbm_dataset

                ds = sbm_dataset("contract-sbm", sizes=(20, 20), p_in=0.2, p_out=0.02, n_features=4, seed=5)
            else:
                ds = blobs(n_per_class_train=30, n_per_class_test=30, spread=1.6, seed=5) \
                    if task == "classification" else regression_blobs(seed=5)
            single = int(ds.train.ids[7])
            request = {"random": ForgetRequest("edges" if task == "graph" else "random", fraction=0.25),
                       "class": ForgetRequest("class", classes=("1",)),
                       "single": ForgetRequest("ids", ids=(single,))}[kind]
            store = ArtifactStore(self.tmp.mktemp(f"metric-contract-{task}-{kind}"))
            model = {"recsys": "mf", "graph": "gcn"}.get(task, "mlp")
            return prepare_splits(ds, model, request.resolve(ds, seed=0), store=store, recipe=TINY,
                                  metrics=[] if kind == "single" else None, tier=1, progress=False,
                                  extras=TIER2_SIZES)

        return self._once(("prep", task, kind), make)

    def unlearned(self, task: str, kind: str = "random") -> nn.Module:
        def make() -> nn.Module:
            prep = self.prep(task, kind)
            ctx = RunContext(seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
            return run_method(get_method(METHOD, METHOD_PARAMS), prep.original.model, prep.dataset, prep.splits, ctx,
                              original_key=prep.original.key).model

        return self._once(("unlearned", task, kind), make)

    def ctx(self, task: str, what: str) -> Any:
        """A shared context (or pair, or dict of contexts) of ``task``'s random request, by purpose."""
        prep, model = self.prep(task), self.unlearned(task)
        makers = {
            "twins": lambda: tuple(context(prep, model, store=ArtifactStore(self.tmp.mktemp(f"determinism-{i}")))
                                   for i in range(2)),
            "without": lambda: {absent: context(prep, model, roles=tuple(r for r in ROLES if r != absent))
                                for absent in ("original", "retrain")} | {
                "alone": context(prep, model, roles=("unlearned",))},
            "no_run": lambda: context(prep, model, run=RunInfo()),
            "collapsed": lambda: context(prep, nan_copy(prep.original.model),
                                         store=ArtifactStore(self.tmp.mktemp("collapsed"))),
            "no_providers": lambda: context(prep, model, providers=False),
            "single": lambda: context(self.prep(task, "single"), self.unlearned(task, "single")),
            "constant": lambda: context(prep, constant_copy(prep.original.model)),
        }
        return self._once(("ctx", task, what), makers[what])


@pytest.fixture(scope="module")
def problems(toy_metric: type[Metric], tmp_path_factory: pytest.TempPathFactory) -> Problems:
    return Problems(tmp_path_factory)


def well_defined(v: MetricValue, where: str) -> None:
    """None with a non-empty reason, or a finite number (and a finite, non-negative standard error if any)."""
    if v.value is None:
        assert isinstance(v.reason, str) and v.reason.strip(), f"{where}: None without a reason"
    else:
        assert isinstance(v.value, float | int) and math.isfinite(v.value), f"{where}: {v.value!r} ({v.reason})"
    if v.se is not None:
        assert math.isfinite(v.se) and v.se >= 0, f"{where}: se {v.se!r}"


def none_with_reason(v: MetricValue, where: str, *fragments: str) -> None:
    assert v.value is None, f"{where}: expected None, got {v.value!r}"
    assert isinstance(v.reason, str) and v.reason.strip(), f"{where}: None without a reason"
    for fragment in fragments:
        assert fragment in v.reason, f"{where}: reason {v.reason!r} lacks {fragment!r}"


def one(ctx: EvalContext, name: str, roles: tuple[str, ...] = ROLES) -> dict[str, MetricValue]:
    return evaluate(ctx, [name], roles=roles)[name]


# --- metadata -------------------------------------------------------------------------------------------------------
def test_every_metric_is_checked_and_the_toy_is_registered():
    assert ContractToyMetric.name in NAMES and ContractToyMetric.name in METRICS.names()
    assert len(NAMES) == len(METRICS.names()) and len(NAMES) >= 60


@pytest.mark.parametrize("name", NAMES)
def test_metadata(name: str):
    cls = METRICS.get(name)
    assert cls.name == name, "registered under its own name"
    assert isinstance(cls.family, str) and cls.family and cls.family == cls.family.strip()
    assert cls.tier in (Tier.CHEAP, Tier.STANDARD, Tier.GOLD) and int(cls.tier) in (0, 1, 2)
    assert isinstance(cls.definition, str) and len(cls.definition.strip()) > 10
    assert cls.higher_is_better in (True, False, None)
    assert isinstance(cls.needs, frozenset) and cls.needs <= set(ROLES)
    assert isinstance(cls.run_needs, tuple) and set(cls.run_needs) <= RUN_FIELDS
    assert cls.tasks and set(cls.tasks) <= set(TASKS.names())
    assert cls.unlearned_only in (True, False) and (cls.ideal is None or math.isfinite(cls.ideal))
    d = cls.describe()
    assert set(d) == DESCRIBE_KEYS
    assert d["name"] == name and d["family"] == cls.family and d["tier"] == int(cls.tier)
    assert d["definition"] == cls.definition
    assert d["direction"] in ("higher is better", "lower is better", "closer to retrain")
    assert d["needs"] == sorted(cls.needs) and d["run_needs"] == list(cls.run_needs)
    assert d["tasks"] == sorted(cls.tasks)
    assert json.loads(json.dumps(d)) == d


# --- determinism ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_same_inputs_give_the_same_values(name: str, problems: Problems):
    """Two fresh contexts over the same models, each with its own empty store: nothing computed by one (relearn runs,
    LiRA references, shadows, seeded models) can reach the other."""
    a, b = (one(ctx, name) for ctx in problems.ctx(task_of(name), "twins"))
    assert set(a) == set(b) == set(ROLES)
    for role in ROLES:
        well_defined(a[role], f"{name}/{role}")
        assert a[role].value == b[role].value, f"{name}/{role}: {a[role].value!r} != {b[role].value!r}"
        assert a[role].reason == b[role].reason and a[role].se == b[role].se, f"{name}/{role}"


# --- missing inputs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_missing_roles_give_none_with_reason(name: str, problems: Problems):
    """Contexts lacking the Original, the Retrain, or both ("alone")."""
    cls = METRICS.get(name)
    for absent, ctx in problems.ctx(task_of(name), "without").items():
        v = one(ctx, name, roles=("unlearned",))["unlearned"]
        lacking = set(ROLES) - set(ctx.models)
        if cls.needs & lacking:
            none_with_reason(v, f"{name} without {absent}", "no ", "model", *sorted(cls.needs & lacking))
        else:
            well_defined(v, f"{name} without {absent}")


@pytest.mark.parametrize("name", NAMES)
def test_missing_run_info_gives_none_with_reason(name: str, problems: Problems):
    cls = METRICS.get(name)
    for role, v in one(problems.ctx(task_of(name), "no_run"), name).items():
        if cls.run_needs:
            none_with_reason(v, f"{name}/{role} without run info", "run info lacks", cls.run_needs[0])
        else:
            well_defined(v, f"{name}/{role} without run info")


class ContractFakeTask(Task):
    """A throwaway task no metric declares (registered for one test, then removed)."""

    name, summary = "contract_fake_task", "a task of the metric contract suite"
    headline_metrics: tuple[str, ...] = ()
    parity_criteria: dict[str, float] = {}  # noqa: RUF012 (a ClassVar of the protocol)

    def targets(self, y: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(y))

    def num_outputs(self, targets: torch.Tensor, num_classes: int) -> int:
        return num_classes

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def example_losses(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return np.zeros(len(targets))


@pytest.fixture
def fake_task() -> Iterator[str]:
    register_task(ContractFakeTask)
    try:
        yield ContractFakeTask.name
    finally:
        TASKS.unregister(ContractFakeTask.name)
        tasks_base._INSTANCES.pop(ContractFakeTask.name, None)


@pytest.mark.parametrize("name", NAMES)
def test_another_task_gives_none_with_reason(name: str, fake_task: str, problems: Problems):
    assert fake_task not in METRICS.get(name).tasks
    prep = problems.prep(task_of(name))
    ds = dataclasses.replace(prep.dataset, task=fake_task)
    ctx = context(prep, problems.unlearned(task_of(name)), dataset=ds)
    assert ctx.task.name == fake_task
    for role, v in one(ctx, name).items():
        none_with_reason(v, f"{name}/{role} on {fake_task}", fake_task)
    assert name not in evaluate(ctx, tier=2)  # evaluate() without names selects the context's task's metrics


def nan_copy(model: nn.Module) -> nn.Module:
    """A diverged model: every parameter NaN (what an unguarded ascent method can return)."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(float("nan"))
    return m


@pytest.mark.parametrize("name", NAMES)
def test_collapsed_model_gives_none_with_reason(name: str, problems: Problems):
    res = one(problems.ctx(task_of(name), "collapsed"), name)
    none_with_reason(res["unlearned"], f"{name} of a collapsed model")
    for role in ("original", "retrain"):  # the other roles are unaffected
        well_defined(res[role], f"{name}/{role} beside a collapsed model")


@pytest.mark.parametrize("name", NAMES)
def test_no_tier2_providers_gives_none_with_reason(name: str, problems: Problems):
    """A context built by hand (no providers) cannot re-run the method: tier-2 metrics say so, others are unaffected."""
    for role, v in one(problems.ctx(task_of(name), "no_providers"), name).items():
        if METRICS.get(name).tier == Tier.GOLD:
            none_with_reason(v, f"{name}/{role} without providers")
        else:
            well_defined(v, f"{name}/{role} without providers")


# --- degenerate inputs ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_one_example_forget_set_is_defined(name: str, problems: Problems):
    ctx = problems.ctx(task_of(name), "single")
    assert ctx.splits.forget.size == 1
    for role, v in one(ctx, name).items():
        well_defined(v, f"{name}/{role} with a one-example forget set")


def constant_copy(model: nn.Module) -> nn.Module:
    """Same architecture, every parameter 0: the same (zero) output for every input."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    return m


@pytest.mark.parametrize("name", NAMES)
def test_constant_output_model_is_defined(name: str, problems: Problems):
    ctx = problems.ctx(task_of(name), "constant")
    x = ctx.dataset.test.x[:5]
    out = ctx.models["unlearned"](x)
    assert torch.equal(out, ctx.models["unlearned"](x[:1]).expand(*out.shape))
    for role, v in one(ctx, name).items():
        well_defined(v, f"{name}/{role} beside a constant-output model")


# --- retrain as the method: zero gap --------------------------------------------------------------------------------
Outcome = tuple[Any, EvalContext, dict[str, dict[str, MetricValue]]]


def _retrain_as_method(prep: Prepared) -> Outcome:
    """The record of run_step (gaps of tiers 0-1 to the prepared baseline), a context holding the method's model and
    run info, and every tier-0/1 metric for every role in it."""
    params = {"same_seeds_as_oracle": True}
    record, model = run_step(prep, "retrain", params, metrics=None, tier=1, save=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  prep.oracle.model.state_dict().values(), strict=True))
    ctx = prep.eval_ctx.with_model("unlearned", model)
    method_params = get_method("retrain", params).params.to_dict()
    ctx.run = dataclasses.replace(ctx.run, method="retrain", method_params=method_params)
    return record, ctx, evaluate(ctx, tier=1)


def retrain_outcome(problems: Problems, task: str, kind: str) -> Outcome:
    return problems._once(("retrain", task, kind), lambda: _retrain_as_method(problems.prep(task, kind)))


@pytest.mark.parametrize("request_kind", ["random", "class"])
@pytest.mark.parametrize("name", NAMES)
def test_retrain_as_method_has_zero_gap(name: str, request_kind: str, problems: Problems):
    task = task_of(name)
    if request_kind == "class" and task != "classification":
        pytest.skip(f"{task} has no classes")
    record, ctx, res = retrain_outcome(problems, task, request_kind)
    cls = METRICS.get(name)
    by_role = res[name] if name in res else one(ctx, name)  # tier 2: computed here
    u, r = by_role["unlearned"], by_role["retrain"]
    well_defined(u, f"{name}/unlearned")
    well_defined(r, f"{name}/retrain")
    if cls.unlearned_only or cls.retrain_is_floor:  # judged against the oracles' distribution
        if cls.unlearned_only:  # no value of its own for the Retrain
            none_with_reason(r, f"{name}/retrain", "unlearned role")
        else:  # the Retrain row is independent retrains' value: the noise floor an identical copy is not above
            assert r.value is not None and u.value is not None and u.value <= r.value + 1e-12, (name, u, r)
        if cls.ideal is not None:
            assert u.value == pytest.approx(cls.ideal, abs=1e-12), f"{name}: retrain is the ideal ({u.reason})"
        return
    if u.value is not None and r.value is not None:
        assert u.value == pytest.approx(r.value, abs=1e-9), f"{name}: {u.value} vs the Retrain's {r.value}"
    else:  # defined for one and not the other only where the metric compares a model with itself
        assert (u.value is None) == (r.value is None) or "compared with itself" in str(r.reason), (name, u, r)
    if cls.tier <= Tier.STANDARD and record.gap_to_retrain.get(name) is not None:
        assert record.gap_to_retrain[name] == pytest.approx(0.0, abs=1e-9), name


def test_zero_gap_checks_cover_most_tier01_metrics(problems: Problems):
    """The zero-gap property is vacuous for a metric undefined on every request: keep that set small."""
    outcomes = [retrain_outcome(problems, task, kind)
                for task, kind in (("classification", "random"), ("classification", "class"), ("regression", "random"),
                                   ("recsys", "random"))]
    defined = {name for _, _, res in outcomes for name, by_role in res.items()
               if by_role["unlearned"].value is not None and by_role["retrain"].value is not None}
    cheap = {n for n, c in METRICS.items() if c.tier <= Tier.STANDARD and c.tasks & {"classification", "regression",
                                                                                      "recsys"}}
    assert len(cheap - defined) <= 8, sorted(cheap - defined)


# --- adding a metric takes one file ---------------------------------------------------------------------------------
def test_toy_metric_is_picked_up_by_evaluate_and_the_cli(problems: Problems):
    toy = ContractToyMetric.name
    res = evaluate(context(problems.prep("classification"), problems.unlearned("classification")))  # the toy too
    assert toy in res and set(res[toy]) == set(ROLES)
    for role, v in res[toy].items():
        assert v.value is not None and 1 / 3 <= v.value <= 1.0, (role, v)
    assert res[toy]["original"].value != res[toy]["unlearned"].value  # it reads the models
    out = CliRunner().invoke(app, ["metrics", "--json"])
    assert out.exit_code == 0, out.output
    listed = {d["name"]: d for d in json.loads(out.stdout)}
    assert listed[toy] == ContractToyMetric.describe()
    assert set(listed) == set(METRICS.names())
