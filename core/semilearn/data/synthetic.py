"""Generated 32x32x3 uint8 images of ten classes, for speed work and tests.

Each class is a smooth random colour template; samples are the template with noise and a
random brightness, so the task is learnable but not trivial. Fully determined by the
fixed generation seed (the data) and ``seed`` (the labelled draw).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from .augment import AugmentSpec
from .base import SSLData, balanced_labelled_indices, check_num_classes

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["build_synthetic", "synthetic_arrays"]

NUM_CLASSES = 10
TRAIN_SIZE = 5000
TEST_SIZE = 1000
_GENERATION_SEED = 7


def synthetic_arrays(train_size: int = TRAIN_SIZE, test_size: int = TEST_SIZE) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(_GENERATION_SEED)
    coarse = torch.rand(NUM_CLASSES, 3, 4, 4, generator=generator)
    templates = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)

    def sample(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        targets = torch.arange(count) % NUM_CLASSES
        noise = torch.rand(count, 3, 32, 32, generator=generator)
        brightness = 0.7 + 0.3 * torch.rand(count, 1, 1, 1, generator=generator)
        images = (templates[targets] * brightness * 0.7 + noise * 0.3).clamp(0, 1)
        return (images * 255).round().to(torch.uint8), targets

    train_images, train_targets = sample(train_size)
    test_samples, test_targets = sample(test_size)
    return train_images, train_targets, test_samples, test_targets


def build_synthetic(config: Config, device: torch.device) -> SSLData:
    train_images, train_targets, test_samples, test_targets = synthetic_arrays()
    check_num_classes(config.num_classes, NUM_CLASSES, "synthetic")
    labelled = torch.from_numpy(
        balanced_labelled_indices(np.asarray(train_targets), config.num_labels, NUM_CLASSES, config.seed)
    )
    data = SSLData(
        name="synthetic",
        num_classes=NUM_CLASSES,
        labelled_samples=train_images[labelled],
        labelled_targets=train_targets[labelled],
        unlabelled_samples=train_images,
        unlabelled_targets=train_targets,
        test_samples=test_samples,
        test_targets=test_targets,
        augment=AugmentSpec(
            mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), max_shift=4, padding_mode="reflect", flip=True, fill=0.5
        ),
        default_net="wrn_28_2",
    )
    return data.to(device)
