"""Tiny data set files in the official formats, for tests (importable from any test module).

Each writer draws uint8 images ``[N, C, H, W]`` whose colour depends on the class (so a
few steps can learn something), writes them the way the data set's authors publish them,
and returns what it wrote in that canonical layout, so a test can check that the loader
reads pixels, orientation and labels back exactly. Sizes are per class and small.

    from datafiles import write_cifar10
    write_cifar10(tmp_path / "data")        # then: --set dataset=cifar10 --set data_dir=...
"""

from __future__ import annotations

import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Written",
    "class_images",
    "write_cifar10",
    "write_cifar100",
    "write_svhn",
    "write_stl10",
    "tar_gz",
]


@dataclass
class Written:
    """What a writer put on disk, in the canonical layout ``[N, C, H, W]``."""

    folder: Path
    train_images: np.ndarray
    train_targets: np.ndarray
    test_images: np.ndarray
    test_targets: np.ndarray
    extra_images: np.ndarray | None = None  # SVHN's extra split, STL-10's unlabelled split
    extra_targets: np.ndarray | None = None


def class_images(per_class: int, num_classes: int, size: int, seed: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` noisy images of each class, the class coded in their colour; labels interleaved."""
    rng = np.random.default_rng(seed)
    targets = np.tile(np.arange(num_classes), per_class)
    colours = np.random.default_rng(1000 + num_classes).integers(30, 226, size=(num_classes, channels))
    noise = rng.integers(-30, 31, size=(len(targets), channels, size, size))
    images = np.clip(colours[targets][:, :, None, None] + noise, 0, 255).astype(np.uint8)
    # an asymmetric mark (top-left corner bright) so a transposed or flipped read shows up
    images[:, :, : size // 4, : size // 8] = 255
    return images, targets.astype(np.int64)


def _pickle_batch(path: Path, images: np.ndarray, labels: np.ndarray, labels_key: bytes) -> None:
    content = {
        b"batch_label": b"generated batch",
        labels_key: [int(label) for label in labels],
        b"data": images.reshape(len(images), -1),  # red plane, green plane, blue plane; row by row
        b"filenames": [f"image_{i}.png".encode() for i in range(len(images))],
    }
    if labels_key == b"fine_labels":
        content[b"coarse_labels"] = [int(label) // 5 for label in labels]
    with open(path, "wb") as stream:
        pickle.dump(content, stream, protocol=2)


def write_cifar10(data_dir: Path, per_class: int = 5, test_per_class: int = 2, seed: int = 0) -> Written:
    """``data_dir/cifar10/cifar-10-batches-py/``: five training batches, a test batch, the meta file."""
    folder = data_dir / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_targets = class_images(per_class, 10, 32, seed)
    test_images, test_targets = class_images(test_per_class, 10, 32, seed + 1)
    for index, part in enumerate(np.array_split(np.arange(len(train_targets)), 5), start=1):
        _pickle_batch(folder / f"data_batch_{index}", train_images[part], train_targets[part], b"labels")
    _pickle_batch(folder / "test_batch", test_images, test_targets, b"labels")
    with open(folder / "batches.meta", "wb") as stream:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}, stream, protocol=2)
    return Written(folder, train_images, train_targets, test_images, test_targets)


def write_cifar100(data_dir: Path, per_class: int = 1, test_per_class: int = 1, seed: int = 0) -> Written:
    """``data_dir/cifar100/cifar-100-python/``: ``train``, ``test`` and ``meta``."""
    folder = data_dir / "cifar100" / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_targets = class_images(per_class, 100, 32, seed)
    test_images, test_targets = class_images(test_per_class, 100, 32, seed + 1)
    _pickle_batch(folder / "train", train_images, train_targets, b"fine_labels")
    _pickle_batch(folder / "test", test_images, test_targets, b"fine_labels")
    with open(folder / "meta", "wb") as stream:
        pickle.dump({b"fine_label_names": [f"class{i}".encode() for i in range(100)]}, stream, protocol=2)
    return Written(folder, train_images, train_targets, test_images, test_targets)


def _savemat(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    from scipy.io import savemat

    # X: [32, 32, 3, N] (height, width, channel, image); y: [N, 1], the digit 0 written as 10
    y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
    savemat(path, {"X": images.transpose(2, 3, 1, 0), "y": y})


def write_svhn(data_dir: Path, per_class: int = 3, test_per_class: int = 2, extra_per_class: int = 2,
               seed: int = 0) -> Written:
    """``data_dir/svhn/train_32x32.mat``, ``test_32x32.mat`` and (``extra_per_class`` > 0) ``extra_32x32.mat``."""
    folder = data_dir / "svhn"
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_targets = class_images(per_class, 10, 32, seed)
    test_images, test_targets = class_images(test_per_class, 10, 32, seed + 1)
    _savemat(folder / "train_32x32.mat", train_images, train_targets)
    _savemat(folder / "test_32x32.mat", test_images, test_targets)
    extra_images = extra_targets = None
    if extra_per_class:
        extra_images, extra_targets = class_images(extra_per_class, 10, 32, seed + 2)
        _savemat(folder / "extra_32x32.mat", extra_images, extra_targets)
    return Written(folder, train_images, train_targets, test_images, test_targets, extra_images, extra_targets)


def _write_stl_images(path: Path, images: np.ndarray) -> None:
    # each image 3 x 96 x 96, every channel stored column by column
    path.write_bytes(np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes())


def write_stl10(data_dir: Path, per_class: int = 2, test_per_class: int = 1, unlabelled: int = 6,
                seed: int = 0) -> Written:
    """``data_dir/stl10/stl10_binary/``: train/test images and labels (1..10), unlabelled images."""
    folder = data_dir / "stl10" / "stl10_binary"
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_targets = class_images(per_class, 10, 96, seed)
    test_images, test_targets = class_images(test_per_class, 10, 96, seed + 1)
    unlabelled_images, unlabelled_targets = class_images(1, unlabelled, 96, seed + 2)
    _write_stl_images(folder / "train_X.bin", train_images)
    (folder / "train_y.bin").write_bytes((train_targets + 1).astype(np.uint8).tobytes())
    _write_stl_images(folder / "test_X.bin", test_images)
    (folder / "test_y.bin").write_bytes((test_targets + 1).astype(np.uint8).tobytes())
    _write_stl_images(folder / "unlabeled_X.bin", unlabelled_images)
    (folder / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    return Written(folder, train_images, train_targets, test_images, test_targets, unlabelled_images,
                   unlabelled_targets)


def tar_gz(folder: Path) -> bytes:
    """``folder`` as a .tar.gz archive whose top-level entry is the folder (as the official archives)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=folder.name)
    return buffer.getvalue()
