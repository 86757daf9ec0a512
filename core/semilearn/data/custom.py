"""Your own data: a ``.npz`` file of arrays, or a folder of images with one sub-folder per class.

Both are named by the existing keys: ``dataset: npz`` or ``dataset: image_folder``, and
``data_dir`` pointing at the file or folder (see docs/custom-data.md for a tutorial).

**npz** (``data_dir``: the file, or a folder holding exactly one ``.npz``):

* ``labelled_images``, ``labelled_targets``: images and their classes 0..K-1;
* ``test_images``, ``test_targets``: the evaluation split;
* ``unlabelled_images`` (optional): images without labels;
* ``unlabelled_targets`` (optional): their true classes, for diagnostics only.

Images are uint8, ``[N, H, W]`` (grey), ``[N, H, W, C]`` (channels last, as numpy and
PIL hold images) or ``[N, C, H, W]`` (channels first: read so when the second axis is 1
or 3 and the last is not), with C = 1 or 3. The file is read with ``allow_pickle=False``.

**image folder** (``data_dir``: the folder)::

    train/<class>/*.png|jpg|...   one folder per class; the class index follows sorted names
    test/<class>/...              (or val/) the evaluation split, same class names
    unlabelled/...                optional: images without a class (any depth)
    unlabelled.txt                optional: files under train/ whose labels are not used,
                                  one per line, relative to data_dir or to train/

Images are decoded once at start with Pillow (``pip install pillow``), as RGB unless all
are grey, and resized to the most common size when sizes differ (to ``img_size`` where
the configuration has that key).

**Which images are labelled.** When unlabelled images are given (the npz array,
``unlabelled/`` or ``unlabelled.txt``), every labelled image is used as labelled and
``num_labels`` is only checked (a warning says when it differs). Without any, the data
is split like a benchmark: ``num_labels`` images balanced across classes are drawn by
``seed`` and the labels of the rest go unused. In both cases the unlabelled set also
holds the labelled images, as in USB.

Normalisation uses the per-channel statistics of the training images; views are USB's
classic-CV ones (12.5% reflect-padded crops, flips, RandAugment(3) with cutout). The
default network follows the image side: ``small_cnn`` under 16 pixels, ``wrn_28_2`` up
to 48, ``wrn_var_37_2`` up to 128, ``resnet18`` above.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import DataError
from .base import SSLData, balanced_labelled_indices, check_num_classes
from .common import benchmark_augment, channel_statistics, crop_geometry
from .imagefiles import ResizeExactly
from .lazy import ImageFileReader, LazySamples, choose_loading, concatenate, select

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["build_npz", "build_from_arrays", "build_image_folder", "default_net_for", "IMAGE_EXTENSIONS", "as_nchw", "image_files",
           "decode_image"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_REQUIRED_ARRAYS = ("labelled_images", "labelled_targets", "test_images", "test_targets")
_OPTIONAL_ARRAYS = ("unlabelled_images", "unlabelled_targets")
_logger = logging.getLogger("semilearn.data")


def default_net_for(side: int) -> str:
    """The network ``net: auto`` picks for images of this side."""
    if side < 16:
        return "small_cnn"
    if side <= 48:
        return "wrn_28_2"
    if side <= 128:
        return "wrn_var_37_2"
    return "resnet18"


# ---------------------------------------------------------------------------
# Shared: from arrays to an SSLData.
# ---------------------------------------------------------------------------


def _assemble(
    name: str,
    config: Config,
    device: torch.device,
    *,
    source: str,
    labelled_samples: Any,
    labelled_targets: torch.Tensor,
    unlabelled_samples: Any | None,
    unlabelled_targets: torch.Tensor | None,
    test_samples: Any,
    test_targets: torch.Tensor,
    classes: tuple[str, ...] | None = None,
    transforms: Any = None,
) -> SSLData:
    """Split (explicit or drawn), statistics, views and default network; moved to ``device``.
    The images are uint8 tensors, or :class:`~semilearn.data.lazy.LazySamples` of one reader
    (the lazy path: split and joined without being read). With ``transforms`` (CPU-side
    transforms, :mod:`semilearn.data.transformed`), they make the views: no statistics."""
    known = [labelled_targets, test_targets] + ([unlabelled_targets] if unlabelled_targets is not None else [])
    lowest = min(int(targets.min()) for targets in known if len(targets))
    highest = max(int(targets.max()) for targets in known if len(targets))
    if lowest < 0:
        raise DataError(f"{source}: classes must be 0 or more, found {lowest}")
    num_classes = config.num_classes if config.num_classes is not None else highest + 1
    if highest >= num_classes:
        raise DataError(f"num_classes is {num_classes}, but {source} has class {highest}")
    check_num_classes(config.num_classes, num_classes, name)
    if num_classes < 2:
        raise DataError(f"{source}: needs at least two classes, found {num_classes}")

    if unlabelled_samples is None:
        # No unlabelled data given: split like a benchmark.
        chosen = torch.from_numpy(
            balanced_labelled_indices(labelled_targets.numpy(), config.num_labels, num_classes, config.seed)
        )
        train_images, train_targets = labelled_samples, labelled_targets
        labelled_samples, labelled_targets = select(train_images, chosen), train_targets[chosen]
        unlabelled_samples, unlabelled_targets = train_images, train_targets
    else:
        if config.num_labels != len(labelled_targets):
            _logger.warning(
                f"{name}: all {len(labelled_targets)} labelled images of {source} are used; num_labels "
                f"({config.num_labels}) does not choose them (set num_labels: {len(labelled_targets)} to name the run "
                "after them)"
            )
        missing = sorted(set(range(num_classes)) - set(labelled_targets.tolist()))
        if missing:
            _logger.warning(f"{name}: classes {missing} have no labelled image")
        if unlabelled_targets is not None:
            unlabelled_targets = torch.cat([labelled_targets, unlabelled_targets])
        unlabelled_samples = concatenate(labelled_samples, unlabelled_samples)

    channels, height, width = (int(size) for size in test_samples.shape[1:])
    if transforms is not None:
        from .transformed import TRANSFORMED

        return SSLData(name=name, num_classes=num_classes, labelled_samples=labelled_samples,
                       labelled_targets=labelled_targets, unlabelled_samples=unlabelled_samples,
                       unlabelled_targets=unlabelled_targets, test_samples=test_samples, test_targets=test_targets,
                       augment=transforms, default_net=default_net_for(min(height, width)), classes=classes,
                       modality=TRANSFORMED).to(device)
    mean, std = channel_statistics(unlabelled_samples, workers=int(config.get("num_workers", 0) or 0),
                                   on_bad_sample=str(config.get("on_bad_sample", "fail")))
    _, shift = crop_geometry(config, min(height, width))
    data = SSLData(
        name=name,
        num_classes=num_classes,
        labelled_samples=labelled_samples,
        labelled_targets=labelled_targets,
        unlabelled_samples=unlabelled_samples,
        unlabelled_targets=unlabelled_targets,
        test_samples=test_samples,
        test_targets=test_targets,
        augment=benchmark_augment(mean, std, shift, flip=True),
        default_net=default_net_for(min(height, width)),
        classes=classes,
    )
    return data.to(device)


# ---------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------


def _npz_path(data_dir: str) -> Path:
    path = Path(data_dir).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(path.glob("*.npz"))
        if len(found) == 1:
            return found[0]
        if found:
            raise DataError(
                f"data_dir '{data_dir}' holds {len(found)} .npz files ({', '.join(p.name for p in found[:4])}); "
                "set data_dir to the one to use"
            )
    raise DataError(
        f"dataset 'npz' reads a .npz file named by data_dir, but '{data_dir}' is "
        f"{'a folder without .npz files' if path.is_dir() else 'not there'}; see docs/custom-data.md"
    )


def as_nchw(array: np.ndarray, key: str, source: Path) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` from ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]``."""
    if array.dtype != np.uint8:
        raise DataError(
            f"{source}: '{key}' must be uint8 (0..255), got {array.dtype}; for floats in [0, 1] save "
            "(x * 255).round().astype(np.uint8)"
        )
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if array.shape[3] in (1, 3):
            array = array.transpose(0, 3, 1, 2)
        elif array.shape[1] not in (1, 3):
            raise DataError(f"{source}: '{key}' has shape {list(array.shape)}: images need 1 or 3 channels")
    else:
        raise DataError(
            f"{source}: '{key}' has shape {list(array.shape)}; expected [N, H, W], [N, H, W, C] or [N, C, H, W]"
        )
    return torch.from_numpy(np.ascontiguousarray(array))


