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
    "write_eurosat",
    "write_tissuemnist",
    "write_semi_fgvc",
    "write_image_folder",
    "write_imagenet",
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


def _save_jpeg(path: Path, image: np.ndarray) -> None:
    """``image`` ``[C, H, W]`` uint8 as a JPEG file (as EuroSAT and the FGVC sets publish them)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(path, format="JPEG", quality=95)


EUROSAT_NAMES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
                 "PermanentCrop", "Residential", "River", "SeaLake")


def write_eurosat(data_dir: Path, counts: tuple[int, ...] = (6, 7, 8, 9, 10, 11, 12, 5, 6, 7),
                  seed: int = 0) -> dict[str, list[Path]]:
    """``data_dir/eurosat/<class>/<class>_<i>.jpg`` (i from 1, as in EuroSAT.zip), 64x64 JPEGs,
    ``counts[k]`` images of class k; returns each class's files in the order written."""
    written: dict[str, list[Path]] = {}
    for label, (name, count) in enumerate(zip(EUROSAT_NAMES, counts, strict=True)):
        images = class_images(count, 10, 64, seed + label)[0][label::10]  # count images of this class's colour
        written[name] = []
        for index in range(count):
            path = data_dir / "eurosat" / name / f"{name}_{index + 1}.jpg"
            _save_jpeg(path, images[index])
            written[name].append(path)
    return written


def write_tissuemnist(data_dir: Path, per_class: int = 4, val_per_class: int = 1, test_per_class: int = 2,
                      seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``data_dir/medmnist/tissuemnist/tissuemnist.npz`` in MedMNIST's layout: uint8 images ``[N, 28, 28]``,
    uint8 labels ``[N, 1]``; returns ``split -> (images, labels [N])``."""
    folder = data_dir / "medmnist" / "tissuemnist"
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    written = {}
    for offset, (split, count) in enumerate((("train", per_class), ("val", val_per_class), ("test", test_per_class))):
        images, labels = class_images(count, 8, 28, seed + offset, channels=1)
        arrays[f"{split}_images"] = images[:, 0]
        arrays[f"{split}_labels"] = labels.astype(np.uint8).reshape(-1, 1)
        written[split] = (images[:, 0], labels)
    np.savez_compressed(folder / "tissuemnist.npz", **arrays)
    return written


def write_semi_fgvc(data_dir: Path, task: str = "semi_aves", num_classes: int = 3, per_class: int = 3,
                    unlabelled: int = 5, test_per_class: int = 2, size: tuple[int, int] = (60, 40),
                    seed: int = 0) -> dict[str, list[tuple[Path, int]]]:
    """``data_dir/semi_fgvc/<task>/``: ``l_train_val.txt``, ``u_train_in.txt``, ``test.txt`` (lines
    ``<path> <class>``, as cvl-umass/ssl-evaluation publishes them) and the JPEGs they name
    (``trainval_images/<c>/<i>.jpg``, ``u_train_in/<i>.jpg``, ``test/<c>/<i>.jpg``), ``size`` (width, height);
    returns each list's (file, class) entries."""
    folder = data_dir / "semi_fgvc" / task
    rng = np.random.default_rng(seed)
    width, height = size
    written: dict[str, list[tuple[Path, int]]] = {}

    def image(label: int) -> np.ndarray:
        colour = np.array([40 + 60 * (label % 4), 200 - 50 * (label % 3), 90 + 30 * (label % 5)])
        noise = rng.integers(-25, 26, size=(3, height, width))
        picture = np.clip(colour[:, None, None] + noise, 0, 255).astype(np.uint8)
        picture[:, : height // 4, : width // 8] = 255  # an asymmetric mark
        return picture

    entries = {
        "l_train_val.txt": [(f"trainval_images/{c}/{i}.jpg", c) for c in range(num_classes) for i in range(per_class)],
        "u_train_in.txt": [(f"u_train_in/{i}.jpg", -1) for i in range(unlabelled)],
        "test.txt": [(f"test/{c}/{i}.jpg", c) for c in range(num_classes) for i in range(test_per_class)],
    }
    for list_name, rows in entries.items():
        written[list_name] = []
        for relative, label in rows:
            _save_jpeg(folder / relative, image(max(label, 0)))
            written[list_name].append((folder / relative, label))
        (folder / list_name).write_text("".join(f"{relative} {label}\n" for relative, label in rows))
    return written


def write_image_folder(root: Path, per_class: int = 8, num_classes: int = 4, size: int = 12,
                       test_per_class: int = 3, seed: int = 0, image_format: str = "PNG") -> Written:
    """``train/<class>/NNNNN.png`` and ``test/<class>/...`` (dataset: image_folder), classes ``c0`` ...;
    PNG keeps the pixels exact, JPEG makes files of a realistic size."""
    from PIL import Image

    suffix = ".png" if image_format == "PNG" else ".jpg"
    parts = []
    for split, count, split_seed in (("train", per_class, seed), ("test", test_per_class, seed + 1)):
        images, targets = class_images(count, num_classes, size, split_seed)
        for index, (image, target) in enumerate(zip(images, targets, strict=True)):
            folder = root / split / f"c{target}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(
                folder / f"{index:05d}{suffix}", format=image_format, **({"quality": 90} if suffix == ".jpg" else {}))
        parts.append((images, targets))
    (train_images, train_targets), (test_images, test_targets) = parts
    return Written(root, train_images, train_targets, test_images, test_targets)


IMAGENET_CLASSES = ("n01440764", "n01443537", "n01484850")


def write_imagenet(data_dir: Path, train_counts: tuple[int, ...] = (5, 7, 6), val_per_class: int = 2,
                   size: tuple[int, int] = (50, 40), seed: int = 0) -> dict[str, dict[str, list[Path]]]:
    """``data_dir/imagenet/train/<wnid>/<wnid>_<i>.JPEG`` and ``val/<wnid>/ILSVRC2012_val_<k>.JPEG`` (USB's
    layout, ImageNet's names), ``size`` (width, height) JPEGs whose colour follows the class; classes
    ``IMAGENET_CLASSES[:len(train_counts)]``; returns split -> class -> files in sorted order."""
    rng = np.random.default_rng(seed)
    width, height = size
    written: dict[str, dict[str, list[Path]]] = {"train": {}, "val": {}}
    number = 0
    for label, (wnid, count) in enumerate(zip(IMAGENET_CLASSES, train_counts, strict=False)):
        colour = np.array([60 + 70 * label, 200 - 60 * label, 100 + 40 * (label % 2)])
        for split, names in (("train", [f"{wnid}_{10 * index + 3}.JPEG" for index in range(count)]),
                             ("val", [f"ILSVRC2012_val_{number + index + 1:08d}.JPEG" for index in range(val_per_class)])):
            written[split][wnid] = []
            for name in names:
                picture = np.clip(colour[:, None, None] + rng.integers(-20, 21, size=(3, height, width)), 0, 255)
                picture = picture.astype(np.uint8)
                picture[:, : height // 4, : width // 8] = 255  # an asymmetric mark
                _save_jpeg(data_dir / "imagenet" / split / wnid / name, picture)
                written[split][wnid].append(data_dir / "imagenet" / split / wnid / name)
            written[split][wnid].sort()
        number += val_per_class
    return written


def tar_gz(folder: Path) -> bytes:
    """``folder`` as a .tar.gz archive whose top-level entry is the folder (as the official archives)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=folder.name)
    return buffer.getvalue()
