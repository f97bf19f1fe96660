"""Amnesiac Unlearning: subtract the parameter updates of every training batch that contained a forget example.

Paper: Graves, Nagisetty, Ganesh, "Amnesiac Machine Learning", AAAI 2021, arXiv 2010.10981 (Amnesiac Unlearning).
Reference: no public code of the paper's update log; the harness "amnesiac"
(if-loops/selective-synaptic-dampening ``src/forget_full_class_strategies.py:amnesiac``) is the *relabelling*
baseline, registered separately as ``amnesiac_relabel``.

θ′ = θ_T − Σ_{b : b ∩ D_f ≠ ∅} Δθ_b, Δθ_b = θ after the optimiser step on batch b − θ before it (parameters only;
BatchNorm running statistics are kept), then an optional brief fine-tune on D_r.

The training-time log. Our originals were trained without one, so it is recovered by a *deterministic replay* of the
original's training: ``expunge.train.oracle`` trained it with ``fit`` from ``ModelSpec.build(seed=init_seed)`` on the
full training set shuffled by ``Batches(seed=order_seed)``; we rebuild that model, rebuild the same batches over
(x, y, position) and call the same ``fit``, so every step is identical; a wrapper around the batches records Δθ_b of
the batches holding a forget position. The replay must reproduce the model we were given **bit for bit** (state
hash); otherwise :class:`ReplayMismatch` is raised — subtracting another run's updates would be meaningless.
Seeds: from the original's manifest (``ctx.original_manifest``, checked against the weights' hash), else derived
from ``ctx.seed`` (the pipeline trains the original with the run seed). CPU results depend on the
number of intra-op threads, so the replay runs with the thread count the manifest records (when known).

Which batches to subtract depends on the request, and a request-independent log (every Δθ_b) costs
steps × parameters — gigabytes for the 421k CNN. So the summed Δθ of the affected batches is cached per (original,
forget set) through :meth:`~expunge.data.access.UnlearningData.train_statistic` (the name carries a digest of the
forget set and the seeds; the key carries the original): the replay is the log-keeping a real deployment does during
training, and its time is reported as ``precompute_s``, apart from the per-request cost (subtract + fine-tune).
Forget positions come from :meth:`~expunge.data.access.UnlearningData.forget_positions`.
Δθ is accumulated in float64, so one logged batch is removed exactly (tested: with plain SGD and no later batch,
θ′ equals θ before that batch bit for bit).
**Sequential requests** (the paper treats one deletion): the returned model carries two persistent buffers,
``amnesiac_origin`` (the hash of the original whose log it uses) and ``amnesiac_subtracted`` (one flag per logged
optimiser step). Given such a model, the next request replays the *original* (not the model in hand) and subtracts
only the updates of batches that hold its forget data and were not subtracted before — a batch holding examples of
two requests is removed once. Without fine-tuning, k sequential requests therefore equal one joint request up to
float32 rounding (tested); with it, each request's fine-tune stays in the model, as in any sequential stream.
Choices (the paper leaves them open): fine-tune 1 epoch on D_r with the original's optimiser, lr and batch size.
With random or class requests nearly every batch holds a forget example, and θ′ falls back towards the
initialisation: the method is meant for small deletions.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge._seeds import derive_seed
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch, Batches
from expunge.errors import ExpungeError
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models import ModelSpec
from expunge.store.artifacts import state_hash
from expunge.train.loop import TrainRecipe, cross_entropy_loss, fit, make_optimizer, train_loop


class ReplayMismatch(ExpungeError, RuntimeError):
    """Replaying the original's training did not reproduce the given model, so its update log cannot be recovered."""


@dataclass(frozen=True, kw_only=True)
class AmnesiacUpdatesParams(Hyperparams):
    finetune_epochs: int = hp(1, "fine-tune epochs on D_r after the subtraction (0 = none)", low=0, search=(0, 5))
    finetune_lr: float | None = hp(None, "fine-tune learning rate (none = the original recipe's)", low=0.0,
                                   low_open=True)

    def validate(self) -> None:
        if self.finetune_lr is not None and not self.finetune_lr > 0:
            self._fail("finetune_lr", self.finetune_lr, "a number > 0 or none")


