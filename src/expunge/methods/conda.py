"""ConDa: contribution dampening — forget a federated client by shrinking the parameters it contributed most to.

Paper: Chundawat, Niroula, Dhungana, Schoepf, Mandal, Brintrup, "ConDa: Fast Federated Unlearning with Contribution
Dampening", arXiv 2410.04144. Reference: respailab/ConDa-Federated-Unlearning ``FedUnlearner/unlearn.py``
(``unlearn``, ``apply_dampening``).

No retraining and no client data: it reads only what the FedAvg server kept while training the Original
(:mod:`expunge.tasks.federated`, stored beside the Original as its training state).

1. Contribution of client k, per parameter: C_k = Σ_rounds |w_k^t − w_ref| (``reference="initial"``: w_ref = the initial
   global model w^0, as the reference code; ``"round_start"``: the global model the round started from, w^{t-1}, the
   reading of the paper's text — both sums are kept by the server).
2. C_f = mean of C_k over the forgotten clients, C_r = mean over **all** other clients.
3. ρ = C_r / C_f per parameter; where ρ < ``ratio_cutoff``, θ ← θ · min(λ·ρ, ``upper_bound``); elsewhere θ is untouched.
   Every parameter tensor with at least one dimension (the reference's ``len(shape) > 0``) is dampened.

Edge cases, as IEEE division gives them: C_r = 0 < C_f (a parameter only the forgotten client moved) → ρ = 0 → θ ← 0;
C_f = 0 (incl. 0/0 = NaN) → ρ = ∞ or NaN, not < cutoff → untouched.

Pitfalls of the reference not copied (spec 4.5): its ``unlearn`` passes (retain mean, forget mean) into parameters
named (forget, retain), so it computes ρ = C_f / C_r — the inverse of the paper's rule; and its "retain" group drops
only ``forget_clients[0]``, so further forgotten clients leak into C_r. Here ρ = C_r / C_f over the true groups.

Defaults: λ = 0.5, upper bound 0.5, cutoff 0.5 (the reference README's argparse defaults). Server memory: the K
contribution sums, K × |θ| floats per reference (recorded in ``notes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge.data.access import TRAINING_STATE, DataAccess, UnlearningData
from expunge.errors import ExpungeError
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.tasks.federated import record_table


class MissingServerRecord(ExpungeError, RuntimeError):
    """A federated method found no server record (or not the one it needs) for the Original it was given."""


@dataclass(frozen=True, kw_only=True)
class CondaParams(Hyperparams):
    dampening_constant: float = hp(0.5, "λ: a selected parameter is multiplied by min(λ·ρ, upper_bound)", low=0.0,
                                   low_open=True, search=(0.05, 2.0), log=True)
    upper_bound: float = hp(0.5, "cap of the dampening factor (≤ 1 never grows a parameter)", low=0.0,
                            low_open=True, search=(0.05, 1.0))
    ratio_cutoff: float = hp(0.5, "dampen where ρ = C_retain / C_forget is below this", low=0.0, low_open=True,
                             search=(0.05, 2.0), log=True)
    reference: Literal["initial", "round_start"] = hp(
        "initial", "contribution measured from the initial global model (reference code) or from each round's "
                   "starting global model", choices=("initial", "round_start"))


def server_record(data: UnlearningData) -> dict[str, torch.Tensor]:
    """What the FedAvg server kept while training the Original (the Original's stored training state).

    Raises:
        MissingServerRecord: the Original was not trained by the federated task here (a user's model, a purged
            record)."""
    def missing(_: Any) -> dict[str, torch.Tensor]:
        raise MissingServerRecord("no server record is stored for this Original: federated unlearning reads what the "
                                  "FedAvg server kept during training. Fix: train the Original with expunge on a "
                                  "federated dataset (e.g. fashion-mnist-fed-iid) with a store")
    return data.train_statistic(TRAINING_STATE, missing, batch_size=0)


def client_groups(record: dict[str, torch.Tensor], forget: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """Row indices of the record's clients: (the forgotten ones, every other one).

    Raises:
        MissingServerRecord: a forgotten owner is not a client of the recorded federation, or no client remains."""
    clients = [int(c) for c in record["clients"]]
    absent = [c for c in forget if c not in clients]
    if absent or not forget:
        raise MissingServerRecord(f"the request forgets owners {list(forget)}, but the federation's clients are "
                                  f"{clients}. Fix: forget whole clients (owners:K) of a federated dataset")
    f_rows = [i for i, c in enumerate(clients) if c in forget]
    r_rows = [i for i, c in enumerate(clients) if c not in forget]
    if not r_rows:
        raise MissingServerRecord("the request forgets every client of the federation; nothing would remain")
    return f_rows, r_rows


@torch.no_grad()
def dampen(param: torch.Tensor, c_forget: torch.Tensor, c_retain: torch.Tensor, *, constant: float,
           upper_bound: float, cutoff: float) -> int:
    """Scale ``param`` in place where ρ = C_r / C_f < ``cutoff`` by min(λ·ρ, ``upper_bound``); return how many
    entries were dampened. 0/0 and x/0 give NaN / ∞, which are never selected."""
    ratio = c_retain.abs() / c_forget.abs()  # torch divides by zero silently (IEEE), as the reference relies on
    selected = ratio < cutoff
    factor = torch.clamp(ratio * constant, max=upper_bound)
    param[selected] = param[selected] * factor[selected].to(param.dtype)
    return int(selected.sum())


@register_method
class Conda(UnlearningMethod[CondaParams]):
    """Dampen the parameters the forgotten client contributed most to, relative to the others (no data, no training)."""

    name = "conda"
    paper = ("Chundawat, Niroula, Dhungana, Schoepf, Mandal, Brintrup, ConDa: Fast Federated Unlearning with "
             "Contribution Dampening, arXiv 2410.04144")
    reference = "respailab/ConDa-Federated-Unlearning FedUnlearner/unlearn.py:unlearn,apply_dampening"
    access = DataAccess.TRAIN_STATS  # the server's record only: no client's data
    Params = CondaParams
    tasks = frozenset({"federated"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        record = server_record(data)
        table = record_table(record, f"contrib_{p.reference}")
        f_rows, r_rows = client_groups(record, data.forget_owners)
        dampened = total = 0
        for name, param in model.named_parameters():
            if param.ndim == 0:
                continue
            contrib = table[name]
            dampened += dampen(param.data, contrib[f_rows].mean(0), contrib[r_rows].mean(0),
                               constant=p.dampening_constant, upper_bound=p.upper_bound, cutoff=p.ratio_cutoff)
            total += param.numel()
        ctx.notes.update(dampened=dampened, dampened_share=dampened / max(total, 1), forgotten_clients=f_rows,
                         server_record_bytes=int(sum(t.numel() * t.element_size() for t in table.values())))
        return model
