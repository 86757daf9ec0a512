"""Weak and strong augmentation, batched on the device.

Every function takes a float batch ``[B, C, H, W]`` with values in ``[0, 1]`` and a
``torch.Generator`` on the batch's device, and returns a new batch of the same shape.
Randomness is drawn per sample from the generator in a fixed number of calls whose
sizes depend only on the batch shape, so a batch is reproducible from the generator
state alone. There is no per-sample Python and no host synchronisation: per-sample
choices are applied with ``torch.where`` masks, geometric operations share one
``grid_sample`` per RandAugment slot.

The strong pool follows the FixMatch/USB RandAugment variant: ``num_ops`` operations per
sample (two by default; USB's classic-CV benchmarks use three) drawn from fourteen, each
with a magnitude drawn uniformly from its range, followed by a cutout whose side is up to
half the image side.

Some of USB's usb_cv data sets need more, each behind an :class:`AugmentSpec` field that
is off by default: a vertical flip (EuroSAT, TissueMNIST), a smaller RandAugment pool
without the colour operations (TissueMNIST), and views cropped out of larger stored
images (Semi-Aves: a random crop for the weak view, a random resized crop for the strong
one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentSpec", "BatchAugment", "random_translate", "random_hflip", "random_vflip", "random_crop",
           "random_resized_crop", "rand_augment", "cutout", "STRONG_OPS", "NO_COLOUR_OPS"]


@dataclass(frozen=True)
class AugmentSpec:
    """How a data set is augmented and normalised.

    Attributes:
        mean, std: per-channel normalisation applied after augmentation.
        max_shift: weak view: largest random translation, in pixels (USB: 12.5% of the side).
        padding_mode: how the translation fills the border: ``"zeros"`` or ``"reflect"``.
        flip: weak and strong views: random horizontal flip (off for digits and SVHN).
        num_ops: strong view: RandAugment operations per sample.
        cutout: strong view: largest cutout side as a fraction of the image side.
        fill: value (in ``[0, 1]``) for pixels uncovered by geometric ops and cutout.
        cutout_fill: per-channel value (in ``[0, 1]``) of the cutout square, when it differs
            from ``fill`` (USB fills geometric borders with black and cutout with grey
            ``(125, 123, 114) / 255``); ``None`` uses ``fill``.
        vflip: weak and strong views: random vertical flip too (USB's EuroSAT and MedMNIST).
        strong_ops: strong view: the names of the RandAugment operations drawn from
            (:data:`STRONG_OPS`); ``None`` draws from all fourteen (USB's
            ``exclude_color_aug`` pool is :data:`NO_COLOUR_OPS`).
        crop: views are ``crop`` x ``crop`` pixels cut out of larger stored images: the
            weak view a random crop, the strong view a random resized crop (area 8% to
            100%, aspect ratio 3/4 to 4/3, resized to ``crop``); 0 keeps the stored size.
            Evaluation images must be stored at ``crop`` already.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    max_shift: int = 1
    padding_mode: str = "zeros"
    flip: bool = False
    num_ops: int = 2
    cutout: float = 0.5
    fill: float = 0.0
    cutout_fill: tuple[float, ...] | None = None
    vflip: bool = False
    strong_ops: tuple[str, ...] | None = None
    crop: int = 0


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=device) * (high - low) + low


def random_translate(
    images: torch.Tensor, max_shift: int, generator: torch.Generator, padding_mode: str = "zeros"
) -> torch.Tensor:
    """Shift each image by a random whole number of pixels in ``[-max_shift, max_shift]``.

    Equivalent to padding by ``max_shift`` and taking a random crop of the original size.
    """
    if max_shift <= 0:
        return images
    batch, channels, height, width = images.shape
    device = images.device
    mode = "constant" if padding_mode == "zeros" else padding_mode
    padded = F.pad(images, (max_shift,) * 4, mode=mode)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, batch), generator=generator, device=device)
    rows = offsets[0, :, None] + torch.arange(height, device=device)  # [B, H]
    cols = offsets[1, :, None] + torch.arange(width, device=device)  # [B, W]
    flat = padded.reshape(batch, channels, -1)
    index = (rows[:, :, None] * padded.shape[-1] + cols[:, None, :]).reshape(batch, 1, -1)
    return flat.gather(2, index.expand(batch, channels, -1)).reshape(batch, channels, height, width)


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image left-right with probability one half."""
    flip = torch.rand((images.shape[0], 1, 1, 1), generator=generator, device=images.device) < 0.5
    return torch.where(flip, images.flip(-1), images)


def random_vflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image upside down with probability one half."""
    flip = torch.rand((images.shape[0], 1, 1, 1), generator=generator, device=images.device) < 0.5
    return torch.where(flip, images.flip(-2), images)


