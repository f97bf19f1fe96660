"""Teacher–student KL losses with a temperature, shared by ``bad_teacher`` and ``scrub``.

Both are KL(teacher ‖ student) summed over classes and averaged over the batch ("batchmean"). ``distill_kl`` is
Hinton et al.'s knowledge-distillation loss, scaled by τ² so that gradient magnitudes do not shrink as τ grows
(RepDistiller's ``DistillKL``, used by SCRUB); ``kl_to_targets`` is the unscaled form against precomputed target
probabilities (Bad Teacher mixes two teachers row by row, so its targets are not the softmax of one set of logits).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return F.softmax(logits / temperature, dim=1)


def kl_to_targets(student_logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(targets ‖ softmax(student/τ)) summed over classes, mean over the batch."""
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1), targets, reduction="batchmean")


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """τ²·KL(softmax(teacher/τ) ‖ softmax(student/τ)), summed over classes, mean over the batch."""
    return kl_to_targets(student_logits, soft_targets(teacher_logits, temperature), temperature) * temperature**2


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode with gradients off: a teacher that cannot move."""
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher
