"""Amnesiac (relabel): what the Bad-Teacher / SSD harnesses call "amnesiac" — the paper's relabelling baseline.

Relabel every forget example to a uniformly drawn *other* class and train on the relabelled D_f ∪ D_r with
cross-entropy, one shuffled joint pass per epoch. It is :mod:`~expunge.methods.random_label`'s algorithm (same
:class:`~expunge.methods.random_label.RelabelledUnion`) with the harness's budget: with equal parameters and seed the
two give bit-identical models (tested). The paper's own Amnesiac Unlearning (subtracting logged updates) is
``amnesiac_updates``; the two are never registered under one name.

Paper: Graves, Nagisetty, Ganesh, "Amnesiac Machine Learning", AAAI 2021, arXiv 2010.10981 (its "unlearning" baseline).
Reference: if-loops/selective-synaptic-dampening ``src/forget_full_class_strategies.py:amnesiac`` and
``src/forget_random_strategies.py:amnesiac`` (originally vikram2000b/bad-teaching-unlearning).
Defaults (SSD harness): 3 epochs, Adam lr 1e-4 (no weight decay; ``fit_one_unlearning_cycle``), batch 128, full D_r.
Deviations: the harness draws the wrong labels once before its 3 epochs; we draw them fresh each epoch (as
``random_label`` does). Its full-class variant draws from all classes but the forgotten one, its random variant from
all classes but y: for both request kinds "other than y" is what we do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from expunge._hparams import hp
from expunge.data.access import DataAccess
from expunge.methods._shared.optim import GradientParams
from expunge.methods.base import register_method
from expunge.methods.random_label import RandomLabel


@dataclass(frozen=True, kw_only=True)
class AmnesiacRelabelParams(GradientParams):
    epochs: int = hp(3, "joint passes over relabelled D_f ∪ D_r", low=1, search=(1, 10))
    lr: float = hp(1e-4, "learning rate", low=0.0, low_open=True, search=(1e-5, 1e-2), log=True)
    optimizer: Literal["sgd", "adam", "adamw"] = hp("adam", "optimiser", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, "weight decay (the harness's Adam has none)", low=0.0)
    batch_size: int = hp(128, "mini-batch size", low=1)


@register_method
class AmnesiacRelabel(RandomLabel):
    """Train on D_f relabelled to random other classes jointly with D_r (SSD-harness "amnesiac")."""

    # The algorithm is random_label's (same loop, same relabelling); only the defaults and the citation differ.
    name = "amnesiac_relabel"
    paper = "Graves, Nagisetty, Ganesh, Amnesiac Machine Learning, AAAI 2021, arXiv 2010.10981 (relabel baseline)"
    reference = "if-loops/selective-synaptic-dampening src/forget_full_class_strategies.py:amnesiac"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = AmnesiacRelabelParams
