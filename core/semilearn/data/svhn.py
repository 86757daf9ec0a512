"""SVHN (Street View House Numbers, cropped digits) from its official ``.mat`` files.

Files (``semilearn data download svhn`` fetches them): ``<data_dir>/svhn/train_32x32.mat``,
``test_32x32.mat`` and, for ``svhn``, ``extra_32x32.mat``. Each is a MATLAB 5 file with
``X``, uint8 ``[32, 32, 3, N]`` (height, width, channel, image), and ``y``, ``[N, 1]``
labels 1..10 where 10 stands for the digit 0 (read as class 0 here). scipy, which
scikit-learn already installs, reads them.

Two data sets:

* ``svhn``: USB's setting: the 73257 training and 531131 extra images together are the
  training split (labelled draw and unlabelled set);
* ``svhn_noextra``: the 73257 training images alone (the FixMatch paper's core set).

Both evaluate on the 26032 test images. Views follow USB (4-pixel reflect-padded crops,
RandAugment(3) with cutout, USB's SVHN statistics) except the horizontal flip: USB's code
flips SVHN too, but a mirrored digit is not that digit, so the flip is off here, as in
the FixMatch paper.
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

__all__ = ["build_svhn", "build_svhn_noextra", "read_svhn_mat"]

_MEAN = (0.4380, 0.4440, 0.4730)
_STD = (0.1751, 0.1771, 0.1744)
_NATIVE_SIZE = 32


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The image array view ``[N, 3, 32, 32]`` (uint8, not yet contiguous) and labels 0..9 of one file."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(path, variable_names=["X", "y"])
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError) as error:
        raise DataError(f"{path} is not an SVHN .mat file ({error}); download it again") from None
    if "X" not in content or "y" not in content:
        raise DataError(f"{path} has no 'X' and 'y' arrays: is it SVHN's cropped-digits format (*_32x32.mat)?")
    images, labels = content["X"], np.asarray(content["y"]).reshape(-1)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DataError(f"{path}: expected X of uint8 [32, 32, 3, N], got {images.dtype} {list(images.shape)}")
    if images.shape[3] != len(labels):
        raise DataError(f"{path}: {images.shape[3]} images but {len(labels)} labels")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"{path}: labels must be 1..10 (10 is the digit 0), found {labels.min()}..{labels.max()}")
    return images.transpose(3, 2, 0, 1), labels % 10


def _image_count(path: Path) -> int:
    """How many images ``path`` holds, read from its header (nothing loaded)."""
    from scipy.io import whosmat
    from scipy.io.matlab import MatReadError

    try:
        shapes = {name: shape for name, shape, _ in whosmat(path)}
    except (MatReadError, ValueError, TypeError, OSError, NotImplementedError) as error:
        raise DataError(f"{path} is not an SVHN .mat file ({error}); download it again") from None
    shape = shapes.get("X")
    if shape is None or len(shape) != 4:
        raise DataError(f"{path} has no 'X' array of [32, 32, 3, N]: is it SVHN's cropped-digits format?")
    return int(shape[3])


def _read_split(files: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of ``files`` in one preallocated uint8 tensor, reading one file at a time.

    (``svhn``'s training split is 604388 images: its two files are never both in memory
    beside the tensor.)
    """
    counts = [_image_count(path) for path in files]
    out = torch.empty((sum(counts), 3, _NATIVE_SIZE, _NATIVE_SIZE), dtype=torch.uint8)
    targets = []
    start = 0
    for path, count in zip(files, counts, strict=True):
        images, labels = read_svhn_mat(path)
        uint8_images(images, out=out[start : start + count])
        targets.append(labels)
        start += count
        del images
    return out, torch.from_numpy(np.concatenate(targets))


def _build(name: str, config: Config, device: torch.device, train_files: list[str]) -> SSLData:
    folder = locate(name, config.data_dir)
    train_images, train_targets = _read_split([folder / file for file in train_files])
    test_samples, test_targets = _read_split([folder / "test_32x32.mat"])
    size, shift = crop_geometry(config, _NATIVE_SIZE)
    return benchmark_split(
        name,
        config,
        device,
        num_classes=10,
        train_images=resize_images(train_images, size),
        train_targets=train_targets,
        test_samples=resize_images(test_samples, size),
        test_targets=test_targets,
        augment=benchmark_augment(_MEAN, _STD, shift, flip=False),
        default_net="wrn_28_2",
    )


def build_svhn(config: Config, device: torch.device) -> SSLData:
    return _build("svhn", config, device, ["train_32x32.mat", "extra_32x32.mat"])


def build_svhn_noextra(config: Config, device: torch.device) -> SSLData:
    return _build("svhn_noextra", config, device, ["train_32x32.mat"])
