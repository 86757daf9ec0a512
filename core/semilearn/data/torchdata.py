"""Any map-style ``torch.utils.data.Dataset`` as a semi-supervised data set.

A PyTorch user's data is a ``Dataset`` (their own, a torchvision one, a Hugging Face
``datasets.Dataset`` with ``with_format("torch")`` ...) whose items are ``(sample, label)`` or a
dict. :func:`build_from_datasets` turns a training and a test ``Dataset`` (and, if given, one of
unlabelled samples) into an :class:`~semilearn.data.base.SSLData`, split and viewed like the
other data sets; a configuration names one by import path::

    dataset: mypackage.data:make_datasets      # a callable taking the config, or nothing

which returns ``{"train": ..., "test": ..., "unlabelled": ... (optional), "classes": [...]
(optional)}`` or a tuple ``(train, test[, unlabelled])``.

What an item may be:

* ``(sample, label)`` or ``[sample, label]``; or a dict with the sample under ``image``,
  ``img``, ``pixel_values`` or ``x`` and the label under ``label``, ``labels``, ``target`` or
  ``y`` (an unlabelled set's items may be the sample alone);
* the sample: a PIL image, a NumPy array or a tensor, ``[H, W]``, ``[H, W, C]`` or
  ``[C, H, W]`` with C = 1 or 3; uint8, or float in ``[0, 1]`` (torchvision's ``ToTensor``),
  which is scaled to 0-255 and rounded.

Every sample must have the shape of the first, unless ``img_size`` is set (each is then
resized to it, bilinear). Labels come from the data set's ``targets`` (torchvision), a label
column (Hugging Face), or one pass over its items (read by ``num_workers`` processes). The
samples are held in memory or read lazily as the other data sets' are (``data_loading``).
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .lazy import LazySamples, choose_loading, quiet_generator

if TYPE_CHECKING:
    from ..config import Config
    from ..plugins import PluginManager
    from .base import SSLData

__all__ = ["build_from_datasets", "builder_for", "DatasetReader", "to_uint8"]

SAMPLE_KEYS = ("image", "img", "pixel_values", "x")
LABEL_KEYS = ("label", "labels", "target", "y")
_logger = logging.getLogger("semilearn.data")


def builder_for(manager: PluginManager, name: str) -> Any:
    """The builder of data set ``name``: a registered one, or ``module:attribute`` (a callable
    returning ``Dataset`` objects, see the module docstring)."""
    if ":" not in name:
        return manager.registry("dataset").get(name)

    def build(config: Config, device: torch.device) -> SSLData:
        made = _import(name)
        if callable(made) and not isinstance(made, torch.utils.data.Dataset):
            made = _call(made, config, name)
        parts = _parts(made, name)
        return build_from_datasets(config, parts["train"], parts["test"], parts.get("unlabelled"),
                                   name=name, classes=parts.get("classes"), transforms=parts.get("transforms")).to(device)

    return build


def _import(path: str) -> Any:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"dataset '{path}': cannot import {module_name} ({error})") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"dataset '{path}': {module_name} has no attribute '{attribute}'") from None


def _call(function: Any, config: Config, path: str) -> Any:
    import inspect

    try:
        takes_config = bool(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        takes_config = True
    return function(config) if takes_config else function()


def _parts(made: Any, path: str) -> dict[str, Any]:
    if isinstance(made, Mapping):
        parts = dict(made)
    elif isinstance(made, (tuple, list)) and len(made) in (2, 3):
        parts = dict(zip(("train", "test", "unlabelled"), made, strict=False))
    else:
        raise DataError(f"dataset '{path}' gave {type(made).__name__}; expected {{'train': ..., 'test': ...}} "
                        "(and optionally 'unlabelled', 'classes', 'transforms') or a tuple (train, test[, unlabelled])")
    unknown = sorted(set(parts) - {"train", "test", "unlabelled", "classes", "transforms"})
    if unknown:
        raise DataError(f"dataset '{path}' gave an unknown part '{unknown[0]}'; the parts are train, test, "
                        "unlabelled, classes, transforms")
    missing = [key for key in ("train", "test") if parts.get(key) is None]
    if missing:
        raise DataError(f"dataset '{path}' gave no '{missing[0]}' data set")
    return parts


# ---------------------------------------------------------------------------
# Items -> uint8 samples.
# ---------------------------------------------------------------------------


def _split_item(item: Any, where: str, labelled: bool) -> tuple[Any, Any]:
    """``(sample, label)`` of one item (label None for a bare sample of an unlabelled set)."""
    if isinstance(item, Mapping):
        sample_key = next((key for key in SAMPLE_KEYS if key in item), None)
        label_key = next((key for key in LABEL_KEYS if key in item), None)
        if sample_key is None or (labelled and label_key is None):
            raise DataError(f"{where}: a dict item needs a sample under {'/'.join(SAMPLE_KEYS)} and a label under "
                            f"{'/'.join(LABEL_KEYS)}; it has {', '.join(map(str, item)) or 'no keys'}")
        return item[sample_key], item[label_key] if label_key is not None else None
    if isinstance(item, (tuple, list)):
        if len(item) != 2:
            raise DataError(f"{where}: an item is a {type(item).__name__} of {len(item)}; expected (sample, label)")
        return item[0], item[1]
    if not labelled:
        return item, None
    raise DataError(f"{where}: an item is a {type(item).__name__}; expected (sample, label) or a dict")


def to_uint8(sample: Any, where: str, size: tuple[int, int] | None = None) -> torch.Tensor:
    """A sample (PIL image, array or tensor; see the module docstring) as uint8 ``[C, H, W]``,
    resized to ``size`` (height, width) when given and different."""
    if hasattr(sample, "convert") and hasattr(sample, "mode"):  # a PIL image
        if sample.mode not in ("L", "RGB"):
            sample = sample.convert("L" if sample.mode in ("1", "I", "I;16", "F", "LA") else "RGB")
        array = np.asarray(sample)
        tensor = torch.from_numpy(array.reshape(array.shape[0], array.shape[1], -1).copy()).permute(2, 0, 1)
    else:
        tensor = torch.as_tensor(np.asarray(sample)) if not isinstance(sample, torch.Tensor) else sample.detach().cpu()
        if tensor.ndim == 2:
            tensor = tensor.unsqueeze(0)
        elif tensor.ndim == 3 and tensor.shape[-1] in (1, 3) and tensor.shape[0] not in (1, 3):
            tensor = tensor.permute(2, 0, 1)  # channels last, as arrays and Hugging Face images come
        if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
            raise DataError(f"{where}: a sample of shape {list(tensor.shape)}; expected an image [H, W], "
                            "[H, W, C] or [C, H, W] with 1 or 3 channels")
        if tensor.is_floating_point():
            tensor = (tensor.float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        elif tensor.dtype != torch.uint8:
            raise DataError(f"{where}: a sample of dtype {tensor.dtype}; expected uint8, or float in [0, 1]")
    if size is not None and tuple(tensor.shape[1:]) != size:
        from .common import resize_images

        tensor = resize_images(tensor.unsqueeze(0), size)[0]
    return tensor.contiguous()


class DatasetReader:
    """The samples of a ``Dataset`` as uint8 ``[C, H, W]`` at ``size`` (the lazy path's reader)."""

    def __init__(self, dataset: Any, name: str, labelled: bool, size: tuple[int, int] | None) -> None:
        self.dataset, self.name, self.labelled, self.size = dataset, name, labelled, size

    def __len__(self) -> int:
        return len(self.dataset)

    def describe(self, index: int) -> str:
        return f"item {index} of the {self.name} ({type(self.dataset).__name__})"

    def sample(self, index: int) -> Any:
        """Item ``index``'s sample as the ``Dataset`` returns it (a failure names the item)."""
        where = self.describe(index)
        try:
            item = self.dataset[index]
        except DataError:
            raise
        except Exception as error:  # the user's code: name the item, keep the cause
            raise DataError(f"{where}: reading it failed: {type(error).__name__}: {error}") from error
        sample, _ = _split_item(item, where, self.labelled)
        return sample

    def __getitem__(self, index: int) -> torch.Tensor:
        return to_uint8(self.sample(index), self.describe(index), self.size)


# ---------------------------------------------------------------------------
# Labels.
# ---------------------------------------------------------------------------


def _labels(dataset: Any, name: str, workers: int) -> torch.Tensor:
    """Every item's label: from ``targets``/``labels`` or a label column, else one pass over the items."""
    for attribute in ("targets", "labels"):
        found = getattr(dataset, attribute, None)
        if found is not None and not callable(found) and len(found) == len(dataset):
            return _as_labels(found, name)
    columns = getattr(dataset, "column_names", None)  # a Hugging Face dataset: read the column alone
    if columns is not None:
        column = next((key for key in LABEL_KEYS if key in columns), None)
        if column is None:
            raise DataError(f"the {name} has no label column ({'/'.join(LABEL_KEYS)}); it has {', '.join(columns)}")
        return _as_labels(dataset[column], name)
    reader = _LabelReader(dataset, name)
    loader = torch.utils.data.DataLoader(reader, batch_size=256, num_workers=workers, collate_fn=list,
                                         generator=quiet_generator())
    labels: list[int] = []
    for part in loader:
        labels.extend(part)
    return torch.tensor(labels, dtype=torch.int64)


class _LabelReader(torch.utils.data.Dataset[int]):
    def __init__(self, dataset: Any, name: str) -> None:
        self.dataset, self.name = dataset, name

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> int:
        where = f"item {index} of the {self.name} ({type(self.dataset).__name__})"
        _, label = _split_item(self.dataset[index], where, True)
        try:
            return int(label)
        except (TypeError, ValueError):
            raise DataError(f"{where}: the label {label!r} is not a class index") from None


def _as_labels(values: Any, name: str) -> torch.Tensor:
    try:
        labels = torch.as_tensor(np.asarray(values), dtype=torch.int64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise DataError(f"the {name}'s labels are not class indices ({error})") from None
    return labels


# ---------------------------------------------------------------------------
# The data set.
# ---------------------------------------------------------------------------


def build_from_datasets(config: Config, train: Any, test: Any, unlabelled: Any = None, *, name: str = "dataset",
                        classes: Sequence[str] | None = None, transforms: Any = None) -> SSLData:
    """An SSLData from map-style ``Dataset`` objects (see the module docstring): ``num_labels``
    balanced labels drawn from ``train`` by ``seed`` unless ``unlabelled`` is given (then every
    item of ``train`` is labelled), the unlabelled set holding the labelled samples too, USB's
    classic-CV views with the training samples' statistics; or, with ``transforms``
    (``{"weak": ..., "strong": ..., "eval": ...}``), the views those callables make in the
    workers (:mod:`semilearn.data.transformed`)."""
    from .custom import _assemble

    workers = int(config.get("num_workers", 0) or 0)
    for part, what in ((train, "training set"), (test, "test set"), (unlabelled, "unlabelled set")):
        if part is not None and not (hasattr(part, "__getitem__") and hasattr(part, "__len__")):
            raise DataError(f"dataset '{name}': the {what} is a {type(part).__name__}, not a map-style Dataset "
                            "(one with __getitem__ and __len__)")
        if part is not None and len(part) == 0:
            raise DataError(f"dataset '{name}': the {what} is empty")
    if transforms is not None:
        return _transformed(config, train, test, unlabelled, name, classes, transforms, workers)
    configured = config.get("img_size")
    resize = (int(configured), int(configured)) if configured else None  # else: every sample as the first
    first = to_uint8(_split_item(train[0], f"item 0 of the training set ({type(train).__name__})", True)[0],
                     f"item 0 of the training set ({type(train).__name__})", resize)
    shape = tuple(int(size) for size in first.shape)

    def samples(dataset: Any, what: str, labelled: bool) -> Any:
        return LazySamples(_Channels(DatasetReader(dataset, what, labelled, resize), shape[0]), shape)

    train_samples = samples(train, "training set", True)
    test_samples = samples(test, "test set", True)
    unlabelled_samples = samples(unlabelled, "unlabelled set", False) if unlabelled is not None else None
    decoded = sum(len(part) for part in (train, test, unlabelled) if part is not None) * math.prod(shape)
    if choose_loading(config, decoded) == "memory":
        train_samples, test_samples = train_samples.materialize(workers), test_samples.materialize(workers)
        unlabelled_samples = unlabelled_samples.materialize(workers) if unlabelled_samples is not None else None
    elif unlabelled_samples is not None:  # one lazy set of the training and the unlabelled items
        train_samples, unlabelled_samples = _joined(train_samples, unlabelled_samples)
    data = _assemble(
        name, config, torch.device("cpu"), source=f"dataset '{name}'",
        labelled_samples=train_samples, labelled_targets=_labels(train, "training set", workers),
        unlabelled_samples=unlabelled_samples, unlabelled_targets=None,
        test_samples=test_samples, test_targets=_labels(test, "test set", workers),
        classes=tuple(str(label) for label in classes) if classes is not None else None,
    )
    return data


def _transformed(config: Config, train: Any, test: Any, unlabelled: Any, name: str, classes: Sequence[str] | None,
                 given: Any, workers: int) -> SSLData:
    """The data set whose views the user's CPU-side transforms make (always read lazily)."""
    from .custom import _assemble
    from .transformed import TransformedSamples, transforms_of

    transforms = transforms_of(given, name)
    if str(config.get("data_loading", "auto")) == "memory":
        raise ConfigError(f"dataset '{name}': CPU-side transforms draw new views at every draw of a sample, so its "
                          "samples are read lazily: data_loading: memory cannot hold them (use auto or lazy)")
    where = f"item 0 of the training set ({type(train).__name__})"
    sample, _ = _split_item(train[0], where, True)
    try:
        with _quiet_seed():
            view = transforms.eval(sample)
    except Exception as error:
        raise DataError(f"{where}: the 'eval' transform failed: {type(error).__name__}: {error}") from error
    view = torch.as_tensor(view) if isinstance(view, np.ndarray) else view
    if not isinstance(view, torch.Tensor) or not view.is_floating_point() or view.ndim != 3:
        got = f"{view.dtype} {list(view.shape)}" if isinstance(view, torch.Tensor) else type(view).__name__
        raise DataError(f"{where}: the 'eval' transform gave {got}; expected a float tensor [C, H, W] (end the "
                        "pipeline with ToTensor)")
    shape = tuple(int(size) for size in view.shape)
    seed = int(config.get("seed", 0) or 0)

    def samples(dataset: Any, what: str, labelled: bool, evaluation: bool) -> TransformedSamples:
        return TransformedSamples(_RawReader(dataset, what, labelled), shape, transforms, seed, evaluation)

    train_samples: LazySamples = samples(train, "training set", True, False)
    unlabelled_samples: LazySamples | None = samples(unlabelled, "unlabelled set", False, False) \
        if unlabelled is not None else None
    if unlabelled_samples is not None:  # one lazy set of the training and the unlabelled items
        joined = _Joined(train_samples.reader, unlabelled_samples.reader)
        every = TransformedSamples(joined, shape, transforms, seed, False)
        train_samples = every.subset(np.arange(len(train)))
        unlabelled_samples = every.subset(np.arange(len(train), len(joined)))
    return _assemble(
        name, config, torch.device("cpu"), source=f"dataset '{name}'",
        labelled_samples=train_samples, labelled_targets=_labels(train, "training set", workers),
        unlabelled_samples=unlabelled_samples, unlabelled_targets=None,
        test_samples=samples(test, "test set", True, True), test_targets=_labels(test, "test set", workers),
        classes=tuple(str(label) for label in classes) if classes is not None else None, transforms=transforms,
    )


def _quiet_seed() -> Any:
    """Torch's, NumPy's and Python's generators as they were, after a transform drew from them."""
    from .transformed import _Seeded

    return _Seeded(0)


class _RawReader(DatasetReader):
    """The samples of a ``Dataset`` as it returns them (for the user's transforms)."""

    def __init__(self, dataset: Any, name: str, labelled: bool) -> None:
        super().__init__(dataset, name, labelled, None)

    def __getitem__(self, index: int) -> Any:
        return self.sample(index)


class _Channels:
    """A reader whose samples must all have ``channels`` channels (a grey item among colour ones
    is repeated to three)."""

    def __init__(self, reader: DatasetReader, channels: int) -> None:
        self.reader, self.channels = reader, channels

    def __len__(self) -> int:
        return len(self.reader)

    def describe(self, index: int) -> str:
        return self.reader.describe(index)

    def __getitem__(self, index: int) -> torch.Tensor:
        sample = self.reader[index]
        if sample.shape[0] == self.channels:
            return sample
        if sample.shape[0] == 1 and self.channels == 3:
            return sample.expand(3, -1, -1).contiguous()
        raise DataError(f"{self.reader.describe(index)}: {sample.shape[0]} channels, but the first item has "
                        f"{self.channels}")


class _Joined:
    """Two readers one after the other (the lazy training and unlabelled sets, split as one)."""

    def __init__(self, first: Any, second: Any) -> None:
        self.first, self.second = first, second

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def describe(self, index: int) -> str:
        return self.first.describe(index) if index < len(self.first) else \
            self.second.describe(index - len(self.first))

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.first[index] if index < len(self.first) else self.second[index - len(self.first)]


def _joined(train: LazySamples, unlabelled: LazySamples) -> tuple[LazySamples, LazySamples]:
    joined = _Joined(train.reader, unlabelled.reader)
    every = LazySamples(joined, train.sample_shape, describe=joined.describe)
    return every.subset(np.arange(len(train))), every.subset(np.arange(len(train), len(joined)))
