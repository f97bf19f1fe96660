"""LiRA-family attacks query the models the way they were trained. Regression: U-LiRA and the retain-set MIA (the
privacy onion) queried every image model with identity + horizontal flip although expunge trains without
augmentation, so half of each φ came from off-distribution (mirrored) inputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from expunge.metrics._common import training_queries
from expunge.train.loop import TrainRecipe


@dataclass(frozen=True)
class FlipRecipe:  # a recipe that does augment with horizontal flips (expunge's own recipes do not)
    augment: tuple[str, ...] = ("hflip",)


def test_a_model_trained_without_augmentation_is_queried_without_flips():
    images = torch.zeros(4, 1, 8, 8)
    assert training_queries(images, TrainRecipe()) == ("identity",)
    assert training_queries(images, None) == ("identity",)


def test_flips_only_for_images_trained_with_flips():
    assert training_queries(torch.zeros(4, 1, 8, 8), FlipRecipe()) == ("identity", "flip")
    assert training_queries(torch.zeros(4, 64), FlipRecipe()) == ("identity",)  # no image axis to mirror
