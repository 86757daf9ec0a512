"""What the file-backed data sets share: finding their files, USB's crop geometry, the split.

Benchmark data sets live where USB keeps them, ``<data_dir>/<name>/<official layout>``
(``./data/cifar10/cifar-10-batches-py/data_batch_1`` ...), which is also where
``semilearn data download NAME`` puts them; ``<data_dir>/<official layout>`` is accepted
too, so a folder prepared for other tools works as it is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError
from .augment import AugmentSpec
from .base import SSLData, balanced_labelled_indices, check_num_classes
from .download import SOURCES, source_home

__all__ = [
    "USB_CROP_RATIO",
    "locate",
    "crop_geometry",
    "resize_images",
    "uint8_images",
    "benchmark_augment",
    "benchmark_split",
    "usb_class_split",
    "usb_files_folder",
    "channel_statistics",
    "usb_shuffled_labelled_indices",
]

# USB's classic-CV crop ratio: the weak view pads by 12.5% of the side and crops back.
USB_CROP_RATIO = 0.875
# USB's cutout colour (RandAugment's Cutout draws a (125, 123, 114) square).
_CUTOUT_GREY = (125 / 255, 123 / 255, 114 / 255)


def find_complete(candidates: Sequence[Path], files: Sequence[str | os.PathLike[str]]) -> tuple[Path, Path | None]:
    """The first of ``candidates`` that holds every one of ``files``, and None; when none
    does, the first candidate and the first of ``files`` it lacks (for the error message)."""
    for folder in candidates:
        if all((folder / relative).is_file() for relative in files):
            return folder, None
    home = candidates[0]
    return home, next(Path(relative) for relative in files if not (home / relative).is_file())


def locate(name: str, data_dir: str | os.PathLike[str]) -> Path:
    """The folder holding every file of a complete copy of benchmark ``name``.

    Raises DataError naming the first missing file, where it was looked for, and how to
    get it.
    """
    root = Path(data_dir).expanduser()
    folder, missing = find_complete([source_home(name, root), root], SOURCES[name].expected)
    if missing is None:
        return folder
    raise DataError(
        f"{name}: {folder / missing} not found (data_dir is '{data_dir}'); run `semilearn data download {name} "
        f"--data-dir {data_dir}` or point data_dir at the folder that holds {missing.parts[0]}"
    )


def crop_geometry(config: Mapping[str, Any], native_size: int) -> tuple[int, int]:
    """The image side and the weak view's shift, as USB's ``img_size`` and ``crop_ratio`` set them.

    Both keys are optional: without them the side is the data set's own and the shift is
    12.5% of it (USB's classic-CV setting: 4 pixels at 32, 12 at 96).
    """
    size = config.get("img_size") or native_size
    ratio = config.get("crop_ratio") or USB_CROP_RATIO
    if not 0 < ratio <= 1:
        raise ConfigError(f"crop_ratio must be in (0, 1], got {ratio}")
    return int(size), int(size * (1 - ratio))


def resize_images(images: torch.Tensor, size: int | tuple[int, int], chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 images ``[N, C, H, W]`` to ``size`` x ``size`` (or ``(height, width)``), bilinear and
    antialiased, rounded to whole levels; a no-op at that size."""
    height, width = (size, size) if isinstance(size, int) else size
    if tuple(images.shape[-2:]) == (height, width):
        return images
    out = torch.empty((images.shape[0], images.shape[1], height, width), dtype=torch.uint8)
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk].float()
        resized = F.interpolate(part, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def uint8_images(view: np.ndarray, chunk: int = 8192, out: torch.Tensor | None = None) -> torch.Tensor:
    """Copy an ``[N, C, H, W]`` uint8 array view (any strides, memory-mapped too) into a contiguous tensor.

    The copy goes chunk by chunk, so a transposed view of a large file never needs a
    second full-size temporary. ``out`` receives the images when given.
    """
    if view.dtype != np.uint8:
        raise DataError(f"expected uint8 images, got {view.dtype}")
    target = out if out is not None else torch.empty(view.shape, dtype=torch.uint8)
    for start in range(0, view.shape[0], chunk):
        target[start : start + chunk] = torch.from_numpy(np.ascontiguousarray(view[start : start + chunk]))
    return target


def benchmark_augment(
    mean: tuple[float, ...], std: tuple[float, ...], max_shift: int, flip: bool
) -> AugmentSpec:
    """USB's classic-CV views: reflect-padded random crop, optional flip, RandAugment(3) and cutout.

    Geometric operations fill with black (PIL's default), cutout with USB's grey (its
    luminance for one-channel images).
    """
    grey = _CUTOUT_GREY if len(mean) == 3 else (sum(_CUTOUT_GREY) / 3,) * len(mean)
    return AugmentSpec(
        mean=mean, std=std, max_shift=max_shift, padding_mode="reflect", flip=flip, num_ops=3, cutout=0.5,
        fill=0.0, cutout_fill=grey,
    )


def channel_statistics(images: Any, chunk: int = 8192, workers: int = 0,
                       on_bad_sample: str = "fail") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images ``[N, C, H, W]``, in ``[0, 1]``.

    The sums are integers, exact in any order: lazily read images (read once, by ``workers``
    processes, a batch at a time, unreadable ones handled by ``on_bad_sample``) give the same
    statistics as the same images in memory.
    """
    from .lazy import LazySamples, lazy_batches

    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.int64)
    squares = torch.zeros(channels, dtype=torch.int64)
    parts = lazy_batches(images, 256, workers, on_bad_sample=on_bad_sample) if isinstance(images, LazySamples) else \
        (images[start : start + chunk] for start in range(0, len(images), chunk))
    for part in parts:
        values = part.to(torch.int64)
        total += values.sum(dim=(0, 2, 3))
        squares += values.square().sum(dim=(0, 2, 3))
    count = max(math.prod(images.shape) // max(channels, 1), 1)
    mean = total.double() / (255.0 * count)
    std = (squares.double() / (255.0**2 * count) - mean.square()).clamp_min(0).sqrt().clamp_min(1e-3)
    return tuple(round(float(value), 4) for value in mean), tuple(round(float(value), 4) for value in std)


def usb_shuffled_labelled_indices(targets: np.ndarray, num_labels: int, num_classes: int, seed: int) -> np.ndarray:
    """USB's labelled draw for EuroSAT and MedMNIST, index for index.

    USB seeds NumPy's global generator with ``seed`` at start (nothing draws from it
    before the data set is built), shuffles the order of the whole training split, then,
    class by class, shuffles the positions of that class in the shuffled order and takes
    the first ``num_labels // num_classes``. The same legacy Mersenne Twister, seeded
    alike, gives the same draws here. Returns the chosen training indices in USB's order
    (class by class).

    Raises ConfigError as :func:`~semilearn.data.base.balanced_labelled_indices` does.
    """
    if num_labels % num_classes:
        raise ConfigError(
            f"num_labels ({num_labels}) must be a multiple of the {num_classes} classes: labels are drawn "
            "balanced across classes"
        )
    per_class = num_labels // num_classes
    generator = np.random.RandomState(seed)  # what np.random.seed(seed) sets up
    order = list(range(len(targets)))
    generator.shuffle(order)
    shuffled = np.asarray(targets)[order]
    chosen: list[int] = []
    for label in range(num_classes):
        members = np.where(shuffled == label)[0]
        if len(members) < per_class:
            raise ConfigError(
                f"num_labels ({num_labels}) asks for {per_class} labels per class, but class {label} has only "
                f"{len(members)} training images"
            )
        generator.shuffle(members)
        chosen.extend(int(index) for index in members[:per_class])
    return np.asarray(order, dtype=np.int64)[np.asarray(chosen, dtype=np.int64)]


def usb_class_split(targets: np.ndarray, num_labels: int, num_classes: int, seed: int,
                    noun: str = "samples") -> tuple[np.ndarray, np.ndarray]:
    """USB's balanced split of its text and audio loaders: ``np.random.seed(seed)``, then
    class by class a shuffle of that class's indices and the first ``num_labels //
    num_classes`` of them. Returns (labelled indices, unlabelled indices = the labelled
    ones followed by the rest), class by class. ``noun`` names the samples in errors.
    """
    if num_labels % num_classes:
        raise ConfigError(f"num_labels ({num_labels}) must be a multiple of the {num_classes} classes: labels are "
                          "drawn balanced across classes")
    per_class = num_labels // num_classes
    generator = np.random.RandomState(seed % 2**32)  # USB: np.random.seed(seed), then np.random.shuffle
    labelled: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    for label in range(num_classes):
        members = np.where(targets == label)[0]
        if len(members) < per_class:
            raise ConfigError(f"num_labels ({num_labels}) asks for {per_class} labels per class, but class {label} "
                              f"has only {len(members)} training {noun}")
        generator.shuffle(members)
        labelled.append(members[:per_class])
        rest.append(members[per_class:])
    labelled_index = np.concatenate(labelled)
    return labelled_index, np.concatenate([labelled_index, *rest])


def usb_files_folder(name: str, data_dir: str, files: Sequence[str], what: str) -> Path:
    """``<data_dir>/<name>/`` (or ``data_dir`` itself) holding every one of ``files``: USB's
    files of a text or audio data set, which no downloader fetches. Raises DataError naming
    the first missing file, where it was looked for, and which files (``what``: "json
    files") to put there.
    """
    root = Path(data_dir).expanduser()
    folder, missing = find_complete([root / name, root], files)
    if missing is None:
        return folder
    raise DataError(
        f"{name}: {folder / missing} not found (data_dir is '{data_dir}'); put USB's {what} of {name} "
        f"({', '.join(files)}) in {folder}"
    )


def benchmark_split(
    name: str,
    config: Any,
    device: torch.device,
    *,
    num_classes: int,
    train_images: torch.Tensor,
    train_targets: torch.Tensor,
    test_samples: torch.Tensor,
    test_targets: torch.Tensor,
    augment: AugmentSpec,
    default_net: str,
    unlabelled_samples: torch.Tensor | None = None,
    unlabelled_targets: torch.Tensor | None = None,
    classes: tuple[str, ...] | None = None,
    labelled_indices: np.ndarray | None = None,
) -> SSLData:
    """USB's split: ``num_labels`` training images balanced across classes, drawn by ``seed``.

    ``labelled_indices`` gives the labelled training images instead of the draw (USB's own
    draw where it is reproduced: :func:`usb_shuffled_labelled_indices`).

    The unlabelled set is the whole training split unless ``unlabelled_samples`` is given
    (then it is that, e.g. STL-10's unlabelled images together with the training images).
    Tensors are built on the host and moved to ``device`` at the end (no copy for the CPU).
    """
    check_num_classes(config.num_classes, num_classes, name)
    labels = train_targets.numpy()
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{name}: training labels must be in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
    if labelled_indices is None:
        labelled_indices = balanced_labelled_indices(labels, config.num_labels, num_classes, config.seed)
    labelled = torch.from_numpy(labelled_indices)
    if unlabelled_samples is None:
        unlabelled_samples, unlabelled_targets = train_images, train_targets
    data = SSLData(
        name=name,
        num_classes=num_classes,
        labelled_samples=train_images[labelled],
        labelled_targets=train_targets[labelled],
        unlabelled_samples=unlabelled_samples,
        unlabelled_targets=unlabelled_targets,
        test_samples=test_samples,
        test_targets=test_targets,
        augment=augment,
        default_net=default_net,
        classes=classes,
    )
    return data.to(device)
