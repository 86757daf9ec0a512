"""TissueMNIST (MedMNIST v2): 236386 grey 28x28 images of human kidney cortex cells, 8 classes, as USB uses it.

File (``semilearn data download tissuemnist`` fetches it from MedMNIST's Zenodo record):
``<data_dir>/medmnist/tissuemnist/tissuemnist.npz`` (USB's place; ``<data_dir>/tissuemnist.npz``
is accepted too). The archive holds uint8 ``train_images`` ``[165466, 28, 28]``,
``val_images`` ``[23640, 28, 28]``, ``test_samples`` ``[47280, 28, 28]`` and the matching
``*_labels`` ``[N, 1]`` (classes 0..7).

USB's use (``semilearn/datasets/cv_datasets/medmnist.py``): the training split alone is
the training split (the validation split is not used); ``num_labels`` labelled images,
``num_labels // 8`` of each class, are drawn from it by ``seed`` exactly as USB draws
them (as for EuroSAT: :func:`~semilearn.data.common.usb_shuffled_labelled_indices`) and
all of it is the unlabelled set; evaluation on the test split. Images are converted to RGB (the grey level in all
three channels) and resized to ``img_size``.

USB's views (``img_size: 32``, ``crop_ratio: 0.95`` in the usb_cv configs): weak:
horizontal and vertical flips and a reflect-padded random crop shifting by up to
``int(img_size * (1 - crop_ratio))`` pixels (1 at 32 px); strong: the same, then
RandAugment(3) from the pool without colour operations (``exclude_color_aug``) and
cutout; evaluation: the resized image. Normalisation: mean 0.5, std 0.5.

Memory: 3 x img_size^2 bytes per image (3 KB at 32 px; 653 MB for train and test).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import DataError
from .augment import NO_COLOUR_OPS
from .base import SSLData, check_num_classes
from .common import (
    benchmark_augment,
    benchmark_split,
    crop_geometry,
    locate,
    resize_images,
    usb_shuffled_labelled_indices,
)

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["build_tissuemnist", "read_medmnist", "TISSUEMNIST_CLASSES"]

# MedMNIST's INFO["tissuemnist"]["label"]
TISSUEMNIST_CLASSES = ("Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule",
                       "Glomerular endothelial cells", "Interstitial endothelial cells", "Leukocytes", "Podocytes",
                       "Proximal Tubule Segments", "Thick Ascending Limb")
_MEAN = (0.5, 0.5, 0.5)
_STD = (0.5, 0.5, 0.5)
_NATIVE_SIZE = 28


def read_medmnist(name: str, data_dir: str, splits: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``split -> (images [N, H, W] uint8, labels [N] int64)`` of a MedMNIST 2-D ``.npz`` file."""
    path = locate(name, data_dir) / f"{name}.npz"
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            wanted = [key for split in splits for key in (f"{split}_images", f"{split}_labels")]
            missing = [key for key in wanted if key not in keys]
            if missing:
                raise DataError(f"{path} has no array '{missing[0]}': is it MedMNIST's {name}.npz? Download it again")
            arrays = {key: archive[key] for key in wanted}
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path} is not a readable .npz file ({error}); download it again") from None
    out = {}
    for split in splits:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"].reshape(-1).astype(np.int64)
        if images.dtype != np.uint8 or images.ndim != 3 or len(images) != len(labels):
            raise DataError(
                f"{path}: expected uint8 {split}_images [N, H, W] and N {split}_labels, got {images.dtype} "
                f"{list(images.shape)} and {len(labels)} labels"
            )
        out[split] = (images, labels)
    return out


def _rgb(images: np.ndarray, size: int) -> torch.Tensor:
    """Grey ``[N, H, W]`` to uint8 RGB ``[N, 3, size, size]`` (resized, then the level copied to each channel)."""
    grey = resize_images(torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1), size)
    return grey.expand(-1, 3, -1, -1).contiguous()


def build_tissuemnist(config: Config, device: torch.device) -> SSLData:
    arrays = read_medmnist("tissuemnist", config.data_dir, ("train", "test"))
    size, shift = crop_geometry(config, _NATIVE_SIZE)
    (train_images, train_labels), (test_samples, test_labels) = arrays["train"], arrays["test"]
    spec = replace(benchmark_augment(_MEAN, _STD, shift, flip=True), vflip=True, strong_ops=NO_COLOUR_OPS)
    check_num_classes(config.num_classes, len(TISSUEMNIST_CLASSES), "tissuemnist")
    labelled = usb_shuffled_labelled_indices(train_labels, config.num_labels, len(TISSUEMNIST_CLASSES), config.seed)
    return benchmark_split(
        "tissuemnist",
        config,
        device,
        num_classes=len(TISSUEMNIST_CLASSES),
        train_images=_rgb(train_images, size),
        train_targets=torch.from_numpy(train_labels),
        test_samples=_rgb(test_samples, size),
        test_targets=torch.from_numpy(test_labels),
        augment=spec,
        default_net="wrn_28_2",
        classes=TISSUEMNIST_CLASSES,
        labelled_indices=labelled,
    )
