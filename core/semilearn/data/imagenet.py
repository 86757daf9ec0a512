"""ImageNet (ILSVRC-2012) in USB's layout, as USB's classic-CV ImageNet files use it.

Files, in USB's place (``semilearn/datasets/cv_datasets/imagenet.py``)::

    <data_dir>/imagenet/train/<class>/*.JPEG   training images, one folder per class
    <data_dir>/imagenet/val/<class>/*.JPEG     evaluation images, the same class folders

(``<data_dir>/train/`` and ``<data_dir>/val/`` are accepted too.) ImageNet's validation
images come in one folder; sort them into class folders first (the usual ``valprep.sh``
of PyTorch's ImageNet example does). The classes are the folder names of ``train/`` in
sorted order (``n01440764`` is class 0), as torchvision's ``ImageFolder`` numbers them;
``val/`` must have the same folders. Images are the files of each class folder and its
subfolders whose names end in ``.jpg``, ``.jpeg``, ``.png``, ``.ppm``, ``.bmp``, ``.pgm``,
``.tif``, ``.tiff`` or ``.webp`` (any case: USB's list), in sorted order of their paths;
hidden files are left out. Pillow decodes them (grey and CMYK files become RGB).

**Which images are labelled (USB's rule).** With ``N`` training images, class ``c`` of
``n_c`` images gets ``int(n_c * (num_labels / N))`` labelled images, so the total is
``num_labels`` or a little under (ImageNet at ``num_labels: 100000``: 1300 images give
101). They are drawn by Python's ``random.Random(seed)``, as USB's ``train.py`` seeds
Python's generator with ``seed`` before building the data: USB lists ``train/`` twice
before choosing, and each listing shuffles the file names of every class folder, class by
class in sorted order; the first listing's shuffles are discarded, the second keeps the
first ``int(n_c * num_labels / N)`` names of each shuffled class. The same draws are
made here. Where this differs from USB: USB shuffles the names in the order the file
system lists them (``os.listdir``, which differs between file systems and copies), so
USB's own choice is not reproducible from machine to machine; here they are shuffled in
sorted order, so the same files and ``seed`` give the same labelled images everywhere.
USB also counts non-image files of a class folder in ``n_c`` and shuffles each subfolder
of a class on its own; on ImageNet's folders (images only, no subfolders) that changes
nothing. The labelled images come class by class, in the order drawn. The unlabelled set
is every training image, the labelled ones included (USB's ``include_lb_to_ulb``),
class by class in sorted order; evaluation uses ``val/``.

**Views** are those of Semi-Aves (:mod:`semilearn.data.semi_fgvc`): training images stored
at ``S x S`` with ``S = int(img_size / crop_ratio)`` (256 at USB's 224 and 0.875); weak: a
random ``img_size`` crop and a horizontal flip; strong: a random resized crop, a flip,
RandAugment(3) with cutout; evaluation: the shorter side resized to ``S`` and the centre
``img_size`` crop; ImageNet normalisation. The default network is USB's ``resnet50``.

**Memory.** The images are read lazily by default (``data_loading: auto``): worker
processes (``num_workers``) read, decode and resize those each step draws, and memory
holds the file names (about 100 bytes an image). Held in memory (``data_loading:
memory``), ImageNet at 256 px would take 3 x 256^2 bytes per training image, 252 GB.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .base import SSLData, check_num_classes
from .lazy import select
from .semi_fgvc import photo_geometry, photo_reading

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["build_imagenet", "labelled_positions", "class_folders", "IMAGENET_EXTENSIONS"]

# USB's ImagenetDataset's extensions (compared in lower case)
IMAGENET_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
_logger = logging.getLogger("semilearn.data")


def _root(data_dir: str) -> Path:
    """``<data_dir>/imagenet/`` (USB's place), or ``data_dir`` itself, whichever has ``train/``."""
    base = Path(data_dir).expanduser()
    for folder in (base / "imagenet", base):
        if (folder / "train").is_dir():
            return folder
    raise DataError(
        f"imagenet: {base / 'imagenet' / 'train'} not found (data_dir is '{data_dir}'); imagenet needs "
        f"train/<class>/ and val/<class>/ folders of images in {base / 'imagenet'}/, as USB reads them"
    )


def _images_of(folder: Path) -> list[str]:
    """The image files below ``folder`` (any depth, links followed), sorted; hidden files left out."""
    found: list[str] = []
    for parent, folders, names in os.walk(folder, followlinks=True):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found.extend(os.path.join(parent, name) for name in names
                     if not name.startswith(".") and name.lower().endswith(IMAGENET_EXTENSIONS))
    found.sort()
    return found


def class_folders(split: Path) -> dict[str, list[str]]:
    """Class folder name -> its image files, classes in sorted order; DataError when ``split`` has no
    class folders or one of them holds no images."""
    classes = sorted(entry.name for entry in os.scandir(split) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DataError(f"imagenet: {split} has no class folders; expected {split}/<class>/*.JPEG")
    files = {name: _images_of(split / name) for name in classes}
    empty = next((name for name in classes if not files[name]), None)
    if empty is not None:
        raise DataError(f"imagenet: {split / empty} holds no images ({', '.join(IMAGENET_EXTENSIONS)})")
    return files


def labelled_positions(counts: Sequence[int], num_labels: int, seed: int) -> list[list[int]]:
    """For classes of ``counts`` images (each in sorted file order), the positions of the labelled
    images, class by class in the order drawn: USB's rule (module docstring)."""
    total = sum(counts)
    fraction = num_labels / total  # USB: percentage = num_labels / len(dataset)
    generator = random.Random(seed)
    for count in counts:  # USB's first listing of train/: every class shuffled, the order discarded
        generator.shuffle(list(range(count)))
    chosen = []
    for count in counts:
        order = list(range(count))
        generator.shuffle(order)
        chosen.append(order[: int(count * fraction)])
    return chosen


def build_imagenet(config: Config, device: torch.device) -> SSLData:
    """ImageNet from ``<data_dir>/imagenet/train/`` and ``val/`` (layout, labelled draw and views in
    the module docstring)."""
    root = _root(config.data_dir)
    if not (root / "val").is_dir():
        raise DataError(f"imagenet: {root / 'val'} not found; imagenet needs val/<class>/ folders of images beside "
                        f"{root / 'train'}/ (ImageNet's validation images sorted into class folders)")
    train = class_folders(root / "train")
    val = class_folders(root / "val")
    if list(val) != list(train):
        only_train = sorted(set(train) - set(val))
        only_val = sorted(set(val) - set(train))
        differs = (f"{root / 'val' / only_val[0]} is a class that train/ does not have" if only_val
                   else f"{root / 'train' / only_train[0]} has no folder in val/")
        raise DataError(f"imagenet: the class folders of train/ and val/ differ ({len(train)} and {len(val)}): "
                        f"{differs}")
    classes = tuple(train)
    check_num_classes(config.num_classes, len(classes), "imagenet")
    counts = [len(files) for files in train.values()]
    total = sum(counts)
    if not 0 < config.num_labels <= total:
        raise ConfigError(f"imagenet: num_labels ({config.num_labels}) must be between 1 and the {total} training "
                          "images")
    positions = labelled_positions(counts, config.num_labels, config.seed)
    starts = np.cumsum([0, *counts[:-1]])
    labelled_rows = np.asarray([start + position for start, chosen in zip(starts, positions, strict=True)
                                for position in chosen], dtype=np.int64)
    if not len(labelled_rows):
        raise ConfigError(f"imagenet: num_labels ({config.num_labels}) labels no image: each class gets "
                          f"int(its images x {config.num_labels} / {total})")
    if len(labelled_rows) != config.num_labels:
        _logger.info(f"imagenet: {len(labelled_rows)} labelled images (num_labels {config.num_labels}: "
                     f"int(n x {config.num_labels} / {total}) of each class of n images, as USB)")
    train_files = [path for files in train.values() for path in files]
    train_targets = torch.from_numpy(np.repeat(np.arange(len(classes), dtype=np.int64), counts))
    test_files = [path for files in val.values() for path in files]
    test_targets = torch.from_numpy(np.repeat(np.arange(len(classes), dtype=np.int64),
                                             [len(files) for files in val.values()]))
    del train, val

    geometry = photo_geometry(config)
    read = photo_reading(config, geometry.decoded_bytes(total, len(test_files)))
    unlabelled = read(train_files, geometry.train_prepare, geometry.stored)
    data = SSLData(
        name="imagenet",
        num_classes=len(classes),
        labelled_samples=select(unlabelled, labelled_rows),  # lazy: rows of the one reader of train/
        labelled_targets=train_targets[torch.from_numpy(labelled_rows)],
        unlabelled_samples=unlabelled,
        unlabelled_targets=train_targets,
        test_samples=read(test_files, geometry.test_prepare, geometry.size),
        test_targets=test_targets,
        augment=geometry.augment,
        default_net="resnet50",
        classes=classes,
    )
    return data.to(device)
