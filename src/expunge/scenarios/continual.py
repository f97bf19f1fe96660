"""Continual learning and unlearning: a class-incremental stream whose steps either learn a new task (a few new
classes) or ask to forget a class or samples learned earlier, under a fixed memory buffer.

The stream (``--stream``, steps separated by ``;``): ``learn:A,B`` learns classes A and B (a task);
``forget:class:C`` forgets every training example of a learned, still-kept class C; ``forget:samples:F`` forgets a
seeded random share F of the examples learned so far and still kept. Default (Fashion-MNIST order, five tasks of two
classes, three forget steps)::

    learn:0,1; learn:2,3; forget:class:1; learn:4,5; learn:6,7; forget:samples:0.05; learn:8,9; forget:class:6

**Learning** starts from a freshly initialised model (seeded) and trains each task with the run's recipe on the new
task's examples ∪ the buffer. A method that defines ``learn(model, new, buffer, *, old_classes, recipe, seed)`` (the
``ckd`` method: distillation from the previous model over the buffer) learns its own way; every other method learns
with the default learner, fine-tuning with the buffer (experience replay,
:func:`~expunge.methods._shared.replay.replay_fit` without a teacher) — with ``finetune`` at the forget steps that is
the issue's fine-tune-with-buffer baseline.

**The buffer** holds at most ``buffer`` training examples, class-balanced: after each learning step every kept class
keeps the first ⌊buffer / #kept classes⌋ of its slots (a seeded order per class, so the contents are the same for
every method); a forget step drops the forgotten examples (their slots stay empty until the next learning step). It
never exceeds its size and never holds a forgotten example after a forget step (tests check both).

**Forget steps** run the method through :func:`~expunge.protocols.pipeline.run_step` on the model the stream has
reached: its forget set is the step's targets (every training example of the class, or the drawn samples: the request
names them even when the buffer no longer holds them); its retain set is the buffer without them. An *exact* method
(``retrain``: the issue's "retraining on everything currently allowed") keeps every allowed example by definition and
gets them all instead. The stream then continues from the method's model.

**Evaluation**: one record per forget step, like a sequential request: the forget split is every example forgotten so
far, the retain split every example learned and still allowed, the test split the whole test set. The **Retrain** is
trained jointly from scratch with the run's recipe on that retain split (:func:`~expunge.train.oracle.retrain_oracle`;
the splits' ``detail`` names the stream and step, so each step's oracle is cached apart). The **Original** is the
stream learned with the default learner with every forget step skipped (what the model would be if no one had asked
to forget), cached in the store. The continual metrics (:mod:`expunge.metrics.continual`: ``cl_avg_acc``,
``cl_bwt``, ``cl_removed_acc``) read the stream's state from the evaluation extras. ``time_s`` is the forget step's
unlearning alone, so the time ratio compares it with retraining on everything allowed.

Why a scenario and no task plug-in: the stream is a sequence of requests on one model, as :mod:`sequential
<expunge.scenarios.sequential>` is; the only new thing is that some steps learn. A task's
``train_from_scratch`` hook (federated's FedAvg) trains the Original *and* the oracle the same way, but here the
oracle must be joint training while the model under test is trained incrementally, and the learner differs per
method. So the hook is the smallest one: an optional ``learn`` on a method, read by this scenario only.

Validation stream (tuning): the same learning steps; each forgotten class is replaced by another learned, kept class
(the other class of its task when possible) and samples are drawn with seed + 1000.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge._seeds import derive_seed
from expunge.data.datasets import Dataset, load_dataset
from expunge.data.request import ForgetRequest, Splits
from expunge.errors import InvalidForgetRequest
from expunge.methods._shared.replay import replay_fit
from expunge.methods.base import get_method
from expunge.metrics.continual import EXTRAS_KEY, StreamState, per_class_counts
from expunge.models import ModelSpec
from expunge.models.inference import predict_logits
from expunge.protocols.pipeline import prepare_splits, run_step
from expunge.record import RunRecord
from expunge.scenarios._stream import Event, StreamPlan, parse_stream, plan_stream, validation_events
from expunge.scenarios.base import Scenario, Setting, register_scenario, request_seed
from expunge.store import ArtifactStore
from expunge.store.lineage import FIELD as FORGET_DERIVED
from expunge.store.lineage import mark
from expunge.train.loop import TrainRecipe
from expunge.train.oracle import TrainedModel, default_recipe, model_spec_for

DEFAULT_STREAM = ("learn:0,1; learn:2,3; forget:class:1; learn:4,5; learn:6,7; forget:samples:0.05; learn:8,9; "
                  "forget:class:6")
REQUIRED_METRICS = ("cl_avg_acc", "cl_bwt", "cl_removed_acc", "forget_acc")


@dataclass(frozen=True, kw_only=True)
class ContinualParams(Hyperparams):
    stream: str = hp(DEFAULT_STREAM, "the stream, steps separated by ';': learn:A,B | forget:class:C | "
                                     "forget:samples:F")
    buffer: int = hp(500, "fixed memory buffer size (training examples, class-balanced)", low=1)

    def validate(self) -> None:
        try:
            parse_stream(self.stream)
        except InvalidForgetRequest as exc:
            self._fail("stream", self.stream, str(exc))


def default_learn(model: nn.Module, new: tuple[torch.Tensor, torch.Tensor], buffer: tuple[torch.Tensor, torch.Tensor],
                  *, old_classes: Sequence[int], recipe: TrainRecipe, seed: int) -> dict[str, Any]:
    """Fine-tuning with the buffer (experience replay): CE on the new task's examples ∪ the buffer."""
    return replay_fit(model, new, buffer, recipe, seed=seed)


