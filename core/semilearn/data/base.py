"""The in-memory data set container and the labelled-split convention."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .augment import AugmentSpec
from .modality import IMAGE, InputSpec, Samples, count, input_spec, move

__all__ = ["SSLData", "AugmentSpec", "balanced_labelled_indices", "check_num_classes"]

@dataclass
class SSLData:
    """A semi-supervised data set: its samples, targets, views and default network.

    The ``*_samples`` fields hold the samples of the data set's :attr:`modality`: uint8
    images ``[N, C, H, W]`` for ``"image"``, or a dict of tensors with the sample first for
    modalities whose samples have several parts (see :mod:`semilearn.data.modality`), or
    samples read from disk when a step needs them (:class:`~semilearn.data.lazy.LazySamples`).
    :attr:`input_spec` says what one sample is; network builders and the model card read it.

    Attributes:
        name: the registry name.
        num_classes: number of classes.
        labelled_samples, labelled_targets: the labelled training subset.
        unlabelled_samples: the samples whose labels are not used (usually the whole training
            set, including the labelled samples, as USB does).
        unlabelled_targets: their true labels where known (diagnostics only), else ``None``.
        test_samples, test_targets: the evaluation split.
        augment: how image views are made and normalised (other modalities: their own
            settings, read by their view factory).
        default_net: the network ``net: auto`` picks.
        classes: the class names, index by index (``None``: the indices, ``"0"`` ...).
        modality: the registered modality whose views a step reads (``"image"``).
    """

    name: str
    num_classes: int
    labelled_samples: Samples
    labelled_targets: torch.Tensor
    unlabelled_samples: Samples
    unlabelled_targets: torch.Tensor | None
    test_samples: Samples
    test_targets: torch.Tensor
    augment: Any
    default_net: str
    classes: tuple[str, ...] | None = None
    modality: str = IMAGE

    @property
    def class_names(self) -> list[str]:
        """The name of each class: :attr:`classes`, or the class indices as text."""
        return list(self.classes) if self.classes is not None else [str(index) for index in range(self.num_classes)]

    @property
    def is_image(self) -> bool:
        return self.modality == IMAGE

    @property
    def input_spec(self) -> InputSpec:
        """What one sample is (modality, shape and dtype), read from the test samples."""
        return input_spec(self.modality, self.test_samples)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of the images; DataError for other modalities."""
        if not self.is_image or isinstance(self.test_samples, Mapping):
            raise DataError(f"data set '{self.name}' holds {self.modality} samples, not images")
        return self.input_spec.image_shape

    def to(self, device: torch.device | str) -> SSLData:
        """Move every tensor to ``device`` (uint8 stays uint8)."""
        return dataclasses.replace(
            self,
            labelled_samples=move(self.labelled_samples, device),
            labelled_targets=move(self.labelled_targets, device),
            unlabelled_samples=move(self.unlabelled_samples, device),
            unlabelled_targets=move(self.unlabelled_targets, device),
            test_samples=move(self.test_samples, device),
            test_targets=move(self.test_targets, device),
        )

    def summary(self) -> str:
        counts = f"{len(self.labelled_targets)} labelled, {count(self.unlabelled_samples)} unlabelled, "
        if not self.is_image:
            return f"{self.name}: {counts}{len(self.test_targets)} test samples ({self.modality}), " \
                   f"{self.num_classes} classes"
        channels, height, width = self.image_shape
        return f"{self.name}: {counts}{len(self.test_targets)} test images of {channels}x{height}x{width}, " \
               f"{self.num_classes} classes"


def balanced_labelled_indices(targets: np.ndarray, num_labels: int, num_classes: int, seed: int) -> np.ndarray:
    """Draw ``num_labels // num_classes`` indices of each class, by ``seed`` (USB's convention).

    Raises ConfigError when ``num_labels`` does not split evenly or asks for more samples
    of a class than the training split has.
    """
    if num_labels % num_classes:
        raise ConfigError(
            f"num_labels ({num_labels}) must be a multiple of the {num_classes} classes: labels are drawn "
            "balanced across classes"
        )
    per_class = num_labels // num_classes
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(num_classes):
        members = np.flatnonzero(targets == label)
        if len(members) < per_class:
            raise ConfigError(
                f"num_labels ({num_labels}) asks for {per_class} labels per class, but class {label} has only "
                f"{len(members)} training images"
            )
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def check_num_classes(configured: int | None, actual: int, dataset: str) -> None:
    if configured is not None and configured != actual:
        raise DataError(f"num_classes is {configured}, but data set '{dataset}' has {actual} classes")
