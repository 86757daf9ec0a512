"""USB's audio benchmarks, read from USB's released pickled waveforms.

Layout (USB's ``usb_audio`` data): ``<data_dir>/<name>/train.pkl``, ``dev.pkl`` and
``test.pkl`` (a ``data_dir`` holding the files itself is accepted too); ``fsdnoisy`` has a
fourth, ``ulb_train.pkl``, its unlabelled set. Each file is a pickled dict of samples, read
in its order; a sample is a dict with

* ``wav``: the bytes of a NumPy ``.npy`` file holding the waveform (1-D, at 16 kHz, USB's
  ``sample_rate`` in every usb_audio configuration);
* ``label``: the class index.

The pickles are read with an unpickler that admits plain containers, bytes, strings and
numbers (and NumPy scalars) only, and the ``.npy`` bytes without pickles: a file that needs
anything else is refused with one line rather than run.

Splits, as USB makes them: the labelled samples are ``num_labels / num_classes`` of each
class of ``train.pkl``, drawn by shuffling each class's indices in class order with NumPy's
legacy generator seeded by ``seed`` (USB's ``split_ssl_data``); the unlabelled set is the
labelled samples followed by the rest of each class. ``fsdnoisy`` is USB's exception: every
sample of ``train.pkl`` is labelled (``num_labels`` 1773 in its configurations) and
``ulb_train.pkl`` is the unlabelled set. Evaluation reads ``dev.pkl`` (USB's ``eval``
split) unless ``audio.eval_split`` is ``test``.

Waveforms are stored once, padded with zeros to the longest of their split: ``4 * T`` bytes
per sample in float32 (``audio.storage: float16`` halves it), ``T`` the longest waveform
in samples (ESC-50's 5 s clips: 320 kB each in float32).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from semilearn.data.base import SSLData, check_num_classes
from semilearn.data.common import usb_class_split, usb_files_folder
from semilearn.errors import DataError

from .names import AUDIO, DATASETS, SAMPLE_RATE
from .views import AudioSpec

if TYPE_CHECKING:
    from semilearn.config import Config

__all__ = ["folder_of", "read_split", "stack", "usb_audio_split", "build_audio_dataset"]

SPLIT_FILES = ("train.pkl", "dev.pkl", "test.pkl")
UNLABELLED_FILE = "ulb_train.pkl"  # fsdnoisy's unlabelled set
ALLOWED_GLOBALS = {
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "bytes"), ("builtins", "str"),
    ("builtins", "int"), ("builtins", "float"), ("collections", "OrderedDict"), ("_codecs", "encode"),
    ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name}: USB's audio files hold dicts of bytes and labels")


def files_of(name: str) -> tuple[str, ...]:
    return (*SPLIT_FILES, UNLABELLED_FILE) if name == "fsdnoisy" else SPLIT_FILES


def folder_of(name: str, data_dir: str) -> Path:
    """``<data_dir>/<name>/`` (or ``data_dir`` itself) holding USB's pickles of ``name``."""
    return usb_files_folder(name, data_dir, files_of(name), "pickled waveforms")


def read_split(path: Path) -> tuple[list[np.ndarray], list[int]]:
    """The waveforms (1-D float32) and labels of one pickle, in its order."""
    try:
        with path.open("rb") as handle:
            samples = _PlainUnpickler(handle).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    if not isinstance(samples, dict):
        raise DataError(f"{path} must hold a pickled dict of samples (id -> {{wav, label}})")
    waves: list[np.ndarray] = []
    labels: list[int] = []
    for key, sample in samples.items():
        try:
            wave = np.load(io.BytesIO(sample["wav"]), allow_pickle=False)
            labels.append(int(sample["label"]))
        except (KeyError, TypeError, ValueError, OSError) as error:
            raise DataError(f"{path}: sample '{key}' needs wav (the bytes of a .npy waveform) and an integer label "
                            f"({type(error).__name__}: {error})") from error
        waves.append(np.asarray(wave, dtype=np.float32).reshape(-1))
    if not waves:
        raise DataError(f"{path} holds no samples")
    return waves, labels


def stack(waves: list[np.ndarray], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """``wave`` ``[N, T]`` padded with zeros to the longest, and ``length`` ``[N]``."""
    lengths = torch.tensor([len(wave) for wave in waves], dtype=torch.int64)
    values = torch.zeros(len(waves), max(1, int(lengths.max())), dtype=dtype)
    for row, wave in enumerate(waves):
        values[row, : len(wave)] = torch.from_numpy(wave).to(dtype)
    return {"wave": values, "length": lengths}


def usb_audio_split(targets: np.ndarray, num_labels: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """USB's balanced split: (labelled indices, unlabelled indices = labelled + the rest)."""
    return usb_class_split(targets, num_labels, num_classes, seed, noun="waveforms")


def _labels(labels: list[int], num_classes: int, path: Path) -> torch.Tensor:
    array = np.asarray(labels, dtype=np.int64)
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise DataError(f"{path}: labels must be 0 .. {num_classes - 1}, found {array.min()} .. {array.max()}")
    return torch.from_numpy(array)


def build_audio_dataset(name: str, config: Config, section: Any) -> SSLData:
    """Data set ``name`` under ``config.data_dir`` (on the host); ``section`` is ``audio``'s."""
    num_classes, usb_seconds, default_net, _ = DATASETS[name]
    check_num_classes(config.num_classes, num_classes, name)
    folder = folder_of(name, config.data_dir)
    dtype = torch.float16 if section.storage == "float16" else torch.float32
    seconds = section.max_length_seconds if section.max_length_seconds is not None else usb_seconds

    train_waves, train_labels = read_split(folder / "train.pkl")
    train_targets = _labels(train_labels, num_classes, folder / "train.pkl")
    eval_path = folder / ("dev.pkl" if section.eval_split == "dev" else "test.pkl")
    eval_waves, eval_labels = read_split(eval_path)
    test_targets = _labels(eval_labels, num_classes, eval_path)

    if name == "fsdnoisy":  # USB: train.pkl is the labelled set, ulb_train.pkl the unlabelled one
        labelled = stack(train_waves, dtype)
        labelled_targets = train_targets
        unlabelled_waves, unlabelled_labels = read_split(folder / UNLABELLED_FILE)
        unlabelled = stack(unlabelled_waves, dtype)
        unlabelled_targets = _labels(unlabelled_labels, num_classes, folder / UNLABELLED_FILE)
    else:
        labelled_index, unlabelled_index = usb_audio_split(train_targets.numpy(), config.num_labels, num_classes,
                                                           config.seed)
        train = stack(train_waves, dtype)

        def rows(index: np.ndarray) -> dict[str, torch.Tensor]:
            selected = torch.from_numpy(index)
            return {key: tensor[selected] for key, tensor in train.items()}

        labelled, unlabelled = rows(labelled_index), rows(unlabelled_index)
        labelled_targets = train_targets[torch.from_numpy(labelled_index)]
        unlabelled_targets = train_targets[torch.from_numpy(unlabelled_index)]

    return SSLData(
        name=name, num_classes=num_classes,
        labelled_samples=labelled, labelled_targets=labelled_targets,
        unlabelled_samples=unlabelled, unlabelled_targets=unlabelled_targets,
        test_samples=stack(eval_waves, dtype), test_targets=test_targets,
        augment=AudioSpec(sample_rate=section.sample_rate or SAMPLE_RATE, max_length_seconds=float(seconds),
                          normalize=section.normalize),
        default_net=default_net, modality=AUDIO,
    )
