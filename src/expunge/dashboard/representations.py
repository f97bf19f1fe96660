"""Views 4 and 5: layer-wise linear CKA and 2-D embeddings of a stratified sample of forget, retain and test examples.

**Sample** (:func:`stratified_sample`): up to :data:`PER_GROUP` examples of each group — forget, retain, test — drawn
class-stratified (round-robin over classes in a seeded shuffle, seed 0) from the splits of model A's run, so both
models and the references are compared on the very same examples.

**Layer-wise similarity** (Kornblith et al., "Similarity of Neural Network Representations Revisited", ICML 2019,
Eq. 5; the Comparator's layer-wise similarity chart): a "layer" is every module with its own parameters (``Linear``,
``Conv*``, normalisation layers), in registration order, and its representation is that module's output (before a
functional activation that follows it). Each model's representations of the sample are kept as the Gram matrices of
the column-centred features (n × n per layer and group, whatever the layer's width), from which linear CKA is
``<K_a, K_b>_F / (‖K_a‖_F ‖K_b‖_F)`` — the dual form of :func:`expunge.metrics.functional.representation.linear_cka`,
same value. A and B are each compared with the Original and the Retrain of A's run, separately on forget and retain
examples.

**Embeddings**: the penultimate features (:func:`expunge.metrics._common.penultimate_features`) of the sample, each
model projected on its own — PCA, t-SNE (scikit-learn, seed 0, perplexity min(30, (n − 1) / 3), 500
iterations, one thread) or, where ``umap-learn`` is installed (the ``dashboard`` extra installs it), UMAP (McInnes,
Healy & Melville, arXiv 1802.03426; 15 neighbours or n − 1 if fewer, seed 0 — which makes it single-threaded and
deterministic; the first call of a process compiles its numba kernels, ~10 s).

Per model, the Grams and the features are cached in the store (kind ``dashboard_repr``, keyed by the model and the
sample), like the outputs.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from expunge.dashboard.outputs import OutputCache
from expunge.dashboard.views import ViewNotApplicable
from expunge.data.datasets import Dataset
from expunge.data.request import Splits
from expunge.errors import ExpungeError
from expunge.metrics._common import penultimate_features
from expunge.record import RunRecord
from expunge.store import ArtifactStore, lineage

KIND = "dashboard_repr"
PER_GROUP = 200
GROUPS = ("forget", "retain", "test")


def stratified_sample(dataset: Dataset, splits: Splits, per_group: int = PER_GROUP, seed: int = 0) \
        -> dict[str, np.ndarray]:
    """Group -> positions (in the training set; the test group in the test set), class-stratified."""
    rng = np.random.default_rng(seed)
    out = {}
    for group in GROUPS:
        pos = np.asarray(getattr(splits, group))
        y = (dataset.test.y if group == "test" else dataset.train.y).numpy()[pos]
        shuffled = rng.permutation(len(pos))
        rank = np.empty(len(pos), dtype=np.int64)
        for c in np.unique(y):  # rank within its class in the shuffle: taking the lowest ranks is round-robin
            members = shuffled[y[shuffled] == c]
            rank[members] = np.arange(len(members))
        order = np.lexsort((shuffled.argsort(), rank))
        out[group] = np.sort(pos[order[:per_group]])
    return out


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules with their own parameters, in registration order."""
    return [(name, m) for name, m in model.named_modules()
            if name and any(True for _ in m.parameters(recurse=False))]


