"""What ``semilearn predict`` labels: image files, folders of images and ``.npz`` arrays.

Inputs are read by the readers of the custom data sets (:mod:`semilearn.data.custom`):

* an **image file** (``.png``, ``.jpg``, ... :data:`~semilearn.data.custom.IMAGE_EXTENSIONS`)
  is decoded with Pillow and converted to the network's mode: grey (``L``) for a network
  of one channel, ``RGB`` for three. A colour photo given to a grey network is made grey,
  a grey scan given to a colour network is repeated over the three channels, and the
  alpha channel of a transparent image is dropped, as when training on an image folder;
* a **folder**: every image file below it, at any depth, in sorted order (hidden files
  and files of other extensions are left out);
* an **npz file** with an ``images`` array: uint8 ``[N, H, W]``, ``[N, H, W, C]`` or
  ``[N, C, H, W]``, read with ``allow_pickle=False``. Its channels are what they are: a
  count other than the network's is an error naming the file.

Each input keeps its own size here; :meth:`semilearn.Predictor.prepare` resizes it to the
network's (so an image gives the same answer from a file, an npz or an array).

The readers form a table, :data:`KINDS`, tried in order: the first whose ``accepts``
takes a path reads it. Another kind of input is one more :class:`InputKind` there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.custom import IMAGE_EXTENSIONS, as_nchw, decode_image, image_files
from ..errors import DataError, InputError
from ..paths import regular_file

__all__ = ["InputKind", "Source", "KINDS", "NPZ_KEY", "sources", "iter_inputs", "read_inputs"]

NPZ_KEY = "images"
_MODES = {1: "L", 3: "RGB"}

# A reader yields blocks of inputs: their names (what the output rows call them) and
# their images, uint8 [N, C, H, W] (N may be 1; sizes may differ between blocks).
Block = tuple[list[str], torch.Tensor]


@dataclass(frozen=True)
class InputKind:
    """One kind of input: which paths it takes, and how they are read.

    ``expand`` (optional) turns a path into the paths it stands for, checked when the
    inputs are gathered (a folder into its image files); ``read(path, channels)`` yields
    blocks of ``(names, uint8 images [N, C, H, W])``, ``channels`` being the network's.
    """

    name: str
    accepts: Callable[[Path], bool]
    read: Callable[[Path, int], Iterator[Block]]
    expand: Callable[[Path], list[Path]] | None = None


@dataclass(frozen=True)
class Source:
    """One path to read, and the kind that reads it."""

    path: Path
    kind: InputKind


# ---------------------------------------------------------------------------
# The kinds
# ---------------------------------------------------------------------------


def _is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _read_image(path: Path, channels: int) -> Iterator[Block]:
    mode = _MODES.get(channels)
    if mode is None:
        raise InputError(f"{path}: image files give 1 or 3 channels; the network takes {channels}")
    try:
        array = decode_image(path, mode)
    except DataError as error:
        raise InputError(str(error)) from None
    yield [str(path)], torch.from_numpy(array.transpose(2, 0, 1).copy())[None]


def _folder_files(folder: Path) -> list[Path]:
    files = image_files(folder)
    if not files:
        raise InputError(f"{folder}: no image files in this folder or below it ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def _read_folder(path: Path, channels: int) -> Iterator[Block]:  # used when not expanded first
    for file in _folder_files(path):
        yield from _read_image(file, channels)


def _read_npz(path: Path, channels: int) -> Iterator[Block]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if NPZ_KEY not in archive.files:
                present = f" (it has {', '.join(archive.files)})" if archive.files else " (it has no arrays)"
                raise InputError(f"{path} has no array '{NPZ_KEY}'{present}: save the images with "
                                 f"np.savez(path, {NPZ_KEY}=...)")
            array = archive[NPZ_KEY]
    except InputError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise InputError(f"{path} is not a readable .npz file ({error})") from None
    try:
        images = as_nchw(array, NPZ_KEY, path)
    except DataError as error:
        raise InputError(str(error)) from None
    if images.shape[1] != channels:
        raise InputError(f"{path}: '{NPZ_KEY}' has {images.shape[1]} channel(s) ({list(array.shape)}); "
                         f"the network takes {channels}")
    if not len(images):
        raise InputError(f"{path}: '{NPZ_KEY}' holds no images")
    yield [f"{path}[{index}]" for index in range(len(images))], images


FOLDER = InputKind("folder", Path.is_dir, _read_folder, expand=_folder_files)
NPZ = InputKind("npz", lambda path: path.is_file() and path.suffix.lower() == ".npz", _read_npz)
IMAGE = InputKind("image", _is_image_file, _read_image)

KINDS: list[InputKind] = [FOLDER, NPZ, IMAGE]
"""The kinds of input, tried in order."""


# ---------------------------------------------------------------------------
# Gathering and reading
# ---------------------------------------------------------------------------


def _kind_of(path: Path) -> InputKind:
    for kind in KINDS:
        if kind.accepts(path):
            return kind
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    regular_file(path, "input")  # a named pipe or a device: refused in its own words, never opened
    raise InputError(f"{path}: not an image file ({', '.join(IMAGE_EXTENSIONS)}), a folder of images "
                     f"or an .npz file")


def sources(paths: Sequence[str | Path]) -> list[Source]:
    """The inputs ``paths`` name, checked (they exist, are of a known kind, a folder holds
    images) without reading any image; folders expanded into their files."""
    if not paths:
        raise InputError("no input given: name image files, folders of images or .npz files")
    gathered: list[Source] = []
    for given in paths:
        path = Path(given).expanduser()
        kind = _kind_of(path)
        if kind.expand is None:
            gathered.append(Source(path, kind))
            continue
        for member in kind.expand(path):
            gathered.append(Source(member, _kind_of(member)))
    if any(source.kind is IMAGE for source in gathered):
        try:
            import PIL  # noqa: F401 - checked before any work
        except ImportError:
            raise InputError("reading image files needs Pillow: pip install pillow") from None
    return gathered


def iter_inputs(paths: Sequence[str | Path | Source], channels: int) -> Iterator[Block]:
    """Blocks ``(names, uint8 images [N, C, H, W])`` of the inputs ``paths`` name (or of
    :func:`sources` already gathered), in order, read one source at a time; every path is
    checked before the first is read."""
    if not paths:
        raise InputError("no input given: name image files, folders of images or .npz files")
    gathered: list[Source] = []
    for item in paths:
        gathered += [item] if isinstance(item, Source) else sources([item])
    for source in gathered:
        yield from source.kind.read(source.path, channels)


def read_inputs(paths: Sequence[str | Path], channels: int) -> tuple[list[str], list[torch.Tensor]]:
    """Every input ``paths`` name: their names (the file path; ``FILE.npz[i]`` for an npz)
    and their images, uint8 ``[C, H, W]`` each, of their own sizes.

    ``channels`` is the network's (``predictor.card.input_shape[0]``): image files are
    converted to it; an npz array with another count is an :class:`~semilearn.errors.InputError`.
    """
    names: list[str] = []
    images: list[torch.Tensor] = []
    for block_names, block in iter_inputs(paths, channels):
        names += block_names
        images += list(block)
    return names, images
