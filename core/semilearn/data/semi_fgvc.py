"""Semi-Aves (FGVC7, 2020) and Semi-iNat (FGVC8, 2021) from their image lists, as USB uses them.

Files, in USB's place (``semilearn/datasets/cv_datasets/aves.py``)::

    <data_dir>/semi_fgvc/<task>/l_train_val.txt   labelled images:   "<image path> <class>" per line
    <data_dir>/semi_fgvc/<task>/u_train_in.txt    unlabelled images: "<image path> <class or -1>"
    <data_dir>/semi_fgvc/<task>/test.txt          evaluation images: "<image path> <class>"
    <data_dir>/semi_fgvc/<task>/<image path>      the images (JPEG)

with ``<task>`` ``semi_aves`` or ``semi_inat``. The lists are those of
https://github.com/cvl-umass/ssl-evaluation (``data/semi_aves/*.txt``: paths such as
``trainval_images/0/0.jpg``); the images come from the challenges' pages
(https://github.com/cvl-umass/semi-inat-2020, https://github.com/visipedia/semi-inat-2021).
Image paths are read relative to the folder of the lists, as USB does, or, when the
first image of a list is not there, relative to ``<data_dir>/semi_fgvc/`` (where USB's
README puts ``trainval_images/``, ``u_train_in/`` and ``test/``). ``<data_dir>/<task>/``
is accepted for the lists too.

USB's use: every image of ``l_train_val.txt`` is labelled (5959 for Semi-Aves; USB's
``num_labels`` does not choose them: its configs say 3959, the size of ``l_train.txt``,
yet read ``l_train_val.txt``); the unlabelled set is ``u_train_in.txt`` alone (26640
for Semi-Aves; the labelled images are not added); evaluation on ``test.txt`` (8000).
Semi-Aves has 200 classes, Semi-iNat 810. Their names are read, when there, from
``<task>_species_names.txt`` (lines ``<class> <name>``, as ssl-evaluation publishes
``data/semi_aves_species_names.txt``) in ``<data_dir>/semi_fgvc/<task>/`` or
``<data_dir>/semi_fgvc/``; without it the classes are their numbers.

USB's views (``img_size: 224``, ``crop_ratio: 0.875``; side ``S = int(img_size /
crop_ratio)`` = 256): training images resized to S x S (aspect not kept); weak: a random
``img_size`` crop and a horizontal flip; strong: a random resized crop to ``img_size``
(area 8% to 100%, aspect 3/4 to 4/3), a horizontal flip, RandAugment(3) with cutout;
evaluation: the shorter side resized to S, then the centre ``img_size`` crop. ImageNet
normalisation (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225).

Here the first, deterministic step of each is done when an image is read: training images
become S x S and test images ``img_size`` x ``img_size``, uint8, so the views on the device
are USB's (one difference: the strong view's resized crop is bilinear without Pillow's
antialiasing, which matters only for crops shrunk, by at most 256/224).

Both are read lazily by default (``data_loading: auto``): worker processes read, decode and
resize the images each step draws (``num_workers``), and memory holds the file lists. Held
in memory instead (``data_loading: memory``: every image decoded once at start, threads,
minutes for Semi-Aves), they take 3 x S^2 bytes per training image (196608 bytes at 256) and
3 x img_size^2 per test image (150528 at 224): Semi-Aves 7.6 GB, Semi-iNat 2021 (9721
labelled and 313248 unlabelled images) about 64 GB.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import DataError
from .augment import AugmentSpec
from .base import SSLData, check_num_classes
from .common import USB_CROP_RATIO, benchmark_augment, crop_geometry, find_complete
from .imagefiles import decode_files, resize_exactly, resize_shorter_and_centre_crop
from .lazy import ImageFileReader, LazySamples, choose_loading

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["build_semi_aves", "build_semi_inat", "read_image_list", "LIST_FILES", "PhotoGeometry",
           "photo_geometry", "photo_reading", "IMAGENET_MEAN", "IMAGENET_STD"]

LIST_FILES = ("l_train_val.txt", "u_train_in.txt", "test.txt")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_NATIVE_SIZE = 224
_CLASSES = {"semi_aves": 200, "semi_inat": 810}
_WHERE = {
    "semi_aves": "the lists from https://github.com/cvl-umass/ssl-evaluation (data/semi_aves) and the images from "
                 "https://github.com/cvl-umass/semi-inat-2020",
    "semi_inat": "the images from https://github.com/visipedia/semi-inat-2021 and lists in that format",
}
_logger = logging.getLogger("semilearn.data")


@dataclass(frozen=True)
class PhotoGeometry:
    """USB's geometry for photographs (semi_aves, semi_inat, imagenet): training images stored at
    ``stored`` x ``stored`` (``int(img_size / crop_ratio)``), test images at ``size`` (``img_size``)
    after a resize of the shorter side to ``stored`` and a centre crop; the views of the module
    docstring, with ImageNet normalisation."""

    size: int
    stored: int

    @property
    def train_prepare(self) -> Any:
        return resize_exactly(self.stored, self.stored)  # USB: Resize((floor(img_size / crop_ratio),) * 2)

    @property
    def test_prepare(self) -> Any:
        return resize_shorter_and_centre_crop(self.stored, self.size)

    @property
    def augment(self) -> AugmentSpec:
        return replace(benchmark_augment(IMAGENET_MEAN, IMAGENET_STD, 0, flip=True), crop=self.size)

    def decoded_bytes(self, train_images: int, test_images: int) -> int:
        """What the images take decoded in memory."""
        return 3 * (self.stored * self.stored * train_images + self.size * self.size * test_images)


def photo_geometry(config: Config, native_size: int = _NATIVE_SIZE) -> PhotoGeometry:
    """The geometry ``img_size`` and ``crop_ratio`` set (224 and USB's 0.875 without them)."""
    size, _ = crop_geometry(config, native_size)
    ratio = config.get("crop_ratio") or USB_CROP_RATIO
    return PhotoGeometry(size, int(size / ratio))


def photo_reading(config: Config, decoded_bytes: int) -> Callable[[Sequence[str | Path], Any, int], Any]:
    """How image files become samples: ``read(files, prepare, side)`` gives lazy samples (worker
    processes read them as steps need them; the default for these data sets) or, with
    ``data_loading: memory``, a uint8 tensor decoded now."""
    if choose_loading(config, decoded_bytes, prefer_lazy=True) == "lazy":
        def read(files: Sequence[str | Path], prepare: Any, side: int) -> Any:
            return LazySamples(ImageFileReader(files, prepare, (side, side)), (3, side, side))
    else:
        def read(files: Sequence[str | Path], prepare: Any, side: int) -> Any:
            return decode_files(files, prepare, (side, side))
    return read


@dataclass
class ImageList:
    """The images and classes one list file names."""

    source: Path
    files: list[Path]
    targets: list[int]


def _lists_folder(task: str, data_dir: str) -> Path:
    root = Path(data_dir).expanduser()
    folder, missing = find_complete([root / "semi_fgvc" / task, root / task, root], LIST_FILES)
    if missing is None:
        return folder
    raise DataError(
        f"{task}: {folder / missing} not found (data_dir is '{data_dir}'); {task} needs {', '.join(LIST_FILES)} "
        f"in {folder}/ (lines '<image path> <class>', paths relative to that folder): get {_WHERE[task]}"
    )


def read_image_list(path: Path, image_roots: tuple[Path, ...]) -> ImageList:
    """The ``"<image path> <class>"`` lines of ``path``; image paths relative to the first of
    ``image_roots`` that holds the first listed image."""
    files: list[str] = []
    targets: list[int] = []
    numbers: list[int] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DataError(f"{path}, line {number}: expected '<image path> <class>', got '{line.strip()}'")
        try:
            targets.append(int(fields[1]))
        except ValueError:
            raise DataError(f"{path}, line {number}: the class '{fields[1]}' is not a whole number") from None
        files.append(fields[0])
        numbers.append(number)
    if not files:
        raise DataError(f"{path} lists no images")
    root = next((folder for folder in image_roots if (folder / files[0]).is_file()), None)
    if root is None:
        raise DataError(
            f"{path}, line {numbers[0]}: image {files[0]} not found in {' or '.join(str(folder) + '/' for folder in image_roots)}; "
            "put the images there"
        )
    paths = [root / name for name in files]
    missing = next((index for index, file in enumerate(paths) if not file.is_file()), None)
    if missing is not None:
        raise DataError(f"{path}, line {numbers[missing]}: image {paths[missing]} not found")
    return ImageList(path, paths, targets)


def _species_names(task: str, folder: Path, num_classes: int) -> tuple[str, ...] | None:
    """The class names of ``<task>_species_names.txt`` beside the lists or one folder up, if there."""
    path = next((place / f"{task}_species_names.txt" for place in (folder, folder.parent)
                 if (place / f"{task}_species_names.txt").is_file()), None)
    if path is None:
        return None
    names: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            raise DataError(f"{path}, line {number}: expected '<class> <name>', got '{line.strip()}'")
        names[int(fields[0])] = fields[1].strip()
    if sorted(names) != list(range(num_classes)):
        raise DataError(f"{path} names {len(names)} classes; the lists have {num_classes} (0..{num_classes - 1})")
    return tuple(names[index] for index in range(num_classes))


def _build(task: str, config: Config, device: torch.device) -> SSLData:
    folder = _lists_folder(task, config.data_dir)
    roots = (folder, folder.parent)
    labelled, unlabelled, test = (read_image_list(folder / name, roots) for name in LIST_FILES)
    num_classes = max(max(labelled.targets), max(test.targets)) + 1
    for listing in (labelled, test):
        if min(listing.targets) < 0:
            raise DataError(f"{listing.source}: classes must be 0 or more, found {min(listing.targets)}")
    check_num_classes(config.num_classes, num_classes, task)
    if config.num_labels != len(labelled.files):
        _logger.info(
            f"{task}: all {len(labelled.files)} images of {labelled.source.name} are labelled, as in USB "
            f"(num_labels {config.num_labels} does not choose them)"
        )
    geometry = photo_geometry(config)
    # 7.6 GB (Semi-Aves), 64 GB (Semi-iNat) at 256 px: read lazily by default
    read = photo_reading(config, geometry.decoded_bytes(len(labelled.files) + len(unlabelled.files), len(test.files)))
    data = SSLData(
        name=task,
        num_classes=num_classes,
        labelled_samples=read(labelled.files, geometry.train_prepare, geometry.stored),
        labelled_targets=torch.tensor(labelled.targets, dtype=torch.int64),
        unlabelled_samples=read(unlabelled.files, geometry.train_prepare, geometry.stored),
        unlabelled_targets=None,
        test_samples=read(test.files, geometry.test_prepare, geometry.size),
        test_targets=torch.tensor(test.targets, dtype=torch.int64),
        augment=geometry.augment,
        default_net="resnet18",
        classes=_species_names(task, folder, num_classes),
    )
    return data.to(device)


def build_semi_aves(config: Config, device: torch.device) -> SSLData:
    """Semi-Aves: 200 bird species (layout in the module docstring)."""
    return _build("semi_aves", config, device)


def build_semi_inat(config: Config, device: torch.device) -> SSLData:
    """Semi-iNat 2021: 810 species (layout in the module docstring)."""
    return _build("semi_inat", config, device)
