"""STL-10 from its official binary files, at 96x96.

Files (``semilearn data download stl10`` fetches and unpacks ``stl10_binary.tar.gz``):
``<data_dir>/stl10/stl10_binary/train_X.bin``, ``train_y.bin``, ``test_X.bin``,
``test_y.bin`` and ``unlabeled_X.bin``. An ``*_X.bin`` file is raw uint8 images one after
the other, each 3 x 96 x 96 with every channel stored column by column (MATLAB order); a
``*_y.bin`` file is one byte per image, the class 1..10.

USB's split: ``num_labels`` labelled images balanced across the classes of the 5000
training images, drawn by ``seed``; the unlabelled set is the 100000 unlabelled images
plus the 5000 training images (USB adds them); evaluation on the 8000 test images. Views
as USB: 12-pixel reflect-padded crops, flips, RandAugment(3) with cutout. The default
network is ``wrn_var_37_2``.

The unlabelled set is 105000 x 27648 bytes (2.9 GB) kept as uint8. It is read through a
memory map in chunks straight into its final tensor, so loading needs no second copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DataError
from .base import SSLData
from .common import benchmark_augment, benchmark_split, crop_geometry, locate, resize_images, uint8_images

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["build_stl10", "read_stl10_images", "read_stl10_labels"]

_MEAN = (112.4 / 255, 109.1 / 255, 98.6 / 255)
_STD = (68.4 / 255, 66.6 / 255, 68.5 / 255)
_NATIVE_SIZE = 96
_IMAGE_BYTES = 3 * _NATIVE_SIZE * _NATIVE_SIZE


def _image_view(path: Path) -> np.ndarray:
    """A memory-mapped ``[N, 3, 96, 96]`` view of an ``*_X.bin`` file (rows and columns put right)."""
    size = path.stat().st_size
    if size == 0 or size % _IMAGE_BYTES:
        raise DataError(
            f"{path} is {size} bytes, not a whole number of 3x96x96 images ({_IMAGE_BYTES} bytes each); "
            "download it again"
        )
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // _IMAGE_BYTES, 3, _NATIVE_SIZE, _NATIVE_SIZE))
    return raw.transpose(0, 1, 3, 2)  # stored column-major per channel


def read_stl10_images(path: Path, out: torch.Tensor | None = None) -> torch.Tensor:
    """The images of an ``*_X.bin`` file as uint8 ``[N, 3, 96, 96]`` (into ``out`` when given)."""
    return uint8_images(_image_view(path), out=out)


def read_stl10_labels(path: Path, count: int) -> torch.Tensor:
    """The classes 0..9 of a ``*_y.bin`` file holding ``count`` labels."""
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if len(labels) != count:
        raise DataError(f"{path} holds {len(labels)} labels for {count} images")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"{path}: labels must be 1..10, found {labels.min()}..{labels.max()}")
    return torch.from_numpy(labels - 1)


def build_stl10(config: Config, device: torch.device) -> SSLData:
    folder = locate("stl10", config.data_dir) / "stl10_binary"
    unlabelled_view = _image_view(folder / "unlabeled_X.bin")
    train_images = read_stl10_images(folder / "train_X.bin")
    train_targets = read_stl10_labels(folder / "train_y.bin", len(train_images))
    test_samples = read_stl10_images(folder / "test_X.bin")
    test_targets = read_stl10_labels(folder / "test_y.bin", len(test_samples))
    # unlabelled = the unlabelled split, then the training images (USB's order)
    unlabelled = torch.empty((len(unlabelled_view) + len(train_images), 3, _NATIVE_SIZE, _NATIVE_SIZE),
                             dtype=torch.uint8)
    uint8_images(unlabelled_view, out=unlabelled[: len(unlabelled_view)])
    unlabelled[len(unlabelled_view):] = train_images
    size, shift = crop_geometry(config, _NATIVE_SIZE)
    return benchmark_split(
        "stl10",
        config,
        device,
        num_classes=10,
        train_images=resize_images(train_images, size),
        train_targets=train_targets,
        test_samples=resize_images(test_samples, size),
        test_targets=test_targets,
        augment=benchmark_augment(_MEAN, _STD, shift, flip=True),
        default_net="wrn_var_37_2",
        unlabelled_samples=resize_images(unlabelled, size),
        unlabelled_targets=None,
        classes=("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"),
    )
