"""Learning one step of a class-incremental stream from the new task's data and a fixed memory buffer.

:func:`replay_fit` is the one trainer of the continual scenario's learning steps (:mod:`expunge.scenarios.continual`):
the scenario's default learner — fine-tuning on the new task's examples together with the buffer (experience replay,
the issue's "fine-tune-with-buffer" baseline) — calls it with no teacher; the ``ckd`` method's learner
(:mod:`expunge.methods.ckd`) adds a distillation term from the previous model over the buffer rows. Both use the same
recipe (optimiser, learning rate, batch size, epochs), so the distillation term is the only difference.

Loss per batch: CE(student(x), y) over every row, plus ``kd_weight`` · τ² · KL(softmax(t_old/τ) ‖ softmax(s_old/τ))
over the batch's buffer rows, where ``t``/``s`` are the previous model's / the student's logits restricted to the
``old_classes`` (the classes learned before this step and still kept: the new classes have no previous-model
knowledge to keep). The teacher is frozen, so its logits are computed once for the whole buffer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from expunge.data.batches import Batches
from expunge.methods._shared.teacher_kl import distill_kl
from expunge.models.inference import predict_logits
from expunge.train.loop import TrainRecipe, fit


def replay_fit(model: nn.Module, new: tuple[torch.Tensor, torch.Tensor], buffer: tuple[torch.Tensor, torch.Tensor],
               recipe: TrainRecipe, *, seed: int, teacher: nn.Module | None = None,
               old_classes: Sequence[int] = (), kd_weight: float = 0.0, temperature: float = 2.0) -> dict[str, Any]:
    """Train ``model`` in place for ``recipe.epochs`` on the new examples ∪ the buffer (module docstring); return
    the train log. Without ``teacher`` (or ``kd_weight`` 0, or no old class) it is plain replay fine-tuning."""
    x = torch.cat([new[0], buffer[0]])
    y = torch.cat([new[1], buffer[1]])
    is_buffer = torch.cat([torch.zeros(len(new[0]), dtype=torch.bool), torch.ones(len(buffer[0]), dtype=torch.bool)])
    classes = torch.as_tensor(sorted({int(c) for c in old_classes}), dtype=torch.int64)
    distil = teacher is not None and kd_weight > 0 and classes.numel() > 0 and bool(is_buffer.any())
    if distil:
        assert teacher is not None
        teacher_logits = torch.zeros((len(x), classes.numel()))
        teacher_logits[is_buffer] = predict_logits(teacher, x[is_buffer]).float()[:, classes]
    else:
        teacher_logits = torch.zeros((len(x), 1))

    def loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        bx, by, bbuf, bt = batch
        out = m(bx)
        total = F.cross_entropy(out, by)
        if distil and bool(bbuf.any()):
            total = total + kd_weight * distill_kl(out[bbuf][:, classes], bt[bbuf], temperature)
        return total

    batches = Batches(x, y, is_buffer, teacher_logits, batch_size=recipe.batch_size, shuffle=True, seed=seed)
    log = fit(model, batches, recipe, seed=seed, loss_fn=loss).to_dict()
    log.update(n_new=len(new[0]), n_buffer=len(buffer[0]), distilled=bool(distil))
    return log
