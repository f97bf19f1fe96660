"""The original model and the retrain-from-scratch oracle, both cached in the artifact store.

* The **original** trains on the full training set from ``ModelSpec.build(seed=derive_seed(seed, "original-init"))``.
* The **oracle** trains with the *same recipe* on the retain set only, from a *fresh* initialisation
  (``derive_seed(seed, "oracle-init")``) — never by resetting a live module. "The retain set" is the task's
  :func:`~expunge.tasks.request_view`: the stored retain rows, or on a graph the rows rebuilt without the deleted
  nodes or edges, so the oracle never sees a deleted element.

Cache keys: (dataset fingerprint, model spec, recipe, seed) for the original; the same plus the forget set's
fingerprint for the oracle. Manifests record versions, seeds, hashes, wall time, peak memory, how they encode the
forget set (``forget_derived``: the Original was trained on it, the oracle was not but belongs to the request) and
``train_threads``, torch's intra-op thread count during training. Thread count changes float summation order, so a
1-thread and a 2-thread model differ slightly; it is recorded, not keyed (keying it would retrain every cached model
whenever tests, CI or ``demo --threads`` use another count), and :func:`cache_info` reports in a run record's
``cache`` which cached models another thread count produced.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from expunge._seeds import derive_seed
from expunge.data.access import TRAINING_STATE, statistic_key
from expunge.data.batches import Batches
from expunge.data.datasets import Dataset
from expunge.data.request import Splits
from expunge.errors import FingerprintMismatch
from expunge.models import ModelSpec
from expunge.store import ArtifactStore
from expunge.store.artifacts import state_hash
from expunge.store.lineage import FIELD as FORGET_DERIVED
from expunge.store.lineage import mark
from expunge.tasks import get_task, request_view
from expunge.train.loop import TrainRecipe, fit
from expunge.train.monitor import Monitor

DEFAULT_RECIPES: dict[str, TrainRecipe] = {
    "digits": TrainRecipe(epochs=30, batch_size=64, optimizer="adam", lr=1e-3),
    # 20 epochs: the original must memorise for random forgetting to be measurable (DEVELOPERS.md: after 5 epochs
    # doing nothing already looks like retraining).
    "fashion-mnist": TrainRecipe(epochs=20, batch_size=128, optimizer="adam", lr=1e-3),
    # diabetes (331 training rows, standardized targets; ≈ 0.4 s): 30 epochs memorise enough that forgetting is
    # measurable — on random:0.1 over seeds 0-11 the Original's forget MSE is 0.17 (mean) vs the Retrain's 0.58, never
    # closer than 0.16 — while the model still beats predicting the mean on test (MSE 0.70 vs 0.79; a linear model
    # gets 0.51). Longer training memorises more (100 epochs: forget MSE 0.01) but only by fitting the targets'
    # noise: test MSE 0.90, worse than the mean, and two exact retrains then differ by up to 0.25 in forget MSE (0.14
    # at 30 epochs), so no tolerance separates "retrained" from "not retrained" reliably.
    "diabetes": TrainRecipe(epochs=30, batch_size=32, optimizer="adam", lr=1e-3),
    # recsys-synth (BPR-MF, 7.5k interactions, ≈ 2 s): 40 epochs of Adam at 3e-3 memorise the training interactions
    # (Recall@20 of a random 5% forget set 0.79 for the Original vs 0.19-0.21 for retrains) while test Recall@20
    # stays at a retrain's level (0.18-0.21); at lr 1e-3 the Original's forget recall was only 0.51, and at dim 64 /
    # lr 5e-3 it memorised everything (0.98) with lower test recall.
    "recsys-synth": TrainRecipe(epochs=40, batch_size=256, optimizer="adam", lr=3e-3),
    # movielens (a user's file; ML-100K: 80k training interactions): a starting point, not tuned — larger batches keep
    # an epoch near a second; on RecBole's ML-100K copy (seed 0) an Original trains in ≈ 6 s with test Recall@20 0.30.
    "movielens": TrainRecipe(epochs=20, batch_size=1024, optimizer="adam", lr=3e-3),
    # synthetic-regression (750 rows) and fashion-rotation (4,000 images): the recipes their modules' docstrings
    # measure (expunge.data.synthetic_regression, expunge.data.fashion_rotation): the Original memorises enough of
    # its training rows for forgetting to be measurable.
    "synthetic-regression": TrainRecipe(epochs=30, batch_size=32, optimizer="adam", lr=1e-3),
    "fashion-rotation": TrainRecipe(epochs=15, batch_size=64, optimizer="adam", lr=1e-3),
    # graph datasets (node rows, expunge.data.graphs): 100 epochs of Adam at 1e-2 make a GCN memorise its training
    # nodes (sbm, seed 0: forget accuracy 1.0 for the Original vs 0.94 for the retrain on random:0.1) at ≈ 1 s,
    # with test accuracy ≈ 0.93; karate (24 training nodes) takes the same recipe in batches of 32.
    "sbm": TrainRecipe(epochs=100, batch_size=64, optimizer="adam", lr=1e-2),
    "karate": TrainRecipe(epochs=100, batch_size=32, optimizer="adam", lr=1e-2),
    # federated copies (expunge.data.federated; the federated task reads epochs as FedAvg rounds of one local epoch
    # per client): 20 rounds reach ≈ 80% test accuracy with mlp_small on the Fashion-MNIST subset (≈ 6 s on one
    # thread) and ≈ 94% on digits, whose 10 clients of ~135 images need the larger step (lr 1e-2, batch 32)
    **{f"fashion-mnist-fed-{p}": TrainRecipe(epochs=20, batch_size=64, optimizer="adam", lr=1e-3)
       for p in ("iid", "dir0.5", "dir0.1")},
    **{f"digits-fed-{p}": TrainRecipe(epochs=20, batch_size=32, optimizer="adam", lr=1e-2)
       for p in ("iid", "dir0.5", "dir0.1")},
    # llm facts (expunge.data.facts; gpt_tiny with 2 blocks of width 128, sized by the dataset): 20 epochs of AdamW at
    # 3e-3 on a cosine schedule memorise the 1,660 training rows (mean answer-token probability of a forgotten
    # person's questions ≈ 0.97, held-out people's ≈ 0.17) in about a minute on one idle thread; batches of 64 at
    # 5e-3 reached only ≈ 0.76 (benchmarks/results/llm_memorisation.md measures the recipe for three seeds)
    "facts": TrainRecipe(epochs=20, batch_size=32, optimizer="adamw", lr=3e-3, schedule="cosine"),
    "facts-tiny": TrainRecipe(epochs=30, batch_size=16, optimizer="adamw", lr=3e-3, schedule="cosine"),
    # fashion-mnist-cl (6,000 images, expunge.data.continual): the continual scenario trains every learning step and
    # every joint retrain oracle with this recipe; 10 epochs of Adam at 1e-3 with mlp_small fit a two-class task in
    # about a second on one thread
    "fashion-mnist-cl": TrainRecipe(epochs=10, batch_size=64, optimizer="adam", lr=1e-3),
}


def default_recipe(dataset_name: str) -> TrainRecipe:
    return DEFAULT_RECIPES.get(dataset_name, TrainRecipe())


def model_spec_for(dataset: Dataset, model_name: str, **kwargs: Any) -> ModelSpec:
    """A registered architecture sized for ``dataset``: its input shape, its task's number of outputs and the sizes
    the dataset declares in ``model_kwargs`` (a recommender's ``n_users``; explicit ``kwargs`` win)."""
    return ModelSpec(model_name, dataset.input_shape, dataset.num_outputs, {**dataset.model_kwargs, **kwargs})


@dataclass
class TrainedModel:
    model: nn.Module
    manifest: dict[str, Any]
    cache_hit: bool
    key: str

    @property
    def train_time_s(self) -> float | None:
        """Training wall time (None for an Original trained elsewhere)."""
        wall = self.manifest.get("train_log", {}).get("wall_s")
        return None if wall is None else float(wall)

    @property
    def threads(self) -> int | None:
        """torch's thread count while this model trained (None for an Original trained elsewhere). Manifests older
        than ``train_threads`` give the count at save time, which :func:`_train` does not change."""
        if self.manifest.get("user_supplied"):
            return None
        n = self.manifest.get("train_threads", self.manifest.get("env", {}).get("torch_threads"))
        return None if n is None else int(n)


def training_env(model: TrainedModel) -> dict[str, Any]:
    """The environment ``model`` was trained in, from its store manifest, with ``torch_threads`` the count during
    training; {} when unknown (a user-supplied model, a manifest without image or threads). A cached oracle's time is
    a speed-up reference only with it (:func:`expunge.harness.rules.oracle_env`): without it the fastest, least loaded
    training of a grid was left out whenever its oracle came from the cache, and the slower ones inflated the
    speed-ups."""
    env, threads = model.manifest.get("env") or {}, model.threads
    if model.manifest.get("user_supplied") or threads is None or not env.get("platform"):
        return {}
    return {**env, "torch_threads": threads}


def cache_info(original: TrainedModel, oracle: TrainedModel) -> dict[str, Any]:
    """A run record's ``cache`` section: which of the Original and the oracle came from the cache, the thread count
    each was trained with beside this run's, and ``thread_mismatch``: the cached ones another count produced (their
    numbers can differ from a fresh training's in the last digits)."""
    now = torch.get_num_threads()
    models = {"original": original, "oracle": oracle}
    return {"original_hit": original.cache_hit, "oracle_hit": oracle.cache_hit,
            "threads": {"run": now, **{role: m.threads for role, m in models.items()}},
            "thread_mismatch": [role for role, m in models.items()
                                if m.cache_hit and m.threads is not None and m.threads != now]}


def check_fingerprint(manifest: dict[str, Any], dataset: Dataset) -> None:
    recorded = manifest.get("dataset", {}).get("fingerprint")
    if recorded != dataset.fingerprint:
        raise FingerprintMismatch(
            f"the model was trained on dataset fingerprint {str(recorded)[:16]}… but {dataset.name} "
            f"({dataset.label_set} labels) has fingerprint {dataset.fingerprint[:16]}…: ids and labels may not mean "
            "the same examples. Fix: use the dataset (and --data-dir / label set) the model was trained on."
        )


def retain_batches(dataset: Dataset, positions: np.ndarray, recipe: TrainRecipe, order_seed: int,
                   x: torch.Tensor | None = None) -> Batches:
    """Training batches of ``positions``; ``x``: the inputs to slice (default the stored ones; a request view's)."""
    tr = dataset.train
    x = tr.x if x is None else x
    return Batches(x[positions], tr.y[positions], batch_size=recipe.batch_size, shuffle=True, seed=order_seed)


def _train(kind: str, key_parts: dict[str, Any], dataset: Dataset, positions: np.ndarray, spec: ModelSpec,
           recipe: TrainRecipe, seed: int, store: ArtifactStore, progress: bool, extra: dict[str, Any],
           x: torch.Tensor | None = None) -> TrainedModel:
    init_seed, order_seed = derive_seed(seed, f"{kind}-init"), derive_seed(seed, f"{kind}-order")
    key = store.key(key_parts)

    task = get_task(dataset.task)

    def fit_on(model: nn.Module, where: np.ndarray, *, seed: int, epochs: int) -> dict[str, Any]:
        batches = retain_batches(dataset, where, recipe, seed, x)  # x: the request view's inputs (graph), else None
        return fit(model, batches, replace(recipe, epochs=epochs), seed=seed, loss_fn=task.batch_loss,
                   progress=f"{kind} ({dataset.name}/{spec.name})" if progress else None).to_dict()

    def train(model: nn.Module) -> dict[str, Any]:
        threads = torch.get_num_threads()
        # the task's hook (default: fit_on the pooled examples with order_seed, exactly as before the hook existed)
        # one outer Monitor: a trainer calling fit_on many times (FedAvg: clients × rounds) pays the Monitor's
        # free-memory release (~70 ms) once, not at every call (expunge.train.monitor: nested blocks skip it)
        with Monitor():
            tlog, state = task.train_from_scratch(model, positions, fit_on, owners=dataset.train.owners,
                                                  seed=order_seed, epochs=recipe.epochs)
        manifest = {"dataset": dataset.describe(), "model_spec": spec.to_dict(), "recipe": recipe.to_dict(),
                    "seed": seed, "init_seed": init_seed, "order_seed": order_seed,
                    "n_train_examples": int(positions.size), "train_log": tlog, "train_threads": threads, **extra}
        if state and kind == "original":  # what the training kept for unlearning later (a federation's server)
            manifest["training_state"] = save_training_state(store, key, state)
        return manifest

    model, manifest, hit = store.get_or_create_model(kind, key, lambda: spec.build(seed=init_seed), train)
    model.eval()
    return TrainedModel(model, manifest, hit, key)


def save_training_state(store: ArtifactStore, original_key: str, state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Store the training-time state a task's trainer returned for an Original (the federated task: what the server
    kept) where :meth:`~expunge.data.access.UnlearningData.train_statistic` finds it under the name
    :data:`~expunge.data.access.TRAINING_STATE`; it derives from every training example, so its lineage is the
    Original's child (``expunge purge --original`` removes both). Returns the manifest's ``training_state`` note
    (key and bytes)."""
    key = store.key(statistic_key(TRAINING_STATE, original_key, 0))
    # lineage from the store's rule for train_stats: forget-derived, child of the Original (purged with it)
    saved = store.save_tensors("train_stats", key, state, {"statistic": TRAINING_STATE, "original": original_key,
                                                           "batch_size": 0})
    return {"key": key, "nbytes": int(saved["tensors_nbytes"])}


def original_key(dataset: Dataset, spec: ModelSpec, recipe: TrainRecipe, *, seed: int) -> str:
    """The artifact-store key of the Original :func:`train_original` trains (or finds) for these arguments, without
    loading anything (the bench harness checks the store with it before it schedules the cells)."""
    return ArtifactStore.key(_original_parts(dataset, spec, recipe, seed))


def _original_parts(dataset: Dataset, spec: ModelSpec, recipe: TrainRecipe, seed: int) -> dict[str, Any]:
    return {"kind": "original", "dataset": dataset.fingerprint, "spec": spec.to_dict(), "recipe": recipe.to_dict(),
            "seed": seed}


def train_original(dataset: Dataset, spec: ModelSpec, recipe: TrainRecipe, *, seed: int, store: ArtifactStore,
                   progress: bool = True) -> TrainedModel:
    parts = _original_parts(dataset, spec, recipe, seed)
    positions = np.arange(len(dataset.train), dtype=np.int64)
    extra = {FORGET_DERIVED: mark(trained_on_forget=True)}  # every training example, so every future forget set
    return _train("original", parts, dataset, positions, spec, recipe, seed, store, progress, extra)


def adopt_original(dataset: Dataset, spec: ModelSpec, model: nn.Module, *, store: ArtifactStore) -> TrainedModel:
    """An Original trained elsewhere (a user's model), stored under the hash of its weights so its unlearned runs
    and statistics are cached like those of an Original expunge trained. The caller's module is not modified."""
    weights = state_hash(model)
    parts = {"kind": "original", "dataset": dataset.fingerprint, "spec": spec.to_dict(), "weights": weights}
    key = store.key(parts)
    manifest = store.read_manifest("original", key)
    if manifest is None:
        manifest = store.save_model("original", key, model, {
            "dataset": dataset.describe(), "model_spec": spec.to_dict(), "weights_sha256": weights,
            "user_supplied": True, FORGET_DERIVED: mark(trained_on_forget=True),
            "n_train_examples": len(dataset.train), "train_log": {"wall_s": None}})
    copy = spec.build(seed=0)
    copy.load_state_dict(model.state_dict())
    return TrainedModel(copy.eval(), manifest, True, key)


def retrain_oracle(dataset: Dataset, splits: Splits, spec: ModelSpec, recipe: TrainRecipe, *, seed: int,
                   store: ArtifactStore, progress: bool = True) -> TrainedModel:
    if splits.dataset_fingerprint != dataset.fingerprint:
        raise FingerprintMismatch("the splits were resolved on a different dataset than the one given")
    parts = {"kind": "oracle", "dataset": dataset.fingerprint, "spec": spec.to_dict(), "recipe": recipe.to_dict(),
             "seed": seed, "forget": splits.fingerprint()}
    # the weights never saw the forget set, but the manifest describes the request (spec, sizes, fingerprint)
    extra = {"request": splits.describe(), FORGET_DERIVED: mark(trained_on_forget=False, request=splits.fingerprint())}
    view = request_view(dataset, splits)
    return _train("oracle", parts, dataset, view.fit, spec, recipe, seed, store, progress, extra, view.train_x)
