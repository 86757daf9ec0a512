"""CIFAR-10 and CIFAR-100 from their official python-pickle batches (no torchvision).

Files (``semilearn data download cifar10`` / ``cifar100`` fetch and unpack them):

* ``<data_dir>/cifar10/cifar-10-batches-py/data_batch_1`` ... ``data_batch_5``, ``test_batch``
* ``<data_dir>/cifar100/cifar-100-python/train``, ``test``

Each file is a pickled dict whose ``data`` is a uint8 array ``[N, 3072]`` (the red, green
and blue 32x32 planes of an image, row by row) and whose ``labels`` (CIFAR-10) or
``fine_labels`` (CIFAR-100) are its classes. The files are read with an unpickler that
accepts nothing but plain containers and numpy arrays, so a tampered file cannot run code.

Split, normalisation and views follow USB: ``num_labels`` labelled training images
balanced across classes by ``seed``, all 50000 training images unlabelled, the 10000 test
images for evaluation; 4-pixel reflect-padded crops, horizontal flips, RandAugment(3)
with cutout; the default network is WRN-28-2 (CIFAR-10) or WRN-28-8 (CIFAR-100).
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import DataError
from .base import SSLData
from .common import benchmark_augment, benchmark_split, crop_geometry, locate, resize_images

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["build_cifar10", "build_cifar100", "read_cifar_batch", "cifar_arrays"]

# USB's normalisation (CIFAR-10 uses the ImageNet statistics there).
_MEAN = {"cifar10": (0.485, 0.456, 0.406), "cifar100": (129.3 / 255, 124.1 / 255, 112.4 / 255)}
_STD = {"cifar10": (0.229, 0.224, 0.225), "cifar100": (68.2 / 255, 65.4 / 255, 70.4 / 255)}
_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100),
}
_NATIVE_SIZE = 32


def _numpy_function(module: str, name: str) -> Any:
    """``numpy.core.<module>.<name>`` under numpy 1 or 2 (pickles name either spelling)."""
    import importlib

    try:
        return getattr(importlib.import_module(f"numpy._core.{module}"), name)  # numpy 2
    except ImportError:  # pragma: no cover - numpy 1
        return getattr(importlib.import_module(f"numpy.core.{module}"), name)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses every other global."""

    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes pickled by Python 3 at protocol 2
    }

    _FUNCTIONS = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> Any:
        package, _, submodule = module.rpartition(".")
        if package in ("numpy.core", "numpy._core") and (submodule, name) in self._FUNCTIONS:
            return _numpy_function(submodule, name)
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_batch(path: Path, labels_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` int64 of one CIFAR pickle file."""
    try:
        with open(path, "rb") as stream:
            content = _ArrayUnpickler(stream, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise DataError(f"{path} is not a CIFAR python batch ({error}); download it again") from None
    if not isinstance(content, dict):
        raise DataError(f"{path} is not a CIFAR python batch (it holds a {type(content).__name__})")
    content = {key.encode() if isinstance(key, str) else key: value for key, value in content.items()}
    if b"data" not in content or labels_key not in content:
        raise DataError(f"{path} has no '{labels_key.decode()}' and 'data' entries: is it the other CIFAR?")
    data = np.asarray(content[b"data"])
    labels = np.asarray(content[labels_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * _NATIVE_SIZE**2 or len(data) != len(labels):
        raise DataError(
            f"{path}: expected uint8 data of shape [N, 3072] and N labels, got {data.dtype} {list(data.shape)} "
            f"and {len(labels)} labels"
        )
    return data.reshape(-1, 3, _NATIVE_SIZE, _NATIVE_SIZE), labels


def cifar_arrays(name: str, data_dir: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train images, train targets, test images, test targets of ``cifar10`` or ``cifar100``."""
    folder_name, train_files, test_files, labels_key, num_classes = _LAYOUT[name]
    folder = locate(name, data_dir) / folder_name

    def read(files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [read_cifar_batch(folder / file, labels_key) for file in files]
        images = np.concatenate([images for images, _ in parts])
        labels = np.concatenate([labels for _, labels in parts])
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"{folder}: labels must be in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
        return torch.from_numpy(images), torch.from_numpy(labels)

    train_images, train_targets = read(train_files)
    test_samples, test_targets = read(test_files)
    return train_images, train_targets, test_samples, test_targets


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _build(name: str, config: Config, device: torch.device, default_net: str) -> SSLData:
    train_images, train_targets, test_samples, test_targets = cifar_arrays(name, config.data_dir)
    size, shift = crop_geometry(config, _NATIVE_SIZE)
    return benchmark_split(
        name,
        config,
        device,
        num_classes=_LAYOUT[name][4],
        train_images=resize_images(train_images, size),
        train_targets=train_targets,
        test_samples=resize_images(test_samples, size),
        test_targets=test_targets,
        augment=benchmark_augment(_MEAN[name], _STD[name], shift, flip=True),
        default_net=default_net,
        classes=CIFAR10_CLASSES if name == "cifar10" else None,
    )


def build_cifar10(config: Config, device: torch.device) -> SSLData:
    return _build("cifar10", config, device, "wrn_28_2")


def build_cifar100(config: Config, device: torch.device) -> SSLData:
    return _build("cifar100", config, device, "wrn_28_8")
