"""CPU-side transforms: a ``Dataset``'s views made by the user's own callables, in the workers.

A PyTorch user often has a transform pipeline already (torchvision's ``Compose`` of random
crops, flips, RandAugment, ``ToTensor`` and ``Normalize``, or any callable). Given with the
data set, ``{"weak": ..., "strong": ..., "eval": ...}``, they replace the on-device
augmentation: each takes an item's sample as the ``Dataset`` returns it (a PIL image, an
array, a tensor) and returns the float view ``[C, H, W]`` the network takes, normalised as
the network wants it. The samples are then always read lazily, by the workers
(``num_workers``), because a view is drawn anew at every draw of a sample.

**What a step sees depends on the seed, the step and the sample only.** Before it makes the
views of a sample, the reader seeds Python's ``random``, NumPy's global generator and torch's
(the generators torchvision's transforms draw from) with a key of the run's seed, the stream,
the draw's position in the stream and the sample's place in the global batch, and restores
them after; 0, 2 or 4 workers, and a run resumed from a checkpoint, see the same views.

**How many views.** An algorithm reads each drawn sample's views one after another (FixMatch:
one weak and one strong; Mean Teacher and the Pi model: two weak; CoMatch and ReMixMatch: one
weak and two strong; MixMatch: ``K`` weak). :meth:`AlgorithmBase.views_per_sample
<semilearn.algorithm.AlgorithmBase.views_per_sample>` says how many of each it reads, and the
workers make that many: each is a draw of its own, as the device's augmentation draws them.
Asking for one more than that is an error naming the algorithm.

The ``transformed`` modality's views are float images ``[B, C, H, W]``: networks of images
take them. What needs the uint8 images themselves (the device's RandAugment, SequenceMatch's
medium view, a model exported with its normalisation inside) is not available.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import ConfigError, DataError, TrainingError
from .lazy import LazySamples

if TYPE_CHECKING:
    from .base import SSLData

__all__ = ["TRANSFORMED", "Transforms", "TransformedSamples", "DrawnViews", "TransformedViews", "transformed_views",
           "transforms_of"]

TRANSFORMED = "transformed"  # the modality (listed in semilearn.data.BUILTIN_MODALITIES)
KINDS = ("weak", "strong")


@dataclass(frozen=True)
class Transforms:
    """The user's callables: ``weak`` and ``strong`` make training views, ``eval`` the view of
    an evaluated sample (``sample -> float tensor [C, H, W]``)."""

    weak: Callable[[Any], Any]
    strong: Callable[[Any], Any]
    eval: Callable[[Any], Any]


def transforms_of(given: Any, name: str) -> Transforms:
    """``given`` (a dict ``weak`` / ``strong`` / ``eval`` of callables, or a :class:`Transforms`)
    checked, one line naming what is wrong."""
    if isinstance(given, Transforms):
        return given
    if not isinstance(given, Mapping):
        raise DataError(f"dataset '{name}': transforms is a {type(given).__name__}; expected "
                        "{'weak': callable, 'strong': callable, 'eval': callable}")
    unknown = sorted(set(given) - {"weak", "strong", "eval"})
    if unknown:
        raise DataError(f"dataset '{name}': unknown transform '{unknown[0]}'; the transforms are weak, strong, eval")
    missing = [kind for kind in ("weak", "strong", "eval") if given.get(kind) is None]
    if missing:
        raise DataError(f"dataset '{name}': no '{missing[0]}' transform; give weak, strong and eval "
                        "(the same callable may serve twice)")
    for kind in ("weak", "strong", "eval"):
        if not callable(given[kind]):
            raise DataError(f"dataset '{name}': the '{kind}' transform is a {type(given[kind]).__name__}, "
                            "not a callable")
    return Transforms(given["weak"], given["strong"], given["eval"])


class _Seeded:
    """Python's, NumPy's and torch's global generators seeded with ``key`` inside, as they were
    outside (a worker's, or the training process's when it reads itself)."""

    def __init__(self, key: int) -> None:
        self.key = key

    def __enter__(self) -> None:
        self.saved = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
        random.seed(self.key)
        np.random.seed(self.key % (2**32))
        torch.manual_seed(self.key)

    def __exit__(self, *exc: object) -> None:
        python, numpy, torch_state = self.saved
        random.setstate(python)
        np.random.set_state(numpy)
        torch.random.set_rng_state(torch_state)


def _key(*parts: Any) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


class TransformedSamples(LazySamples):
    """Samples whose views the user's transforms make when a step draws them (always lazy).

    A training read gives ``{"weak": [W, C, H, W], "strong": [S, C, H, W]}`` (:attr:`views`
    says W and S), an evaluation read ``{"eval": [C, H, W]}``; batches of them become
    :class:`DrawnViews` for a step."""

    dtype = torch.float32

    def __init__(self, reader: Any, sample_shape: Sequence[int], transforms: Transforms, seed: int, evaluation: bool,
                 rows: np.ndarray | None = None, views: tuple[int, int] = (1, 1)) -> None:
        super().__init__(reader, sample_shape, rows)
        self.transforms, self.seed, self.evaluation, self.views = transforms, int(seed), evaluation, views

    def with_rows(self, rows: np.ndarray | None) -> TransformedSamples:
        return TransformedSamples(self.reader, self.sample_shape, self.transforms, self.seed, self.evaluation, rows,
                                  self.views)

    @property
    def nbytes(self) -> int:
        return super().nbytes * 4  # float32 views

    def draw_keys(self, stream: Any) -> Callable[[tuple[int, int], int], int]:
        seed, name = self.seed, str(getattr(stream, "name", "sample"))

        def key(position: tuple[int, int], place: int) -> int:
            return _key(seed, name, position, place)

        return key

    def read(self, row: int, key: Any = None) -> Any:  # type: ignore[override]
        sample = self.fetch(row)
        with _Seeded(_key(self.seed, "read", self.source_index(row)) if key is None else int(key)):
            if self.evaluation:
                return {"eval": self._view(self.transforms.eval, sample, row, "eval")}
            weak, strong = self.views
            return {"weak": torch.stack([self._view(self.transforms.weak, sample, row, "weak") for _ in range(weak)])
                    if weak else torch.empty((0, *self.sample_shape)),
                    "strong": torch.stack([self._view(self.transforms.strong, sample, row, "strong")
                                           for _ in range(strong)])
                    if strong else torch.empty((0, *self.sample_shape))}

    def _view(self, transform: Callable[[Any], Any], sample: Any, row: int, kind: str) -> torch.Tensor:
        try:
            view = transform(sample)
        except Exception as error:  # the user's callable: name the sample and the transform
            raise DataError(f"{self.describe(row)}: the '{kind}' transform failed: {type(error).__name__}: "
                            f"{error}") from error
        if isinstance(view, np.ndarray):
            view = torch.from_numpy(view)
        if not isinstance(view, torch.Tensor) or not view.is_floating_point() \
                or tuple(view.shape) != self.sample_shape:
            got = f"{view.dtype} {list(view.shape)}" if isinstance(view, torch.Tensor) else type(view).__name__
            raise DataError(f"{self.describe(row)}: the '{kind}' transform gave {got}; expected a float tensor "
                            f"{list(self.sample_shape)} like the first sample's (end the pipeline with ToTensor, "
                            "and resize every sample to one size)")
        return view.float().contiguous()

    def stack(self, rows: list[Any]) -> Any:
        return torch.utils.data.default_collate(rows)

    def batch(self, batch: Any) -> Any:
        return batch if self.evaluation else DrawnViews(batch["weak"], batch["strong"])

    def materialize(self, workers: int = 0) -> torch.Tensor:
        raise ConfigError("data with CPU-side transforms is read lazily: its views are drawn anew at every draw "
                          "(data_loading: memory cannot hold them)")

    def __repr__(self) -> str:
        return f"TransformedSamples({len(self)} x {list(self.sample_shape)}, views {self.views})"


class DrawnViews:
    """The views the workers made for a batch of drawn samples: ``weak`` ``[B, W, C, H, W]`` and
    ``strong`` ``[B, S, C, H, W]``, handed out one at a time (:meth:`next`)."""

    def __init__(self, weak: torch.Tensor, strong: torch.Tensor) -> None:
        self.views = {"weak": weak, "strong": strong}
        self.used = {"weak": 0, "strong": 0}

    def __len__(self) -> int:
        return int(self.views["weak"].shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DrawnViews:
        return DrawnViews(*(self.views[kind].to(device, non_blocking=non_blocking) for kind in KINDS))

    def next(self, kind: str, algorithm: str) -> torch.Tensor:
        stack, used = self.views[kind], self.used[kind]
        if used >= stack.shape[1]:
            raise TrainingError(f"{algorithm} reads {kind} view {used + 1} of each sample, but its views_per_sample "
                                f"gives {stack.shape[1]} (CPU-side transforms make that many)")
        self.used[kind] = used + 1
        return stack[:, used]


class TransformedViews:
    """The ``transformed`` modality: the views the workers made, in the order they are asked for."""

    def __init__(self, data: SSLData, generator: torch.Generator) -> None:
        self.algorithm = "the algorithm"  # the engine names it (AlgorithmBase)

    def weak(self, samples: DrawnViews) -> torch.Tensor:
        return samples.next("weak", self.algorithm)

    def strong(self, samples: DrawnViews) -> torch.Tensor:
        return samples.next("strong", self.algorithm)

    def plain(self, samples: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return samples["eval"]

    def join(self, views: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(views))


def transformed_views(data: SSLData, generator: torch.Generator) -> TransformedViews:
    """The factory the modality registry holds."""
    return TransformedViews(data, generator)