@torch.no_grad()
def layer_grams(model: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Layer name -> Gram matrix of the column-centred outputs of that layer on ``x``."""
    grabbed: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda _m, _i, out, name=name: grabbed.__setitem__(name, out))
               for name, m in layers(model)]
    was = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    grams = {}
    for name, _ in layers(model):
        if name in grabbed and isinstance(grabbed[name], torch.Tensor):
            f = grabbed[name].reshape(len(x), -1).double()
            f = f - f.mean(dim=0)
            grams[name] = (f @ f.T).numpy()
    return grams


def cka_from_grams(ka: np.ndarray, kb: np.ndarray) -> float | None:
    den = float(np.linalg.norm(ka) * np.linalg.norm(kb))
    return None if den <= 0 else float(np.clip(np.sum(ka * kb) / den, 0.0, 1.0))


class Representations:
    """Per (model, sample): layer Grams per group and penultimate features, cached in the store."""

    def __init__(self, outputs: OutputCache) -> None:
        self.outputs = outputs
        self._memory: dict[str, dict[str, np.ndarray]] = {}
        self._projections: dict[tuple[str, str], np.ndarray] = {}  # (model, sample, method): t-SNE takes seconds
        self._lock = threading.Lock()

    def sample(self, rec: RunRecord) -> tuple[Dataset, Splits, dict[str, np.ndarray]]:
        out = self.outputs.outputs(rec, "unlearned")
        return out.dataset, out.splits, stratified_sample(out.dataset, out.splits)

    def of(self, rec: RunRecord, role: str, sample_of: RunRecord) -> tuple[dict[str, np.ndarray], list[str], str]:
        """(``{"gram/<group>/<layer>": n×n, "features": (n, d)}``, the layer names in order, the cache key naming
        model and sample) of the ``role`` model of ``rec`` on the sample of run ``sample_of``."""
        dataset, _, sample = self.sample(sample_of)
        model, other, _, ident = self.outputs.model(rec, role)
        if other.fingerprint != dataset.fingerprint:
            raise ViewNotApplicable(f"the models were trained on different datasets ({dataset.name} and "
                                    f"{other.name}): their representations of one sample cannot be compared")
        names = [n for n, _ in layers(model)]
        key = ArtifactStore.key({"model": ident, "dataset": dataset.fingerprint, "v": 1,
                                 "sample": {g: p.tolist() for g, p in sample.items()}})
        with self._lock:
            if key in self._memory:
                return self._memory[key], names, key

        def compute() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
            tensors: dict[str, torch.Tensor] = {}
            xs = []
            for group in GROUPS:
                x = (dataset.test.x if group == "test" else dataset.train.x)[torch.as_tensor(sample[group])]
                xs.append(x)
                for name, gram in layer_grams(model, x).items():
                    tensors[f"gram/{group}/{name}"] = torch.from_numpy(gram)
            tensors["features"] = torch.from_numpy(penultimate_features(model, torch.cat(xs)))
            kind, mkey = ident.split("/")
            return tensors, {"model": ident, "dataset_fingerprint": dataset.fingerprint,
                             "layers": [n for n, _ in layers(model)],
                             lineage.FIELD: lineage.mark(trained_on_forget=kind != "oracle", parent=mkey)}

        store = self.outputs.store
        if self.outputs.write:
            try:
                tensors = store.get_or_create_tensors(KIND, key, compute)[0]
            except OSError:
                tensors = compute()[0]
        else:
            tensors = compute()[0]
        arrays = {k: v.numpy() for k, v in tensors.items()}
        with self._lock:
            self._memory[key] = arrays
        return arrays, names, key

    def cka(self, models: dict[str, tuple[RunRecord, str]]) -> dict[str, Any]:
        """Linear CKA per layer of A and B (``models["A"]``, ``models["B"]``: (record, role)) against the Original
        and the Retrain of A's run, on the forget and the retain examples of the sample."""
        base = models["A"][0]
        refs = {"Original": self.of(base, "original", base), "Retrain": self.of(base, "retrain", base)}
        out: dict[str, Any] = {"pairs": []}
        for name in ("A", "B"):
            arrays, names, _ = self.of(*models[name], base)
            for ref_name, (ref, ref_names, _) in refs.items():
                shared = [n for n in names if n in ref_names]
                for group in ("forget", "retain"):
                    out["pairs"].append({"model": name, "reference": ref_name, "group": group, "layers": shared,
                                         "cka": [cka_from_grams(arrays[f"gram/{group}/{n}"], ref[f"gram/{group}/{n}"])
                                                 for n in shared]})
        return out

    def embeddings(self, models: dict[str, tuple[RunRecord, str]], method: str) -> dict[str, Any]:
        """A 2-D projection of each model's penultimate features of the sample, with each point's group, label
        and both models' predictions (the front-end highlights one example in both on hover)."""
        if method not in projections():
            raise ExpungeError(unknown_projection(method))
        base = models["A"][0]
        dataset, _, sample = self.sample(base)
        points: dict[str, Any] = {}
        for name in ("A", "B"):
            arrays, _, key = self.of(*models[name], base)
            memo = (key, method)
            if memo not in self._projections:
                self._projections[memo] = project(arrays["features"], method)
            xy = self._projections[memo]
            out = self.outputs.outputs(*models[name])
            logits = np.concatenate([out.train[sample["forget"]], out.train[sample["retain"]],
                                     out.test[sample["test"]]])
            points[name] = {"x": np.round(xy[:, 0], 4).tolist(), "y": np.round(xy[:, 1], 4).tolist(),
                            "prediction": [str(dataset.class_names[int(i)]) for i in logits.argmax(axis=1)]
                            if dataset.task == "classification" else np.round(logits.reshape(-1), 4).tolist()}
        labels = np.concatenate([dataset.train.y.numpy()[sample["forget"]], dataset.train.y.numpy()[sample["retain"]],
                                 dataset.test.y.numpy()[sample["test"]]])
        return {"method": method, "group": [g for g in GROUPS for _ in sample[g]],
                "index": [i for g in GROUPS for i in range(len(sample[g]))],
                "label": [str(dataset.class_names[int(v)]) if dataset.task == "classification" else f"{v:.4g}"
                          for v in labels], "models": points}

    def example(self, rec: RunRecord, group: str, index: int) -> tuple[Dataset, int, bool]:
        """(dataset, position, in the test set) of example ``index`` of ``group`` in run ``rec``'s sample."""
        dataset, _, sample = self.sample(rec)
        if group not in sample or not 0 <= index < len(sample[group]):
            raise ExpungeError(f"no example {index} in the {group!r} sample (groups {list(GROUPS)}, sizes "
                               f"{[len(v) for v in sample.values()]})")
        return dataset, int(sample[group][index]), group == "test"


PROJECTIONS = ("pca", "tsne")  # always available; "umap" where umap-learn is installed (projections())
TSNE_ITER = 500  # enough for a few hundred points to settle; scikit-learn's default 1000 doubles the wait


def unknown_projection(method: str) -> str:
    hint = " (UMAP needs umap-learn: pip install 'expunge[dashboard]')" if method == "umap" else ""
    return f"method {method[:20]!r} is not one of {list(projections())}{hint}"


def projections() -> tuple[str, ...]:
    """The projections this installation offers: PCA and t-SNE, and UMAP when ``umap-learn`` is importable."""
    return PROJECTIONS + (("umap",) if importlib.util.find_spec("umap") is not None else ())


def project(features: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """(n, 2) coordinates: PCA, t-SNE (perplexity min(30, (n - 1) / 3), PCA initialisation, ``seed``) or UMAP
    (15 neighbours, ``seed``)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    f = np.nan_to_num(np.asarray(features, dtype=np.float64))
    if len(f) < 3 or f.shape[1] < 2:
        return np.zeros((len(f), 2))
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(f)
    if method == "umap":
        import umap

        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")  # "n_jobs overridden to 1 by setting random_state": intended
            return np.asarray(umap.UMAP(n_components=2, n_neighbors=min(15, len(f) - 1),
                                        random_state=seed).fit_transform(f), dtype=np.float64)
    # one OpenMP thread: t-SNE's threads fight the server's and other processes' (100 s instead of 3 s under load)
    with threadpool_limits(limits=1):
        return TSNE(n_components=2, perplexity=min(30.0, (len(f) - 1) / 3), init="pca", max_iter=TSNE_ITER,
                    random_state=seed).fit_transform(f)
