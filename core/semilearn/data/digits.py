"""scikit-learn's bundled 8x8 handwritten digits: the offline default data set.

1797 grey images with values 0..16, scaled to 0..255. A fixed stratified quarter is the
test split (the same for every seed, so runs are comparable); ``num_labels`` labelled
images are drawn from the rest, balanced across the ten classes, by ``seed``; the
unlabelled set is the whole training split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from .augment import AugmentSpec
from .base import SSLData, balanced_labelled_indices, check_num_classes

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["build_digits", "digits_arrays"]

_TEST_FRACTION = 0.25
_SPLIT_SEED = 20240611
# Per-pixel statistics of the training split, in [0, 1].
_MEAN = (0.3055,)
_STD = (0.3762,)


def digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train images, train targets, test images, test targets (uint8 ``[N, 1, 8, 8]``)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.data * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    targets = bunch.target.astype(np.int64)
    rng = np.random.default_rng(_SPLIT_SEED)
    test = []
    for label in range(10):
        members = rng.permutation(np.flatnonzero(targets == label))
        test.append(members[: int(round(len(members) * _TEST_FRACTION))])
    test_index = np.sort(np.concatenate(test))
    train_mask = np.ones(len(targets), dtype=bool)
    train_mask[test_index] = False
    return images[train_mask], targets[train_mask], images[test_index], targets[test_index]


def build_digits(config: Config, device: torch.device) -> SSLData:
    train_images, train_targets, test_samples, test_targets = digits_arrays()
    check_num_classes(config.num_classes, 10, "digits")
    labelled = balanced_labelled_indices(train_targets, config.num_labels, 10, config.seed)
    train = torch.from_numpy(train_images)
    targets = torch.from_numpy(train_targets)
    data = SSLData(
        name="digits",
        num_classes=10,
        labelled_samples=train[labelled],
        labelled_targets=targets[labelled],
        unlabelled_samples=train,
        unlabelled_targets=targets,
        test_samples=torch.from_numpy(test_samples),
        test_targets=torch.from_numpy(test_targets),
        augment=AugmentSpec(mean=_MEAN, std=_STD, max_shift=1, padding_mode="zeros", flip=False, fill=0.0),
        default_net="small_cnn",
    )
    return data.to(device)