ORIGIN, SUBTRACTED = "amnesiac_origin", "amnesiac_subtracted"


class LoggedBatches:
    """Yields (x, y) of ``batches`` (tensors x, y, position); sums θ_after − θ_before (float64) of ``model``'s
    parameters over the batches holding a position flagged in ``is_forget``, except the steps flagged in ``skip``
    (subtracted by an earlier request). A batch's update is read when the trainer asks for the next batch, i.e.
    after its optimiser step. ``affected_steps`` lists the (0-based) steps summed."""

    def __init__(self, model: nn.Module, batches: Batches, is_forget: torch.Tensor,
                 skip: torch.Tensor | None = None) -> None:
        self.batches, self.is_forget, self.skip = batches, is_forget, skip
        self.params = dict(model.named_parameters())
        self.sums = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in self.params.items()}
        self.steps = 0
        self.affected_steps: list[int] = []

    def __len__(self) -> int:
        return len(self.batches)

    @property
    def affected(self) -> int:
        return len(self.affected_steps)

    def __iter__(self) -> Iterator[Batch]:
        for x, y, pos in self.batches:
            step, self.steps = self.steps, self.steps + 1
            skipped = self.skip is not None and step < len(self.skip) and bool(self.skip[step])
            if skipped or not bool(self.is_forget[pos].any()):
                yield x, y
                continue
            self.affected_steps.append(step)
            before = {n: p.detach().clone() for n, p in self.params.items()}
            yield x, y
            for n, p in self.params.items():
                self.sums[n] += p.detach().double() - before[n].double()


def replay_training(model: nn.Module, x: torch.Tensor, y: torch.Tensor, is_forget: torch.Tensor,
                    recipe: TrainRecipe, order_seed: int, skip: torch.Tensor | None = None) -> LoggedBatches:
    """Train ``model`` exactly as ``expunge.train.oracle`` trained the original (same ``fit``, same batch order) and
    return the log of the summed updates of batches with a forget example (other than the ``skip`` steps)."""
    positions = torch.arange(len(y))
    logged = LoggedBatches(model, Batches(x, y, positions, batch_size=recipe.batch_size, seed=order_seed), is_forget,
                           skip)
    fit(model, logged, recipe, seed=order_seed)  # type: ignore[arg-type]  # duck-typed Batches
    return logged


