"""EuroSAT (RGB): 27000 Sentinel-2 satellite images of 64x64 in 10 land-use classes, as USB uses it.

Files: the JPEG images of ``EuroSAT.zip`` (the RGB release, https://github.com/phelber/EuroSAT,
https://madm.dfki.de/files/sentinel/EuroSAT.zip; ``semilearn data download eurosat``
fetches and unpacks it into ``<data_dir>/eurosat/2750/``), one folder per class, in
USB's place::

    <data_dir>/eurosat/AnnualCrop/AnnualCrop_1.jpg ...
    <data_dir>/eurosat/Forest/ ...            (the ten class folders)

The folder the archive unpacks to (``2750/`` or ``EuroSAT_RGB/``) is accepted inside
``<data_dir>/eurosat/`` or ``<data_dir>`` too.

USB's split (``semilearn/datasets/cv_datasets/eurosat.py``): the classes in sorted folder
order; within each class the files in sorted name order, the first
``int((0.6 + 0.2) * n)`` of them (80%, rounded down) are the training split and the rest
the test split, so 21600 training and 5400 test images. ``num_labels`` labelled images,
``num_labels // 10`` of each class, are drawn from the training split by ``seed``
exactly as USB draws them (its shuffle of the split, then of each class, with NumPy's
generator seeded by ``seed``); the whole training split is the unlabelled set.

USB's views (``img_size: 32``, ``crop_ratio: 0.875`` in the usb_cv configs): every image
resized to ``img_size`` (here once, when loading); weak: a reflect-padded random crop
shifting by up to ``int(img_size * (1 - crop_ratio))`` pixels, horizontal and vertical
flips; strong: the same, then RandAugment(3) with cutout; evaluation: the resized image
(no centre crop). Normalisation: mean 0.5, std 0.5 per channel.

Memory: 3 x img_size^2 bytes per image (3 KB at 32 px, 79 MB for the data set).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import DataError
from .base import SSLData, check_num_classes
from .common import benchmark_augment, benchmark_split, crop_geometry, usb_shuffled_labelled_indices
from .custom import image_files
from .imagefiles import decode_files, resize_exactly

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["build_eurosat", "EUROSAT_CLASSES", "eurosat_files", "usb_eurosat_split"]

EUROSAT_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                   "PermanentCrop", "Residential", "River", "SeaLake")
EUROSAT_URL = "https://madm.dfki.de/files/sentinel/EuroSAT.zip"
_MEAN = (0.5, 0.5, 0.5)
_STD = (0.5, 0.5, 0.5)
_NATIVE_SIZE = 64
_TRAIN_FRACTION = 0.6 + 0.2  # USB: TRAIN_SPLIT_PERCENT + VALIDATION_SPLIT_PERCENT, summed as USB sums them


def _class_root(data_dir: str) -> Path:
    """The folder holding the ten class folders (USB's ``<data_dir>/eurosat`` first)."""
    root = Path(data_dir).expanduser()
    candidates = [root / "eurosat", root / "eurosat" / "2750", root / "eurosat" / "EuroSAT_RGB",
                  root / "2750", root / "EuroSAT_RGB", root]
    for folder in candidates:
        if all((folder / name).is_dir() for name in EUROSAT_CLASSES):
            return folder
    # name what is missing where the copy is most complete (USB's place when there is none)
    home = max(candidates, key=lambda folder: sum((folder / name).is_dir() for name in EUROSAT_CLASSES))
    if not any((home / name).is_dir() for name in EUROSAT_CLASSES):
        home = candidates[0]
    missing = next(name for name in EUROSAT_CLASSES if not (home / name).is_dir())
    raise DataError(
        f"eurosat: {home / missing}/ not found (data_dir is '{data_dir}'); run `semilearn data download eurosat "
        f"--data-dir {data_dir}` or unzip the RGB EuroSAT.zip ({EUROSAT_URL}) so that {home}/ holds the ten class "
        f"folders ({', '.join(EUROSAT_CLASSES[:3])} ...)"
    )


def eurosat_files(data_dir: str) -> tuple[list[Path], list[int]]:
    """Every image file and its class, class by class in sorted order (torchvision ``ImageFolder``'s order)."""
    root = _class_root(data_dir)
    files: list[Path] = []
    targets: list[int] = []
    for label, name in enumerate(EUROSAT_CLASSES):
        found = image_files(root / name)
        if not found:
            raise DataError(f"eurosat: {root / name}/ has no images; unzip EuroSAT.zip ({EUROSAT_URL}) again")
        files += found
        targets += [label] * len(found)
    return files, targets


def usb_eurosat_split(targets: list[int]) -> tuple[list[int], list[int]]:
    """USB's training and test indices: per class, the first 80% (rounded down) and the rest."""
    train: list[int] = []
    test: list[int] = []
    start = 0
    for label in sorted(set(targets)):
        count = targets.count(label)
        cut = int(_TRAIN_FRACTION * count)
        train += range(start, start + cut)
        test += range(start + cut, start + count)
        start += count
    return train, test


def build_eurosat(config: Config, device: torch.device) -> SSLData:
    files, targets = eurosat_files(config.data_dir)
    train_index, test_index = usb_eurosat_split(targets)
    size, shift = crop_geometry(config, _NATIVE_SIZE)
    images = decode_files(files, resize_exactly(size, size), (size, size))
    labels = torch.tensor(targets, dtype=torch.int64)
    train = torch.tensor(train_index, dtype=torch.int64)
    test = torch.tensor(test_index, dtype=torch.int64)
    check_num_classes(config.num_classes, len(EUROSAT_CLASSES), "eurosat")
    labelled = usb_shuffled_labelled_indices(labels[train].numpy(), config.num_labels, len(EUROSAT_CLASSES), config.seed)
    return benchmark_split(
        "eurosat",
        config,
        device,
        num_classes=len(EUROSAT_CLASSES),
        train_images=images[train],
        train_targets=labels[train],
        test_samples=images[test],
        test_targets=labels[test],
        augment=replace(benchmark_augment(_MEAN, _STD, shift, flip=True), vflip=True),
        default_net="wrn_28_2",
        classes=EUROSAT_CLASSES,
        labelled_indices=labelled,
    )
