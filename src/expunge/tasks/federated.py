"""Federated classification: a classifier trained by FedAvg over simulated clients (each owner of the dataset is a
client), and the server record federated unlearning reads.

Training (McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep Networks from
Decentralized Data", AISTATS 2017, arXiv 1602.05629), a plain seeded loop — no framework:

* Round t = 1..R (R = the recipe's ``epochs``): every client k holding examples among the trained positions starts
  from the global model w^{t-1}, trains ``LOCAL_EPOCHS`` = 1 pass over its own examples with the recipe (a fresh
  optimizer each round, batch size and learning rate as the recipe; the ConDa reference's ``num_local_epochs`` default
  is 1), and the server averages the local models weighted by the clients' example counts, n_k / Σ n (FedAvg; the ConDa
  reference averages uniformly: with Dirichlet partitions the weighting is what keeps a tiny client from counting as
  much as a large one). Every client takes part in every round (the reference's ``num_participating_clients=-1``).
  A client's local seed is derived from (seed, round, client), so a federation is reproducible.
* The retrain oracle is the same federation from scratch without the forgotten client(s): a client with no retained
  example simply is not in it.

What the server keeps (:func:`fedavg`'s second result, stored beside the Original by :mod:`expunge.train.oracle`):

* ``contrib_initial/<param>`` (K × shape): Σ_t |w_k^t − w^0|, each client's accumulated absolute deviation of its local
  models from the initial global model — ConDa's contribution, as the reference (respailab/ConDa-Federated-Unlearning
  ``FedUnlearner/unlearn.py:unlearn``) computes it; ``contrib_round_start/<param>``: Σ_t |w_k^t − w^{t-1}|, the
  deviation from each round's starting global model (the paper's wording may intend this one; ConDa exposes both).
  A running sum, so K × |θ| floats each, whatever R is.
* ``history_global/<param>`` (M × shape) and ``history_client/<param>`` (M × K × shape): the global model at the start
  of every ``HISTORY_INTERVAL``-th round and every client's local model after it (FedEraser's retained updates, Liu et
  al., IWQoS 2021; interval 2 as FedEraser's Δt), M = ⌈R / 2⌉: M × (K + 1) × |θ| floats.
* ``clients``, ``n_examples`` (K) and ``history_rounds`` (M). Which examples a client holds is not in the record
  (a server never sees it): a method that lets the remaining clients train gets their data through its declared
  retain access, grouped by the dataset's owners (:attr:`~expunge.data.access.UnlearningData.train_owners`).

``server_bytes`` in the train log is the memory of the two contribution sums and of the history, the cost of keeping
them; it is also recorded in the stored artifact's manifest.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from expunge.tasks.base import FitOn, register_task
from expunge.tasks.classification import Classification

LOCAL_EPOCHS = 1
HISTORY_INTERVAL = 2


def client_seed(seed: int, round_: int, client: int) -> int:
    """The seed of client ``client``'s local training in round ``round_`` (batch order, dropout)."""
    return int(np.random.SeedSequence([seed, round_, client]).generate_state(1)[0])


def clients_of(positions: np.ndarray, owners: np.ndarray) -> dict[int, np.ndarray]:
    """Client id → sorted training positions of that client, for the clients holding any of ``positions``."""
    of = owners[positions]
    return {int(c): np.sort(positions[of == c]) for c in np.unique(of)}


def weighted_average(states: list[Mapping[str, torch.Tensor]], weights: np.ndarray) -> dict[str, torch.Tensor]:
    """Σ_k weights_k · state_k per floating tensor (weights sum to 1); integer buffers are taken from the first."""
    out: dict[str, torch.Tensor] = {}
    for name, first in states[0].items():
        if not first.is_floating_point():
            out[name] = first.clone()
            continue
        acc = torch.zeros_like(first, dtype=torch.float64)
        for w, state in zip(weights, states, strict=True):
            acc += float(w) * state[name].double()
        out[name] = acc.to(first.dtype)
    return out


