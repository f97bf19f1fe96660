"""Each model's outputs on the whole training and test set, computed once from its stored weights and cached.

A run's unlearned model, its Original and its Retrain are loaded from the artifact store only by the keys its record
lists (``unlearned_key``, ``original_key``, ``oracle_key``), each a plain name checked by
:meth:`~expunge.store.ArtifactStore.check_name`: no request reaches any other file. The dataset and the forget split
come from the unlearned run's manifest, verified like ``expunge evaluate`` does (:func:`expunge.evaluation.
rebuild_dataset`, :func:`~expunge.evaluation.stored_splits`). Weights are safetensors, hash-checked on load; nothing
is unpickled.

The outputs (logits, or a regression's predictions) are cached in the store as kind ``dashboard_outputs`` —
safetensors beside the weights, keyed by the model's kind and key and the dataset fingerprint — so every view of
every later session reads them instead of running the model. An artifact store that cannot be written keeps them in
memory for the session instead. Every view derives from these outputs in milliseconds: class-wise accuracy,
prediction matrices, attack features.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from expunge.data.datasets import Dataset
from expunge.data.request import Splits
from expunge.errors import ArtifactError, ExpungeError
from expunge.evaluation import rebuild_dataset, stored_splits
from expunge.methods.base import get_method
from expunge.models import ModelSpec
from expunge.models.inference import predict_logits
from expunge.protocols.runner import load_result
from expunge.record import RunRecord
from expunge.store import ArtifactStore, lineage

log = logging.getLogger(__name__)
KIND = "dashboard_outputs"
VERSION = 1
ROLE_KINDS = {"unlearned": "unlearned", "original": "original", "retrain": "oracle"}


class WeightsMissing(ExpungeError, LookupError):
    """A run whose weights the artifact store does not hold (a committed result folder without its store, a purged
    run): the views that need the model say so instead of drawing."""


@dataclass(frozen=True)
class ModelOutputs:
    dataset: Dataset
    splits: Splits
    train: np.ndarray  # outputs on every training example, in dataset.train order
    test: np.ndarray   # outputs on every test example
    role: str
    key: str


class OutputCache:
    """Loads models and caches their outputs. Thread-safe: the server answers on a thread pool."""

    def __init__(self, store: ArtifactStore, data_dir: str | None = None, *, write: bool = True) -> None:
        self.store, self.data_dir, self.write = store, data_dir, write
        self._lock = threading.Lock()
        self._datasets: dict[str, tuple[Dataset, dict[str, Any]]] = {}
        self._splits: dict[str, Splits] = {}
        self._memory: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _context(self, rec: RunRecord) -> tuple[Dataset, Splits, dict[str, Any]]:
        key = rec.unlearned_key
        if key is None or not self.store.exists("unlearned", key):
            raise WeightsMissing(f"the weights of this {rec.method} run are not in the artifact store "
                                 f"{self.store.root} (a committed results folder, or a purged run). Fix: serve the "
                                 "bench folder with the --store it ran with")
        manifest = self.store.read_manifest("unlearned", key) or {}
        fp = str(manifest.get("dataset_fingerprint"))
        if fp not in self._datasets:
            self._datasets[fp] = rebuild_dataset(manifest, self.data_dir)
        dataset = self._datasets[fp][0]
        if key not in self._splits:
            self._splits[key] = stored_splits(self.store, key, manifest, dataset)
        return dataset, self._splits[key], manifest

    def model(self, rec: RunRecord, role: str) -> tuple[torch.nn.Module, Dataset, Splits, str]:
        """The ``role`` model of run ``rec`` loaded from the store, with its run's dataset and splits and its
        ``kind/key`` (what a cache of anything computed from it is keyed by)."""
        with self._lock:
            dataset, splits, manifest = self._context(rec)
            kind, key = self._key(rec, role)
            return self._model(kind, key, manifest), dataset, splits, f"{kind}/{key}"

    def _key(self, rec: RunRecord, role: str) -> tuple[str, str]:
        kind = ROLE_KINDS[role]
        key = {"unlearned": rec.unlearned_key, "original": rec.original_key, "retrain": rec.oracle_key}[role]
        if key is None or not self.store.exists(kind, key):
            raise WeightsMissing(f"the {role} model of this run ({kind}/{key}) is not in the artifact store "
                                 f"{self.store.root}. Fix: serve with the --store the run used")
        return kind, key

    def outputs(self, rec: RunRecord, role: str) -> ModelOutputs:
        """The ``role`` model of run ``rec`` (``unlearned``, ``original`` or ``retrain``) with its outputs."""
        with self._lock:  # one model at a time: two requests for one model compute it once
            dataset, splits, manifest = self._context(rec)
            kind, key = self._key(rec, role)
            cache_key = ArtifactStore.key({"model": f"{kind}/{key}", "dataset": dataset.fingerprint, "v": VERSION})
            if cache_key not in self._memory:
                self._memory[cache_key] = self._cached(cache_key, kind, key, dataset, manifest)
            train, test = self._memory[cache_key]
        return ModelOutputs(dataset, splits, train, test, role, key)

    def _cached(self, cache_key: str, kind: str, key: str, dataset: Dataset, manifest: dict[str, Any]) \
            -> tuple[np.ndarray, np.ndarray]:
        request = (manifest.get("request") or {}).get("fingerprint")

        def compute() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
            model = self._model(kind, key, manifest)
            return ({"train": predict_logits(model, dataset.train.x).float(),
                     "test": predict_logits(model, dataset.test.x).float()},
                    {"model_kind": kind, "model_key": key, "dataset": dataset.name,
                     "dataset_fingerprint": dataset.fingerprint, "version": VERSION,
                     # the outputs on the training set reveal what the model learnt of the forget examples: they
                     # go wherever a purge takes the model they derive from (its request, its parent)
                     lineage.FIELD: lineage.mark(trained_on_forget=kind != "oracle", parent=key,
                                                 request=request if kind != "original" else None)})

        tensors: dict[str, torch.Tensor]
        if self.write:
            try:
                tensors = self.store.get_or_create_tensors(KIND, cache_key, compute)[0]
            except OSError as exc:  # a read-only store: keep them for this session only
                log.warning("cannot cache model outputs in %s (%s): kept in memory", self.store.root, exc)
                self.write = False
                tensors = compute()[0]
        else:
            tensors = compute()[0]
        return tensors["train"].double().numpy(), tensors["test"].double().numpy()

    def _model(self, kind: str, key: str, manifest: dict[str, Any]) -> torch.nn.Module:
        spec = ModelSpec.from_dict(manifest["model_spec"])
        try:
            if kind == "unlearned":  # the method rebuilds what it stored (state buffers, ensembles)
                return load_result(self.store, kind, key, get_method(manifest["method"], manifest["params"]), spec)[0]
            model = spec.build(seed=0)
            self.store.load_model_into(kind, key, model)
            return model.eval()
        except ArtifactError:
            raise
        except (KeyError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"{kind}/{key} cannot be rebuilt: {exc}") from None