def _tensors(dataset: Dataset, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.as_tensor(positions, dtype=torch.int64)
    return dataset.train.x[idx], dataset.train.y[idx]


def test_counts(model: nn.Module, dataset: Dataset) -> dict[int, tuple[int, int]]:
    """Per-class (correct, total) of ``model`` on the whole test set."""
    logits = predict_logits(model, dataset.test.x).double().numpy()
    return per_class_counts(logits, dataset.test.y.numpy(), range(dataset.num_classes))


def run_stream(model: nn.Module, dataset: Dataset, plan: StreamPlan, recipe: TrainRecipe, *, seed: int,
               learner: Any, upto: int | None = None,
               on_forget: Any = None) -> tuple[nn.Module, list[dict[int, tuple[int, int]]], float]:
    """Play ``plan`` on ``model`` up to event ``upto`` (exclusive; None: all): learning steps with ``learner``,
    forget steps with ``on_forget(event_index, model, accs) -> model`` (None: skipped). Returns the model, the
    per-class test counts after each learning step and the learning wall time."""
    accs: list[dict[int, tuple[int, int]]] = []
    spent = 0.0
    for i, ev in enumerate(plan.events[:upto]):
        if ev.kind == "learn":
            t0 = time.perf_counter()
            learner(model, _tensors(dataset, plan.new_positions[i]), _tensors(dataset, plan.buffer_before[i]),
                    old_classes=plan.kept_before[i], recipe=recipe,
                    seed=derive_seed(seed, f"continual-learn-{len(accs)}"))  # the k-th learning step's seed
            spent += time.perf_counter() - t0
            accs.append(test_counts(model, dataset))
        elif on_forget is not None:
            model = on_forget(i, model, accs)
    return model, accs, spent


def reference_original(dataset: Dataset, spec: ModelSpec, recipe: TrainRecipe, plan: StreamPlan, upto: int, *,
                       seed: int, store: ArtifactStore, buffer: int) -> TrainedModel:
    """The stream's learning steps before event ``upto`` with the default learner and no forgetting (cached)."""
    n_learn = sum(ev.kind == "learn" for ev in plan.events[:upto])
    learn_only = [ev for ev in plan.events if ev.kind == "learn"]
    tasks = [ev.classes for ev in learn_only][:n_learn]
    # no forget step: the buffer keeps what a stream without requests would keep
    ref = plan_stream(dataset, learn_only, buffer=buffer, seed=seed, buffer_seed=seed)
    key = store.key({"kind": "continual-original", "dataset": dataset.fingerprint, "spec": spec.to_dict(),
                     "recipe": recipe.to_dict(), "seed": seed, "tasks": [list(t) for t in tasks], "buffer": buffer})

    def train(model: nn.Module) -> dict[str, Any]:
        _, accs, wall = run_stream(model, dataset, ref, recipe, seed=seed, learner=default_learn, upto=n_learn)
        return {"dataset": dataset.describe(), "model_spec": spec.to_dict(), "recipe": recipe.to_dict(),
                "seed": seed, "n_train_examples": int(sum(ref.new_positions[i].size for i in range(n_learn))),
                "train_log": {"wall_s": wall, "learner": "replay fine-tuning", "tasks": [list(t) for t in tasks]},
                "learned_acc": [{str(c): list(v) for c, v in a.items()} for a in accs],
                FORGET_DERIVED: mark(trained_on_forget=True)}

    model, manifest, hit = store.get_or_create_model(
        "original", key, lambda: spec.build(seed=derive_seed(seed, "continual-init")), train)
    return TrainedModel(model.eval(), manifest, hit, key)


def _learned_acc(manifest: Mapping[str, Any]) -> list[dict[int, tuple[int, int]]]:
    return [{int(c): (int(v[0]), int(v[1])) for c, v in a.items()} for a in manifest.get("learned_acc", [])]


def _with_required(metrics: Iterable[str] | None) -> list[str] | None:
    return None if metrics is None else list(dict.fromkeys([*metrics, *REQUIRED_METRICS]))


@register_scenario
class Continual(Scenario[ContinualParams]):
    """A class-incremental stream with forget steps and a fixed buffer; each forget step is judged against a joint
    retrain on everything still allowed."""

    name = "continual"
    Params = ContinualParams
    preset_fallback = "full-class"
    objective_metrics = ("forget_acc", "cl_avg_acc")

    def plan(self, dataset: Dataset, *, seed: int, validation: bool) -> StreamPlan:
        events = parse_stream(self.params.stream)
        if validation:
            events = validation_events(events, seed=seed)
        return plan_stream(dataset, events, buffer=self.params.buffer, seed=request_seed(seed, validation),
                           buffer_seed=seed)

    def prepare(self, dataset: str | Dataset, model: str, *, seed: int = 0, store: ArtifactStore | None = None,
                data_dir: str | None = None, recipe: TrainRecipe | None = None, metrics: Iterable[str] | None = None,
                tier: int = 0, progress: bool = True, validation: bool = False) -> Setting:
        ds = load_dataset(dataset, data_dir=data_dir) if isinstance(dataset, str) else dataset
        self.check_task(ds.task)
        store = store or ArtifactStore()
        recipe = recipe or default_recipe(ds.name)
        spec = model_spec_for(ds, model)
        plan = self.plan(ds, seed=seed, validation=validation)
        steps, method_splits = [], []
        for k, i in enumerate(plan.forget_events):
            ev = plan.events[i]
            forgotten, allowed = plan.forgotten_after[i], plan.allowed_after[i]
            detail = {"continual": {"stream": self.params.stream, "step": k + 1, "event": i,
                                    "validation": validation}}
            ids = ds.train.ids
            eval_splits = Splits.from_ids(ds, ids[forgotten], request=ForgetRequest("ids", ids=tuple(
                int(v) for v in ids[forgotten])), retain_ids=ids[allowed], forget_classes=plan.removed_after[i],
                seed=seed, detail=detail)
            targets = plan.targets[i]
            step_retain = np.setdiff1d(plan.buffer_before[i], targets)
            method_splits.append(Splits.from_ids(
                ds, ids[targets], request=ForgetRequest("ids", ids=tuple(int(v) for v in ids[targets])),
                retain_ids=ids[step_retain], forget_classes=(ev.cls,) if ev.kind == "forget_class" else (),
                seed=seed))
            original = reference_original(ds, spec, recipe, plan, i, seed=seed, store=store,
                                          buffer=self.params.buffer)
            state = StreamState(tasks=plan.tasks_before[i], kept=plan.kept_after[i], removed=plan.removed_after[i],
                                learned_acc={"original": _learned_acc(original.manifest)})
            steps.append(prepare_splits(ds, spec, eval_splits, seed=seed, store=store, recipe=recipe,
                                        metrics=_with_required(metrics), tier=tier, progress=progress,
                                        extras={EXTRAS_KEY: state}, original=original))
        info = {"stream": [ev.text for ev in plan.events], "buffer": self.params.buffer,
                "forget_steps": [plan.events[i].text for i in plan.forget_events],
                "targets": [int(plan.targets[i].size) for i in plan.forget_events]}
        setting = Setting(self, steps, seed, validation, method_splits=method_splits, info=info)
        setting.plan = plan  # type: ignore[attr-defined]  # the run replays it
        return setting

    def run(self, setting: Setting, method: str, params: Hyperparams | Mapping[str, Any] | None = None, *,
            metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = False, save: bool = True,
            label: str = "", params_source: str | None = None) -> list[RunRecord]:
        plan: StreamPlan = setting.plan  # type: ignore[attr-defined]
        first = setting.steps[0]
        ds, spec, recipe = first.dataset, first.spec, first.recipe
        m = get_method(method, dict(params) if isinstance(params, Mapping) else params)
        learner = getattr(m, "learn", None) or default_learn
        records: list[RunRecord] = []
        input_key = f"continual:{first.original.key}"

        def forget(i: int, model: nn.Module, accs: list[dict[int, tuple[int, int]]]) -> nn.Module:
            nonlocal input_key
            k = plan.forget_events.index(i)
            prep = setting.steps[k]
            splits = setting.method_splits[k]
            if m.exact:  # retraining on everything allowed keeps every allowed example by definition
                splits = replace(splits, retain=prep.splits.retain)
            state: StreamState = prep.eval_ctx.extras[EXTRAS_KEY]
            prep.eval_ctx.extras[EXTRAS_KEY] = replace(state, learned_acc={**state.learned_acc,
                                                                           "unlearned": copy.deepcopy(accs)})
            key_extra = {"scenario": self.name, "step": k + 1, "input": input_key, "learner": type(m).__name__,
                         "stream": self.params.stream, "buffer": self.params.buffer}
            record, out = run_step(prep, method, params, model=model, splits=splits, key_extra=key_extra,
                                   metrics=_with_required(metrics), tier=tier, progress=progress, save=save,
                                   label=label, params_source=params_source)
            record = record.with_extra(step=k + 1, k=len(setting.steps), step_request=plan.events[i].text,
                                       learner="method" if learner is not default_learn else "replay fine-tuning")
            records.append(self.tag(record, setting))
            input_key = record.unlearned_key or f"{input_key}>step{k + 1}"
            return out

        model = spec.build(seed=derive_seed(setting.seed, "continual-init"))
        run_stream(model, ds, plan, recipe, seed=setting.seed, learner=learner, on_forget=forget)
        return records

    def objective(self, records: Sequence[RunRecord]) -> float | None:
        from expunge.scenarios.base import gap_objective

        return gap_objective(records, self.objective_metrics)


__all__ = ["DEFAULT_STREAM", "Continual", "ContinualParams", "Event", "default_learn", "run_stream"]
