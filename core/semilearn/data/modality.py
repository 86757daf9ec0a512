"""Modalities: what a sample is, and how the views a step reads are made from a batch of samples.

A data set declares its modality by name (:attr:`SSLData.modality
<semilearn.data.base.SSLData.modality>`, ``"image"`` unless it says otherwise). The
modality registry, filled through the ``register_modalities`` hook point, maps that name
to a factory ``factory(data, generator)`` returning a :class:`Views` object: the
modality's weak, strong and plain views and the joining of views into one batch.

Two shapes of data cross this boundary:

* **samples** -- what a data set stores and the engine draws rows of: a tensor whose
  first dimension is the sample (uint8 images ``[N, C, H, W]``), or a dict of such tensors
  (token ids, attention masks and the stored back-translations of text; waveforms and
  their lengths for audio);
* **views** -- what a network takes: a float tensor ``[B, ...]``, or a dict of tensors
  with the batch first (``input_ids`` and ``attention_mask``).

The engine only moves batches: it draws rows of samples by index (:func:`take`), hands
them to the modality's :class:`Views` for the views, and joins views for one forward pass
(:meth:`Views.join`). Algorithms read views by name (``x_lb``, ``x_ulb_w``, ``x_ulb_s``
...) and pass them to the network. An algorithm that needs pixels (rotation heads, MixUp
of inputs) lists the modalities it supports in ``AlgorithmBase.modalities`` and is refused
on any other with one line that says why, unless its ``supports_modality`` accepts the
modality under the run's settings (MixUp of features, no rotation loss), which the
refusal then names.

The ``image`` modality is the batched on-device augmentation of
:mod:`semilearn.data.augment`, unchanged. Modalities that need heavy libraries live in
their own plugin distributions, so the core never imports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

import torch

if TYPE_CHECKING:
    from .base import SSLData
    from .lazy import LazySamples

__all__ = [
    "InputSpec",
    "input_spec",
    "View",
    "Samples",
    "Views",
    "ModalityFactory",
    "IMAGE",
    "IMAGE_VIEWS",
    "take",
    "count",
    "move",
    "join_views",
    "samples_device",
    "image_views",
    "modality_of",
    "strong_views",
]

# A batch of one view, or rows of samples: a tensor with the batch first, or named tensors.
View: TypeAlias = torch.Tensor | Mapping[str, torch.Tensor]
# What a data set holds: a view's shape, or samples read when needed (the lazy path).
Samples: TypeAlias = "View | LazySamples"

IMAGE = "image"  # the built-in modality (listed in semilearn.data.BUILTIN_MODALITIES)
# modalities whose views are images [B, C, H, W] (networks of images take them)
IMAGE_VIEWS = (IMAGE, "transformed")


@dataclass(frozen=True)
class InputSpec:
    """What one sample is: the contract between a data set, the network built for it and the
    trained model's card.

    A data set's samples are one tensor with the sample first (images: uint8 ``[C, H, W]``
    each) or named tensors (text: ``input_ids``, ``attention_mask`` ...; audio: ``waveform``,
    ``length``). The spec holds the modality and, for one tensor, ``shape`` and ``dtype`` of
    one sample; for named tensors, ``parts``: name -> (shape, dtype) of each. Network
    builders take it (``builder(num_classes, spec)``, see :mod:`semilearn.nets`), a network
    of images reads :attr:`image_shape`, and a checkpoint's model card records it
    (:meth:`to_dict`).
    """

    modality: str
    shape: tuple[int, ...] = ()
    dtype: str = "uint8"
    parts: Mapping[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of an image; DataError for any other sample (a network
        of images built for text, for instance)."""
        if self.modality not in IMAGE_VIEWS or len(self.shape) != 3:
            from ..errors import DataError

            raise DataError(f"it takes images [C, H, W]; the data set's samples are {self.describe()}")
        channels, height, width = self.shape
        return channels, height, width

    def describe(self) -> str:
        """One line: ``image uint8 [3, 32, 32]`` or ``text {input_ids: int64 [3, 512], ...}``."""
        if not self.parts:
            return f"{self.modality} {self.dtype} {list(self.shape)}"
        parts = ", ".join(f"{name}: {dtype} {list(shape)}" for name, (shape, dtype) in self.parts.items())
        return f"{self.modality} {{{parts}}}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (a model card's ``input``)."""
        if self.parts:
            return {"modality": self.modality,
                    "parts": {name: {"shape": list(shape), "dtype": dtype} for name, (shape, dtype) in self.parts.items()}}
        return {"modality": self.modality, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> InputSpec:
        parts = {str(name): (tuple(int(size) for size in part["shape"]), str(part["dtype"]))
                 for name, part in (spec.get("parts") or {}).items()}
        return cls(str(spec.get("modality", IMAGE)), tuple(int(size) for size in spec.get("shape") or ()),
                   str(spec.get("dtype", "uint8")), parts)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def input_spec(modality: str, samples: Samples) -> InputSpec:
    """The spec of ``samples`` (a tensor with the sample first, lazy samples or named tensors)."""
    if isinstance(samples, Mapping):
        return InputSpec(modality, parts={name: (tuple(int(size) for size in tensor.shape[1:]), _dtype_name(tensor.dtype))
                                          for name, tensor in samples.items()})
    return InputSpec(modality, tuple(int(size) for size in samples.shape[1:]), _dtype_name(samples.dtype))


@runtime_checkable
class Views(Protocol):
    """The views of one modality, made on the device from drawn rows of samples.

    Every random draw comes from the generator the factory was given (seeded by the
    engine at the start of each step), so a resumed run makes the same views.
    """

    def weak(self, samples: Any) -> Any:
        """The weakly augmented view (labelled batches, the unlabelled weak view)."""
        ...

    def strong(self, samples: Any) -> Any:
        """The strongly augmented view (for text: a stored back-translation)."""
        ...

    def plain(self, samples: Any) -> Any:
        """No augmentation (evaluation, prediction)."""
        ...

    def join(self, views: Sequence[Any]) -> Any:
        """One batch of ``views`` in order, for one forward pass."""
        ...


def strong_views(views: Views, samples: Any, number: int) -> list[Any]:
    """``number`` strong views of ``samples`` (ReMixMatch's two, for instance).

    A modality whose strong views are stored rather than drawn (text: back-translations)
    may give a method ``strong_views(samples, number)`` that returns different stored
    views in an order drawn per sample, as USB's text data set gives ReMixMatch its two;
    otherwise ``strong`` is called ``number`` times, each a draw of its own.
    """
    own = getattr(views, "strong_views", None)
    if own is not None:
        return list(own(samples, number))
    return [views.strong(samples) for _ in range(number)]


class ModalityFactory(Protocol):
    """What ``register_modalities`` registers: ``factory(data, generator) -> Views``."""

    def __call__(self, data: SSLData, generator: torch.Generator) -> Views: ...


def image_views(data: SSLData, generator: torch.Generator) -> Views:
    """The image modality: :class:`~semilearn.data.augment.BatchAugment` with the data set's spec."""
    from .augment import BatchAugment

    return BatchAugment(data.augment, generator)


def take(samples: Samples, index: torch.Tensor | slice) -> Samples:
    """Rows ``index`` of ``samples`` (a tensor, or each tensor of a dict). Of lazy samples
    (:class:`~semilearn.data.lazy.LazySamples`), a slice is a lazy subset and an index tensor
    the rows read now, in this process (training reads them ahead, in workers: ``gather``)."""
    if isinstance(samples, torch.Tensor):
        return samples[index]
    if isinstance(samples, Mapping):
        return {name: tensor[index] for name, tensor in samples.items()}
    subset = samples.subset(index)
    if isinstance(index, slice):
        return subset
    return subset.batch(subset.stack([subset.read(row) for row in range(len(subset))]))


def count(samples: Samples) -> int:
    """The number of rows (samples, or the batch size of a view)."""
    if isinstance(samples, torch.Tensor):
        return int(samples.shape[0])
    if isinstance(samples, Mapping):
        return int(next(iter(samples.values())).shape[0])
    return len(samples)


def move(samples: Any, device: torch.device | str, non_blocking: bool = False) -> Any:
    """``samples`` on ``device`` (a tensor, each tensor of a dict, an object with ``to``, such as
    the views a CPU-side transform made; anything else, lazy samples included, as it is)."""
    if isinstance(samples, torch.Tensor):
        return samples.to(device, non_blocking=non_blocking)
    if isinstance(samples, Mapping):
        return {name: tensor.to(device, non_blocking=non_blocking) for name, tensor in samples.items()}
    if callable(getattr(samples, "to", None)):
        return samples.to(device, non_blocking=non_blocking)
    return samples


def samples_device(samples: Samples) -> torch.device:
    """The device ``samples`` live on (lazy samples: the host, where they are read)."""
    if isinstance(samples, torch.Tensor):
        return samples.device
    if isinstance(samples, Mapping):
        return next(iter(samples.values())).device
    return torch.device("cpu")


def join_views(views: Sequence[View]) -> View:
    """Concatenate ``views`` along the batch (each tensor of a dict for dict views).

    Dict views must have equal shapes beyond the batch; a modality whose views differ
    (text padded per batch) joins them in its own :meth:`Views.join`.
    """
    first = views[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(list(views))  # type: ignore[arg-type]
    return {name: torch.cat([view[name] for view in views]) for name in first}  # type: ignore[index]


def modality_of(data: SSLData) -> str:
    """The modality ``data`` declares (``"image"`` for data sets written before modalities)."""
    return getattr(data, "modality", IMAGE) or IMAGE