def random_crop(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``size`` x ``size`` window of each image, at a whole-pixel offset (no padding)."""
    batch, channels, height, width = images.shape
    if size > height or size > width:
        raise ValueError(f"cannot crop {size}x{size} out of {height}x{width} images")
    device = images.device
    draws = torch.rand((2, batch), generator=generator, device=device)
    top = (draws[0] * (height - size + 1)).long().clamp_(max=height - size)
    left = (draws[1] * (width - size + 1)).long().clamp_(max=width - size)
    rows = top[:, None] + torch.arange(size, device=device)  # [B, size]
    cols = left[:, None] + torch.arange(size, device=device)
    index = (rows[:, :, None] * width + cols[:, None, :]).reshape(batch, 1, -1)
    flat = images.reshape(batch, channels, -1)
    return flat.gather(2, index.expand(batch, channels, -1)).reshape(batch, channels, size, size)


def random_resized_crop(
    images: torch.Tensor,
    size: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> torch.Tensor:
    """A random region of each image, resized (bilinear) to ``size`` x ``size``.

    The region's area is a uniform fraction ``scale`` of the image and its aspect ratio
    log-uniform in ``ratio``; a draw that does not fit is drawn again, ``attempts`` times
    in all, after which the whole image is used with its aspect ratio clamped to
    ``ratio`` (torchvision's ``RandomResizedCrop``, which USB's Semi-Aves strong view uses).
    """
    batch, channels, height, width = images.shape
    device = images.device
    area = height * width
    draws = torch.rand((4, attempts, batch), generator=generator, device=device)
    target_area = area * (scale[0] + (scale[1] - scale[0]) * draws[0])
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_low + (log_high - log_low) * draws[1])
    crop_w = torch.sqrt(target_area * aspect).round()
    crop_h = torch.sqrt(target_area / aspect).round()
    fits = (crop_w > 0) & (crop_h > 0) & (crop_w <= width) & (crop_h <= height)  # [attempts, B]
    first = torch.where(fits.any(0), fits.float().argmax(0), torch.full((batch,), -1, device=device))
    # fallback: the whole image, aspect clamped to the range (centred)
    whole_ratio = width / height
    if whole_ratio < ratio[0]:
        fallback_w, fallback_h = float(width), float(round(width / ratio[0]))
    elif whole_ratio > ratio[1]:
        fallback_w, fallback_h = float(round(height * ratio[1])), float(height)
    else:
        fallback_w, fallback_h = float(width), float(height)
    pick = first.clamp(min=0).view(1, batch)
    chosen_w = crop_w.gather(0, pick)[0]
    chosen_h = crop_h.gather(0, pick)[0]
    top = ((height - chosen_h + 1) * draws[2].gather(0, pick)[0]).floor().clamp(min=0)
    left = ((width - chosen_w + 1) * draws[3].gather(0, pick)[0]).floor().clamp(min=0)
    top = torch.minimum(top, height - chosen_h)
    left = torch.minimum(left, width - chosen_w)
    use_fallback = first < 0
    chosen_w = torch.where(use_fallback, torch.full_like(chosen_w, fallback_w), chosen_w)
    chosen_h = torch.where(use_fallback, torch.full_like(chosen_h, fallback_h), chosen_h)
    top = torch.where(use_fallback, torch.full_like(top, (height - fallback_h) // 2), top)
    left = torch.where(use_fallback, torch.full_like(left, (width - fallback_w) // 2), left)
    # the region as an affine map of normalised coordinates (align_corners=False)
    theta = torch.zeros(batch, 2, 3, device=device)
    theta[:, 0, 0] = chosen_w / width
    theta[:, 0, 2] = (2 * left + chosen_w) / width - 1
    theta[:, 1, 1] = chosen_h / height
    theta[:, 1, 2] = (2 * top + chosen_h) / height - 1
    grid = F.affine_grid(theta, [batch, channels, size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _grayscale(images: torch.Tensor) -> torch.Tensor:
    if images.shape[1] == 3:
        weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images * weights).sum(1, keepdim=True)
    return images.mean(1, keepdim=True)


def _blend(degenerate: torch.Tensor, images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ``ImageEnhance`` semantics: factor 0 gives ``degenerate``, 1 the image."""
    return (degenerate + factor * (images - degenerate)).clamp_(0.0, 1.0)


def _autocontrast(images: torch.Tensor) -> torch.Tensor:
    low = images.amin(dim=(2, 3), keepdim=True)
    high = images.amax(dim=(2, 3), keepdim=True)
    span = high - low
    return torch.where(span > 0, (images - low) / span.clamp_min(1e-8), images)


def _equalize(images: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per image and channel on 256 levels."""
    batch, channels, height, width = images.shape
    levels = (images * 255).round_().long().reshape(batch * channels, -1)
    histogram = torch.zeros(batch * channels, 256, device=images.device, dtype=images.dtype)
    histogram.scatter_add_(1, levels, torch.ones_like(levels, dtype=images.dtype))
    cdf = histogram.cumsum(1)
    cdf_min = torch.where(histogram > 0, cdf, torch.full_like(cdf, float(height * width))).amin(1, keepdim=True)
    denominator = (height * width - cdf_min).clamp_min(1)
    lut = ((cdf - cdf_min) / denominator).clamp_(0, 1)
    equalized = lut.gather(1, levels).reshape(batch, channels, height, width)
    constant = (cdf_min >= height * width).reshape(batch, channels, 1, 1)
    return torch.where(constant, images, equalized)


def _sharpness_degenerate(images: torch.Tensor) -> torch.Tensor:
    channels = images.shape[1]
    kernel = images.new_tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = kernel.expand(channels, 1, 3, 3)
    smooth = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels)
    return smooth


# Operation ids of the strong pool. Geometric ones are applied through one affine grid.
_IDENTITY, _AUTOCONTRAST, _BRIGHTNESS, _COLOR, _CONTRAST, _EQUALIZE, _POSTERIZE = range(7)
_SHARPNESS, _SOLARIZE, _ROTATE, _SHEAR_X, _SHEAR_Y, _TRANSLATE_X, _TRANSLATE_Y = range(7, 14)
NUM_STRONG_OPS = 14
STRONG_OPS = ("identity", "autocontrast", "brightness", "color", "contrast", "equalize", "posterize", "sharpness",
              "solarize", "rotate", "shear_x", "shear_y", "translate_x", "translate_y")
"""The RandAugment pool, by name, in operation-id order."""
NO_COLOUR_OPS = ("identity", "brightness", "equalize", "sharpness", "rotate", "shear_x", "shear_y", "translate_x",
                 "translate_y")
"""USB's ``RandAugment(..., exclude_color_aug=True)`` pool (MedMNIST): no autocontrast, colour,
contrast, posterize or solarize."""


def _affine_theta(op: torch.Tensor, magnitude: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-sample 2x3 affine matrices (normalised coordinates) for the geometric ops."""
    batch = op.shape[0]
    theta = torch.zeros(batch, 2, 3, device=op.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    # rotate: magnitude in [-30, 30] degrees
    angle = magnitude * (30.0 * math.pi / 180.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    is_rotate = op == _ROTATE
    theta[:, 0, 0] = torch.where(is_rotate, cos, theta[:, 0, 0])
    theta[:, 0, 1] = torch.where(is_rotate, -sin * height / width, theta[:, 0, 1])
    theta[:, 1, 0] = torch.where(is_rotate, sin * width / height, theta[:, 1, 0])
    theta[:, 1, 1] = torch.where(is_rotate, cos, theta[:, 1, 1])
    # shear: magnitude in [-0.3, 0.3]
    shear = magnitude * 0.3
    theta[:, 0, 1] = torch.where(op == _SHEAR_X, shear * height / width, theta[:, 0, 1])
    theta[:, 1, 0] = torch.where(op == _SHEAR_Y, shear * width / height, theta[:, 1, 0])
    # translate: magnitude in [-0.3, 0.3] of the side; normalised coordinates span 2
    shift = magnitude * 0.3 * 2.0
    theta[:, 0, 2] = torch.where(op == _TRANSLATE_X, shift, theta[:, 0, 2])
    theta[:, 1, 2] = torch.where(op == _TRANSLATE_Y, shift, theta[:, 1, 2])
    return theta


def _apply_strong_op(images: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor, fill: float) -> torch.Tensor:
    """Apply operation ``op[b]`` with signed magnitude ``magnitude[b]`` in [-1, 1] to sample b."""
    batch, channels, height, width = images.shape
    select = op.view(batch, 1, 1, 1)
    unit = (magnitude.abs()).view(batch, 1, 1, 1)  # in [0, 1]
    enhance = 0.05 + 0.9 * unit  # PIL enhance factor in [0.05, 0.95]

    out = images
    out = torch.where(select == _AUTOCONTRAST, _autocontrast(images), out)
    out = torch.where(select == _BRIGHTNESS, _blend(torch.zeros_like(images), images, enhance), out)
    if channels == 3:
        out = torch.where(select == _COLOR, _blend(_grayscale(images).expand_as(images), images, enhance), out)
    mean = _grayscale(images).mean(dim=(2, 3), keepdim=True)
    out = torch.where(select == _CONTRAST, _blend(mean.expand_as(images), images, enhance), out)
    out = torch.where(select == _EQUALIZE, _equalize(images), out)
    bits = (4 + (unit * 4.999).floor()).clamp(4, 8)  # keep 4..8 bits
    step = torch.pow(2.0, 8 - bits)
    posterized = torch.floor(images * 255 / step) * step / 255
    out = torch.where(select == _POSTERIZE, posterized, out)
    out = torch.where(select == _SHARPNESS, _blend(_sharpness_degenerate(images), images, enhance), out)
    threshold = unit  # [0, 1] of the range, as USB's 0..256
    out = torch.where((select == _SOLARIZE) & (images >= threshold), 1.0 - images, out)

    geometric = (op >= _ROTATE)
    theta = _affine_theta(torch.where(geometric, op, torch.zeros_like(op)), magnitude, height, width)
    grid = F.affine_grid(theta, [batch, channels, height, width], align_corners=False)
    # Shift so that the fill value ends up where the grid leaves the image (zero padding).
    warped = F.grid_sample(out - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    return torch.where(geometric.view(batch, 1, 1, 1), warped, out)


def rand_augment(
    images: torch.Tensor, num_ops: int, generator: torch.Generator, fill: float = 0.0,
    ops: tuple[str, ...] | None = None,
) -> torch.Tensor:
    """RandAugment (FixMatch pool): ``num_ops`` random operations per sample, random magnitudes.

    ``ops`` names the operations drawn from (:data:`STRONG_OPS`; ``None``: all of them).
    """
    batch = images.shape[0]
    device = images.device
    pool = None
    if ops is not None:
        unknown = sorted(set(ops) - set(STRONG_OPS))
        if unknown or not ops:
            raise ValueError(f"unknown RandAugment operations {unknown}; known: {', '.join(STRONG_OPS)}")
        pool = torch.tensor([STRONG_OPS.index(name) for name in ops], device=device)
    for _ in range(num_ops):
        if pool is None:
            op = torch.randint(0, NUM_STRONG_OPS, (batch,), generator=generator, device=device)
        else:
            op = pool[torch.randint(0, len(pool), (batch,), generator=generator, device=device)]
        magnitude = _uniform((batch,), -1.0, 1.0, generator, device)
        images = _apply_strong_op(images, op, magnitude, fill)
    return images


def cutout(
    images: torch.Tensor, max_fraction: float, generator: torch.Generator, fill: float | torch.Tensor = 0.0
) -> torch.Tensor:
    """Fill a random square per image, of side up to ``max_fraction`` of the image side.

    ``fill`` is one value for every channel, or a tensor of per-channel values that
    broadcasts against the batch (``[1, C, 1, 1]`` on the batch's device).
    """
    if max_fraction <= 0:
        return images
    batch, _, height, width = images.shape
    device = images.device
    draws = torch.rand((3, batch), generator=generator, device=device)
    half = (draws[0] * max_fraction * min(height, width) / 2).view(batch, 1, 1)
    center_y = (draws[1] * height).view(batch, 1, 1)
    center_x = (draws[2] * width).view(batch, 1, 1)
    ys = torch.arange(height, device=device, dtype=images.dtype).view(1, height, 1) + 0.5
    xs = torch.arange(width, device=device, dtype=images.dtype).view(1, 1, width) + 0.5
    inside = ((ys - center_y).abs() < half) & ((xs - center_x).abs() < half)
    value = fill.to(images.dtype) if isinstance(fill, torch.Tensor) else torch.full_like(images, fill)
    return torch.where(inside.unsqueeze(1), value, images)


class BatchAugment:
    """The views an SSL step needs, from uint8 batches on the device (the ``image`` modality).

    Args:
        spec: the data set's augmentation and normalisation.
        generator: the source of every random draw (a ``torch.Generator`` on the device).
    """

    def __init__(self, spec: AugmentSpec, generator: torch.Generator) -> None:
        self.spec = spec
        self.generator = generator
        device = generator.device
        self._mean = torch.tensor(spec.mean, device=device).view(1, -1, 1, 1)
        self._std = torch.tensor(spec.std, device=device).view(1, -1, 1, 1)
        self._cutout_fill: float | torch.Tensor = (
            spec.fill if spec.cutout_fill is None else torch.tensor(spec.cutout_fill, device=device).view(1, -1, 1, 1)
        )

    def to_float(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().div_(255.0)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self._mean) / self._std

    def plain(self, images: torch.Tensor) -> torch.Tensor:
        """No augmentation (evaluation)."""
        return self.normalize(self.to_float(images))

    def _flips(self, images: torch.Tensor) -> torch.Tensor:
        if self.spec.flip:
            images = random_hflip(images, self.generator)
        if self.spec.vflip:
            images = random_vflip(images, self.generator)
        return images

    def _flip_and_shift(self, images: torch.Tensor) -> torch.Tensor:
        if self.spec.crop:
            images = random_crop(images, self.spec.crop, self.generator)
        images = self._flips(images)
        return random_translate(images, self.spec.max_shift, self.generator, self.spec.padding_mode)

    def weak(self, images: torch.Tensor) -> torch.Tensor:
        """Random crop (where the spec crops), flips (where the data set allows them) and random translation."""
        return self.normalize(self._flip_and_shift(self.to_float(images)))

    def strong(self, images: torch.Tensor, num_ops: int | None = None) -> torch.Tensor:
        """The weak view's flips and shift (a random resized crop where the spec crops), then RandAugment (``num_ops`` operations, default the
        data set's) and cutout."""
        spec = self.spec
        if spec.crop:  # USB's RandomResizedCrop, then the flips
            images = self._flips(random_resized_crop(self.to_float(images), spec.crop, self.generator))
        else:
            images = self._flip_and_shift(self.to_float(images))
        images = rand_augment(images, spec.num_ops if num_ops is None else num_ops, self.generator, spec.fill,
                              spec.strong_ops)
        images = cutout(images, spec.cutout, self.generator, self._cutout_fill)
        return self.normalize(images)

    def medium(self, images: torch.Tensor) -> torch.Tensor:
        """Between weak and strong (SequenceMatch): one RandAugment operation and cutout, as USB's
        ``RandAugment(1, ...)``."""
        return self.strong(images, num_ops=1)

    def join(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        """One batch of ``views`` (the image modality's :meth:`~semilearn.data.modality.Views.join`)."""
        return torch.cat(list(views))