def fedavg(model: torch.nn.Module, positions: np.ndarray, fit_on: FitOn, *, owners: np.ndarray, seed: int,
           rounds: int, local_epochs: int = LOCAL_EPOCHS, history_interval: int = HISTORY_INTERVAL) \
        -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Train ``model`` in place by FedAvg over the clients (``owners``) holding ``positions``; return the train log
    and the server record (module docstring)."""
    t0 = time.perf_counter()
    clients = clients_of(positions, owners)
    ids = sorted(clients)
    counts = np.array([clients[c].size for c in ids], dtype=np.float64)
    weights = counts / counts.sum()
    names = [n for n, _ in model.named_parameters()]
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    contrib_initial = {n: torch.zeros((len(ids), *p.shape)) for n, p in initial.items()}
    contrib_round = {n: torch.zeros((len(ids), *p.shape)) for n, p in initial.items()}
    kept_rounds = list(range(0, rounds, history_interval))
    hist_global = {n: torch.zeros((len(kept_rounds), *p.shape)) for n, p in initial.items()}
    hist_client = {n: torch.zeros((len(kept_rounds), len(ids), *p.shape)) for n, p in initial.items()}
    log: dict[str, Any] = {"epochs": 0.0, "steps": 0, "examples_seen": 0, "epoch_losses": [], "skipped_nonfinite": 0,
                           "peak_rss_bytes": 0, "peak_delta_bytes": 0, "stopped": None}
    for r in range(rounds):
        start = {n: t.detach().clone() for n, t in model.state_dict().items()}
        local_states, losses = [], []
        for j, c in enumerate(ids):
            local = copy.deepcopy(model)
            clog = fit_on(local, clients[c], seed=client_seed(seed, r, c), epochs=local_epochs)
            for key in ("steps", "examples_seen", "skipped_nonfinite"):
                log[key] += int(clog.get(key, 0))
            for key in ("peak_rss_bytes", "peak_delta_bytes"):
                log[key] = max(log[key], int(clog.get(key, 0)))
            losses.append((clog.get("epoch_losses") or [float("nan")])[-1])
            params = dict(local.named_parameters())
            for n in names:
                w = params[n].detach()
                contrib_initial[n][j] += (w - initial[n]).abs()
                contrib_round[n][j] += (w - start[n]).abs()
                if r in kept_rounds:
                    hist_client[n][kept_rounds.index(r), j] = w
            local_states.append({n: t.detach() for n, t in local.state_dict().items()})
        if r in kept_rounds:
            for n in names:
                hist_global[n][kept_rounds.index(r)] = start[n]
        model.load_state_dict(weighted_average(local_states, weights))
        log["epoch_losses"].append(float(np.dot(weights, np.nan_to_num(np.asarray(losses, dtype=np.float64)))))
        log["epochs"] = float(r + 1)
    record: dict[str, torch.Tensor] = {
        "clients": torch.as_tensor(ids, dtype=torch.int64), "n_examples": torch.as_tensor(counts.astype(np.int64)),
        "history_rounds": torch.as_tensor(kept_rounds, dtype=torch.int64)}
    for prefix, table in (("contrib_initial", contrib_initial), ("contrib_round_start", contrib_round),
                          ("history_global", hist_global), ("history_client", hist_client)):
        record.update({f"{prefix}/{n}": t for n, t in table.items()})
    server = sum(t.numel() * t.element_size() for k, t in record.items() if "/" in k)
    log["wall_s"] = time.perf_counter() - t0
    log["federation"] = {"algorithm": "fedavg", "rounds": rounds, "local_epochs": local_epochs, "clients": len(ids),
                         "client_sizes": counts.astype(int).tolist(), "history_interval": history_interval,
                         "server_bytes": int(server),
                         "server_bytes_contributions": int(sum(t.numel() * t.element_size() for k, t in record.items()
                                                               if k.startswith("contrib_")))}
    return log, record


def record_table(record: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The per-parameter tensors of one table of a server record (``contrib_initial``, ``history_client``, ...)."""
    return {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith(prefix + "/")}


@register_task
class Federated(Classification):
    """Classification trained by FedAvg: the dataset's owners are the clients; a request forgets whole clients."""

    name = "federated"
    summary = "classification trained by FedAvg over the dataset's owners as clients; requests forget whole clients"
    headline_metrics = ("test_acc", "forget_acc", "backdoor_asr", "client_mia_auc", "mia_loss_auc")
    # The classification bounds, with forget accuracy at 0.05: a client's forget set is one client's data (a few
    # hundred examples, label-skewed under Dirichlet partitions), so two federations differ by more on it.
    parity_criteria: ClassVar[Mapping[str, float]] = {"forget_acc": 0.05, "test_acc": 0.02, "mia_loss_auc": 0.05}
    page_metrics = ("backdoor_asr", "client_mia_auc")
    per_example_criteria: ClassVar[Mapping[str, float]] = {}
    per_example_kinds = frozenset()
    one_sided_criteria = frozenset()

    def train_from_scratch(self, model: torch.nn.Module, positions: np.ndarray, fit_on: FitOn, *,
                           owners: np.ndarray | None, seed: int, epochs: int) \
            -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """FedAvg for ``epochs`` rounds over the owners as clients (module docstring)."""
        if owners is None:
            raise ValueError("a federated dataset needs the client (owner) of every training example")
        return fedavg(model, positions, fit_on, owners=owners, seed=seed, rounds=epochs)