@torch.no_grad()
def subtract_updates(model: nn.Module, sums: dict[str, torch.Tensor]) -> None:
    for n, p in model.named_parameters():
        p.copy_((p.double() - sums[n]).to(p.dtype))


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (CPU reductions split by thread count round differently), then restore."""
    before = torch.get_num_threads()
    if n is not None and n > 0 and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _hash_tensor(digest: str) -> torch.Tensor:
    return torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8)


def _first_difference(a: nn.Module, b: nn.Module) -> str:
    for (name, u), v in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if not torch.equal(u, v):
            return f"first differing tensor {name!r}, max |Δ| = {float((u.double() - v.double()).abs().max()):.3g}"
    return "tensors equal but hashes differ"


@register_method
class AmnesiacUpdates(UnlearningMethod[AmnesiacUpdatesParams]):
    """Subtract the logged updates of training batches that held forget data (log by deterministic replay)."""

    name = "amnesiac_updates"
    paper = "Graves, Nagisetty, Ganesh, Amnesiac Machine Learning, AAAI 2021, arXiv 2010.10981"
    reference = "none public for the update log (paper Sec. Amnesiac Unlearning); replay of expunge.train.oracle"
    access = DataAccess.FORGET | DataAccess.RETAIN | DataAccess.TRAIN_STATS
    Params = AmnesiacUpdatesParams
    state_buffers = (ORIGIN, SUBTRACTED)

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        bufs = dict(model.named_buffers(recurse=False))
        # a previous request's result: replay its original and skip the steps it already subtracted
        prior = bufs.get(SUBTRACTED) if ORIGIN in bufs else None
        target = bytes(bufs[ORIGIN].tolist()).hex() if prior is not None else state_hash(model)
        manifest = ctx.original_manifest
        if manifest is not None and manifest.get("tensors_sha256") not in (None, target):
            raise ReplayMismatch("RunContext.original_manifest describes a different model than the one given")
        if manifest is not None:
            spec, recipe = ModelSpec.from_dict(manifest["model_spec"]), TrainRecipe(**manifest["recipe"])
            init_seed, order_seed = int(manifest["init_seed"]), int(manifest["order_seed"])
            threads = manifest.get("env", {}).get("torch_threads")
        elif ctx.model_spec is None or ctx.recipe is None:
            raise ExpungeError("amnesiac_updates needs the original's model spec and recipe (RunContext.model_spec and"
                               " .recipe) to replay its training")
        else:
            spec, recipe, threads = ctx.model_spec, ctx.recipe, None
            init_seed, order_seed = derive_seed(ctx.seed, "original-init"), derive_seed(ctx.seed, "original-order")
        forget_pos = data.forget_positions()
        h = hashlib.blake2b(forget_pos.tobytes(), digest_size=8)
        if prior is not None:
            h.update(prior.numpy().tobytes())
        digest = h.hexdigest()

        def compute(batches: Batches) -> dict[str, torch.Tensor]:
            x, y = batches.tensors[:2]  # the full training set in position order
            is_forget = torch.zeros(len(y), dtype=torch.bool)
            is_forget[torch.as_tensor(forget_pos)] = True
            replica = spec.build(seed=init_seed)
            with _torch_threads(threads):
                log = replay_training(replica, x, y, is_forget, recipe, order_seed, skip=prior)
            if state_hash(replica) != target:
                raise ReplayMismatch(
                    f"replaying the original's training (init seed {init_seed}, order seed {order_seed}, "
                    f"{recipe}) did not reproduce the given model bit for bit ({_first_difference(replica, model)}). "
                    "amnesiac_updates recovers the training-time update log by deterministic replay, so the "
                    "original must have been trained by expunge.train.oracle.train_original with the run's seed "
                    "(or be described by RunContext.original_manifest) on this data, torch version and thread count. "
                    "Fix: run with the original's seed, or choose a method that needs no training log.")
            return {**{f"delta.{n}": s for n, s in log.sums.items()}, "replayed_sha256": _hash_tensor(target),
                    "affected_batches": torch.tensor([log.affected]), "steps": torch.tensor([log.steps]),
                    "affected_steps": torch.tensor(log.affected_steps, dtype=torch.int64),
                    "forget_rows": is_forget.sum().reshape(1)}

        stat = data.train_statistic(f"amnesiac_updates/v2/{digest}/{init_seed}/{order_seed}", compute,
                                    batch_size=recipe.batch_size)
        if not torch.equal(stat["replayed_sha256"], _hash_tensor(target)):
            raise ReplayMismatch("the cached update log was replayed for a different model than the one given")
        affected, total = int(stat["affected_batches"][0]), int(stat["steps"][0])
        if prior is not None and len(prior) != total:  # before anything is subtracted
            raise ReplayMismatch(f"the model's amnesiac state flags {len(prior)} logged steps but the replay made "
                                 f"{total}: it was produced under another training recipe")
        subtract_updates(model, {n: stat[f"delta.{n}"] for n, _ in model.named_parameters()})
        steps = 0
        if p.finetune_epochs > 0:
            opt = make_optimizer(model.parameters(), recipe.optimizer, momentum=recipe.momentum,
                                 lr=recipe.lr if p.finetune_lr is None else p.finetune_lr,
                                 weight_decay=recipe.weight_decay)
            steps = train_loop(model, data.retain_loader(recipe.batch_size), cross_entropy_loss, opt,
                               epochs=p.finetune_epochs, progress="amnesiac ft" if ctx.progress else None).steps
        subtracted = torch.zeros(total, dtype=torch.bool) if prior is None else prior.clone()
        subtracted[stat["affected_steps"]] = True
        model.register_buffer(ORIGIN, _hash_tensor(target))
        model.register_buffer(SUBTRACTED, subtracted)
        ctx.notes.update(seeds_from="manifest" if manifest is not None else "ctx.seed", affected_batches=affected,
                         subtracted_before=0 if prior is None else int(prior.sum()),
                         logged_steps=total, affected_share=affected / max(1, total),
                         forget_rows_matched=int(stat["forget_rows"][0]), finetune_steps=steps)
        return model
