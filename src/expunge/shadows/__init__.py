"""Shadow models for per-example membership inference (U-LiRA, LiRA): balanced membership, batched training with
``torch.func``, cached and resumable through the artifact store, and cached unlearning runs on top of them."""

from expunge.shadows.batched import (
    ModelJob,
    StackedOptimizer,
    Trained,
    batching_blocker,
    prefer_batched,
    train_batched,
    train_models,
    train_one,
)
from expunge.shadows.pool import Pool, ShadowSet, membership_matrix

__all__ = ["ModelJob", "Pool", "ShadowSet", "StackedOptimizer", "Trained", "batching_blocker", "membership_matrix",
           "prefer_batched", "train_batched", "train_models", "train_one"]
