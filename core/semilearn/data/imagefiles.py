"""Decoding image files into uint8 tensors (Pillow): one file (:func:`decode_file`, what the
lazy path's worker processes call) or many at once into one tensor (:func:`decode_files`, a
pool of threads).

Pillow releases the interpreter lock while it decodes and resizes, so threads decode in
parallel; the result is in the order of the files whatever the order of completion. The
resizing steps are small classes, so that they travel to worker processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError

__all__ = ["decode_file", "decode_files", "resize_exactly", "resize_shorter_and_centre_crop", "pillow",
           "ResizeExactly", "ResizeShorterAndCentreCrop"]


_PIL_IMAGE: Any = None


def pillow() -> Any:
    """The ``PIL.Image`` module, or a DataError saying how to install it (looked up once: a
    worker calls this for every image)."""
    global _PIL_IMAGE
    if _PIL_IMAGE is None:
        try:
            from PIL import Image
        except ImportError:
            raise DataError("image data sets are decoded with Pillow: pip install pillow") from None
        _PIL_IMAGE = Image
    return _PIL_IMAGE


class ResizeExactly:
    """``image -> image`` resized to ``width`` x ``height`` (bilinear; torchvision's ``Resize((h, w))`` on PIL)."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def __call__(self, image: Any) -> Any:
        if image.size == (self.width, self.height):
            return image
        return image.resize((self.width, self.height), pillow().Resampling.BILINEAR)


class ResizeShorterAndCentreCrop:
    """``image -> image``: the shorter side resized to ``shorter`` (bilinear, aspect kept), then the
    centre ``crop`` x ``crop`` (torchvision's ``Resize(shorter)`` then ``CenterCrop(crop)`` on PIL)."""

    def __init__(self, shorter: int, crop: int) -> None:
        self.shorter, self.crop = shorter, crop

    def __call__(self, image: Any) -> Any:
        shorter, crop = self.shorter, self.crop
        width, height = image.size
        if width <= height:
            size = (shorter, int(shorter * height / width))
        else:
            size = (int(shorter * width / height), shorter)
        if size != image.size:
            image = image.resize(size, pillow().Resampling.BILINEAR)
        left = int(round((size[0] - crop) / 2.0))
        top = int(round((size[1] - crop) / 2.0))
        return image.crop((left, top, left + crop, top + crop))


def resize_exactly(width: int, height: int) -> Callable[[Any], Any]:
    """``image -> image`` resized to ``width`` x ``height`` (see :class:`ResizeExactly`)."""
    pillow()  # says how to install Pillow before anything is read
    return ResizeExactly(width, height)


def resize_shorter_and_centre_crop(shorter: int, crop: int) -> Callable[[Any], Any]:
    """``image -> image`` (see :class:`ResizeShorterAndCentreCrop`)."""
    pillow()
    return ResizeShorterAndCentreCrop(shorter, crop)


def decode_file(path: str | Path, prepare: Callable[[Any], Any], size: tuple[int, int], mode: str = "RGB") -> np.ndarray:
    """One image file as uint8 ``[H, W, C]``: converted to Pillow ``mode`` (``"RGB"`` or ``"L"``) and
    passed through ``prepare``, which must return it at ``size`` (height, width). A file that cannot
    be decoded is a DataError naming it."""
    image_module = pillow()
    channels = 1 if mode == "L" else 3
    height, width = size
    try:
        with image_module.open(path) as image:
            array = np.asarray(prepare(image.convert(mode)))
    except (OSError, ValueError, SyntaxError) as error:  # Pillow raises SyntaxError for some broken headers
        raise DataError(f"cannot decode image {path} ({error}); replace the file") from None
    if array.shape[:2] != (height, width):
        raise DataError(f"{path}: decoded to {array.shape[1]}x{array.shape[0]}, expected {width}x{height}")
    return array if array.ndim == 3 else array.reshape(height, width, channels)


def decode_files(
    files: Sequence[str | Path],
    prepare: Callable[[Any], Any],
    size: tuple[int, int],
    mode: str = "RGB",
    workers: int | None = None,
) -> torch.Tensor:
    """Decode ``files`` into uint8 ``[N, C, H, W]`` (``size`` is height, width after ``prepare``).

    Each image is converted to Pillow ``mode`` (``"RGB"`` or ``"L"``) and passed through
    ``prepare``, which must return it at ``size``. A file that cannot be decoded is a
    DataError naming it.
    """
    channels = 1 if mode == "L" else 3
    height, width = size
    out = np.empty((len(files), height, width, channels), dtype=np.uint8)

    def decode(index: int) -> None:
        out[index] = decode_file(files[index], prepare, size, mode)

    workers = workers or min(16, os.cpu_count() or 1)
    if workers <= 1 or len(files) < 64:
        for index in range(len(files)):
            decode(index)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(decode, range(len(files)), chunksize=64):
                pass
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