def _as_targets(array: np.ndarray, key: str, count: int, source: Path) -> torch.Tensor:
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise DataError(f"{source}: '{key}' must be a 1-d integer array, got {array.dtype} {list(array.shape)}")
    if len(array) != count:
        raise DataError(f"{source}: '{key}' has {len(array)} entries for {count} images")
    return torch.from_numpy(array.astype(np.int64))


def build_npz(config: Config, device: torch.device) -> SSLData:
    """A data set from the ``.npz`` file ``data_dir`` names (layout in the module docstring)."""
    path = _npz_path(config.data_dir)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays: dict[str, Any] = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path} is not a readable .npz file ({error})") from None
    return build_from_arrays(config, arrays, name="npz", source=str(path)).to(device)


def build_from_arrays(config: Config, arrays: Mapping[str, Any], *, name: str = "arrays",
                      source: str | None = None, classes: Sequence[str] | None = None) -> SSLData:
    """A data set from arrays under the npz file's names (module docstring): ``labelled_images``,
    ``labelled_targets``, ``test_images``, ``test_targets``, optionally ``unlabelled_images`` and
    ``unlabelled_targets``; NumPy arrays, tensors or anything ``numpy.asarray`` takes. On the host."""
    where = source or f"data '{name}'"
    unknown = sorted(set(arrays) - set(_REQUIRED_ARRAYS) - set(_OPTIONAL_ARRAYS))
    missing = [key for key in _REQUIRED_ARRAYS if key not in arrays]
    if missing:
        hint = f" (it has {', '.join(unknown)})" if unknown else ""
        raise DataError(f"{where} has no array '{missing[0]}'{hint}; expected {', '.join(_REQUIRED_ARRAYS)}")
    if unknown and source is None:  # a file may carry more; a dict given in Python is a typo
        raise DataError(f"{where}: unknown key '{unknown[0]}'; the keys are "
                        f"{', '.join(_REQUIRED_ARRAYS + _OPTIONAL_ARRAYS)}")
    arrays = {key: _numpy(value) for key, value in arrays.items() if value is not None}
    path = Path(where)
    images = {key: as_nchw(arrays[key], key, path) for key in ("labelled_images", "test_images", "unlabelled_images")
              if key in arrays}
    shapes = {tuple(tensor.shape[1:]) for tensor in images.values()}
    if len(shapes) > 1:
        described = ", ".join(f"{key} {list(tensor.shape[1:])}" for key, tensor in images.items())
        raise DataError(f"{where}: every image array needs the same [C, H, W]; got {described}")
    unlabelled = images.get("unlabelled_images")
    return _assemble(
        name,
        config,
        torch.device("cpu"),
        source=where,
        labelled_samples=images["labelled_images"],
        labelled_targets=_as_targets(arrays["labelled_targets"], "labelled_targets", len(images["labelled_images"]), path),
        unlabelled_samples=unlabelled,
        unlabelled_targets=(
            _as_targets(arrays["unlabelled_targets"], "unlabelled_targets", len(unlabelled), path)
            if unlabelled is not None and "unlabelled_targets" in arrays else None
        ),
        test_samples=images["test_images"],
        test_targets=_as_targets(arrays["test_targets"], "test_targets", len(images["test_images"]), path),
        classes=tuple(str(label) for label in classes) if classes is not None else None,
    )


