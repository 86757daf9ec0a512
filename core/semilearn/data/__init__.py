"""Data sets as in-memory uint8 tensors, split the way SSL benchmarks split them.

A data set builder (see the ``register_datasets`` hook point) takes the configuration and
the device and returns an :class:`~semilearn.data.base.SSLData`: labelled, unlabelled and
test images as ``uint8`` tensors ``[N, C, H, W]`` on the run's device, integer targets,
and the :class:`~semilearn.data.augment.AugmentSpec` saying how views are made. Batches
are index draws from seeded streams (:mod:`semilearn.data.sampler`); augmentation is
batched on the device (:mod:`semilearn.data.augment`).

File-backed data sets (``cifar10``, ``cifar100``, ``svhn``, ``svhn_noextra``, ``stl10``,
``tissuemnist``; ``eurosat``, ``semi_aves`` and ``semi_inat`` of USB's usb_cv benchmark;
``imagenet`` of its classic-CV ImageNet files)
read the official files under ``data_dir`` (``semilearn data download NAME`` fetches
those with a published checksum); ``npz`` and ``image_folder`` read your own data (docs/custom-data.md). Builders
make every tensor on the host and move the finished :class:`SSLData` to the device last,
so a builder called with the CPU device leaves uint8 host tensors that can be pinned.

This module imports nothing heavy: it only lists the built-in data sets, which the
``catalog`` plugin registers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .augment import AugmentSpec
    from .base import SSLData
    from .modality import InputSpec

__all__ = ["BUILTIN_DATASETS", "BUILTIN_MODALITIES", "SSLData", "AugmentSpec", "InputSpec", "WORKER_START_VARIABLE"]

# How the lazy path's workers reading image files start (semilearn.data.lazy.worker_context)
WORKER_START_VARIABLE = "SEMILEARN_WORKER_START"


def __getattr__(name: str) -> Any:
    """``SSLData`` and ``AugmentSpec`` (what a data set builder returns) and ``InputSpec`` (what
    a network builder takes), imported on first use."""
    if name == "SSLData":
        from .base import SSLData

        return SSLData
    if name == "AugmentSpec":
        from .augment import AugmentSpec

        return AugmentSpec
    if name == "InputSpec":
        from .modality import InputSpec

        return InputSpec
    raise AttributeError(f"module 'semilearn.data' has no attribute {name!r}")

# name -> ("module:builder", description); imported when the registry is first needed
# modality name -> ("module:factory", description), see semilearn.data.modality
BUILTIN_MODALITIES: dict[str, tuple[str, str]] = {
    "image": ("semilearn.data.modality:image_views",
              "uint8 images [N, C, H, W]; flip, shift and RandAugment batched on the device"),
    "transformed": ("semilearn.data.transformed:transformed_views",
                    "a Dataset's samples made into float views [C, H, W] by the user's CPU-side transforms, "
                    "in the workers"),
}

BUILTIN_DATASETS: dict[str, tuple[str, str]] = {
    "digits": ("semilearn.data.digits:build_digits", "scikit-learn's 8x8 handwritten digits (1797 images, offline)"),
    "synthetic": ("semilearn.data.synthetic:build_synthetic", "generated 32x32x3 images of 10 classes (speed work)"),
    "cifar10": ("semilearn.data.cifar:build_cifar10", "CIFAR-10: 50000 + 10000 32x32 images, 10 classes (data_dir)"),
    "cifar100": ("semilearn.data.cifar:build_cifar100", "CIFAR-100: 50000 + 10000 32x32 images, 100 classes (data_dir)"),
    "svhn": ("semilearn.data.svhn:build_svhn", "SVHN train + extra (604388) and test 32x32 digits, as USB (data_dir)"),
    "svhn_noextra": ("semilearn.data.svhn:build_svhn_noextra", "SVHN train (73257) and test, without extra (data_dir)"),
    "stl10": ("semilearn.data.stl10:build_stl10", "STL-10: 5000 labelled + 100000 unlabelled 96x96 images (data_dir)"),
    "eurosat": ("semilearn.data.eurosat:build_eurosat",
                "EuroSAT RGB: 21600 + 5400 64x64 satellite images, 10 classes, USB's split (data_dir)"),
    "tissuemnist": ("semilearn.data.medmnist:build_tissuemnist",
                    "TissueMNIST (MedMNIST): 165466 + 47280 grey 28x28 cell images, 8 classes (data_dir)"),
    "semi_aves": ("semilearn.data.semi_fgvc:build_semi_aves",
                  "Semi-Aves: 5959 labelled + 26640 unlabelled / 8000 test bird photos, 200 classes (data_dir)"),
    "semi_inat": ("semilearn.data.semi_fgvc:build_semi_inat",
                  "Semi-iNat 2021: image lists as Semi-Aves, 810 classes (data_dir)"),
    "imagenet": ("semilearn.data.imagenet:build_imagenet",
                 "ImageNet in USB's layout: imagenet/train/<class>/, val/<class>/, read lazily (data_dir)"),
    "npz": ("semilearn.data.custom:build_npz", "your arrays: the .npz file data_dir names (docs/custom-data.md)"),
    "image_folder": ("semilearn.data.custom:build_image_folder",
                     "your images: data_dir/train/<class>/, test/<class>/ (docs/custom-data.md)"),
}