def _numpy(value: Any) -> np.ndarray:
    """An array of ``value``: a tensor (on any device) or anything ``numpy.asarray`` takes."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


# ---------------------------------------------------------------------------
# image folder
# ---------------------------------------------------------------------------


def image_files(folder: Path) -> list[Path]:
    """Every image file below ``folder`` (any depth, by extension), sorted; hidden ones left out."""
    return sorted(
        path for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _class_files(folder: Path) -> dict[str, list[Path]]:
    classes = sorted(entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    return {name: image_files(folder / name) for name in classes}


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise DataError("dataset 'image_folder' decodes images with Pillow: pip install pillow") from None
    return Image


def decode_image(path: Path, mode: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """One image file as uint8 ``[H, W, C]``, converted to Pillow ``mode`` (``"L"`` or
    ``"RGB"``) and, when ``size`` (width, height) is given, resized to it."""
    image_module = _pillow()
    try:
        with image_module.open(path) as image:
            converted = image.convert(mode)
            if size is not None and converted.size != size:
                converted = converted.resize(size, image_module.Resampling.BILINEAR)
            array = np.asarray(converted)
    except (OSError, ValueError) as error:
        raise DataError(f"cannot decode image {path} ({error})") from None
    return array.reshape(array.shape[0], array.shape[1], -1)


def _decode(files: list[Path], size: tuple[int, int], mode: str) -> torch.Tensor:
    """Decode ``files`` into one uint8 ``[N, C, H, W]`` tensor (``size`` is width, height)."""
    channels = 1 if mode == "L" else 3
    out = np.empty((len(files), size[1], size[0], channels), dtype=np.uint8)
    for index, path in enumerate(files):
        out[index] = decode_image(path, mode, size)
    return torch.from_numpy(out.transpose(0, 3, 1, 2).copy())


def _survey(files: list[Path], config: Config, root: Path) -> tuple[tuple[int, int], str]:
    """The common size (width, height) and mode ("L" or "RGB") for ``files``, from their headers."""
    image_module = _pillow()
    sizes: Counter[tuple[int, int]] = Counter()
    grey = True
    for path in files:
        try:
            with image_module.open(path) as image:
                sizes[image.size] += 1
                grey = grey and image.mode in ("1", "L", "LA", "I", "I;16", "F")
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read image {path} ({error})") from None
    configured = config.get("img_size")
    if configured:
        size = (int(configured), int(configured))
    else:
        size = sizes.most_common(1)[0][0]
        if len(sizes) > 1:
            _logger.warning(
                f"image_folder: {root} has images of {len(sizes)} sizes; all are resized to "
                f"{size[0]}x{size[1]}, the most common"
            )
    return size, "L" if grey else "RGB"


def _unlabelled_list(root: Path, train: Path, labelled: dict[Path, int]) -> set[Path]:
    listing = root / "unlabelled.txt"
    if not listing.is_file():
        return set()
    chosen: set[Path] = set()
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        for candidate in (root / entry, train / entry):
            resolved = candidate.resolve()
            if resolved in labelled:
                chosen.add(resolved)
                break
        else:
            raise DataError(f"{listing}, line {number}: '{entry}' is not an image under {train}")
    return chosen


def build_image_folder(config: Config, device: torch.device) -> SSLData:
    """A data set from the image folder ``data_dir`` names (layout in the module docstring)."""
    root = Path(config.data_dir).expanduser()
    train = root / "train"
    test = next((root / name for name in ("test", "val") if (root / name).is_dir()), None)
    if not train.is_dir() or test is None:
        raise DataError(
            f"dataset 'image_folder' needs {train}/<class>/ and {root / 'test'}/<class>/ (or val/) folders of images; "
            "see docs/custom-data.md"
        )
    train_classes = _class_files(train)
    if not train_classes:
        raise DataError(f"{train} has no class folders")
    empty = [name for name, files in train_classes.items() if not files]
    if empty:
        raise DataError(f"{train / empty[0]} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    class_index = {name: index for index, name in enumerate(train_classes)}
    test_classes = _class_files(test)
    unknown = sorted(set(test_classes) - set(class_index))
    if unknown:
        raise DataError(f"{test / unknown[0]} is a class that {train} does not have")

    labelled = {path.resolve(): class_index[name] for name, files in train_classes.items() for path in files}
    listed = _unlabelled_list(root, train, labelled)
    extra = image_files(root / "unlabelled") if (root / "unlabelled").is_dir() else []
    test_files = [(path, class_index[name]) for name, files in test_classes.items() for path in files]
    if not test_files:
        raise DataError(f"{test} holds no images")

    labelled_files = [path for path in labelled if path not in listed]
    listed_files = sorted(listed)
    train_files = labelled_files + listed_files + extra
    size, mode = _survey(train_files + [path for path, _ in test_files], config, root)
    _logger.info(
        f"image_folder: {len(class_index)} classes ({', '.join(f'{name}={i}' for name, i in class_index.items())})"
    )
    has_unlabelled = bool(listed_files or extra)
    channels = 1 if mode == "L" else 3
    decoded = (len(train_files) + len(test_files)) * channels * size[0] * size[1]
    if choose_loading(config, decoded) == "lazy":  # one reader over the training files, split without reading
        every = LazySamples(ImageFileReader(train_files, ResizeExactly(*size), (size[1], size[0]), mode),
                            (channels, size[1], size[0]))
        labelled_part: Any = every.subset(np.arange(len(labelled_files)))
        unlabelled_part: Any = every.subset(np.arange(len(labelled_files), len(train_files))) if has_unlabelled else None
        test_part: Any = LazySamples(ImageFileReader([path for path, _ in test_files], ResizeExactly(*size),
                                                     (size[1], size[0]), mode), (channels, size[1], size[0]))
    else:
        labelled_part = _decode(labelled_files, size, mode)
        unlabelled_part = _decode(listed_files + extra, size, mode) if has_unlabelled else None
        test_part = _decode([path for path, _ in test_files], size, mode)
    return _assemble(
        "image_folder",
        config,
        device,
        source=str(root),
        labelled_samples=labelled_part,
        labelled_targets=torch.tensor([labelled[path] for path in labelled_files], dtype=torch.int64),
        unlabelled_samples=unlabelled_part,
        # the listed files' classes are known (diagnostics only); those of unlabelled/ are not
        unlabelled_targets=(
            torch.tensor([labelled[path] for path in listed_files], dtype=torch.int64) if listed and not extra else None
        ),
        test_samples=test_part,
        test_targets=torch.tensor([label for _, label in test_files], dtype=torch.int64),
        classes=tuple(class_index),
    )
