"""USB's text benchmarks, read from USB's released json files.

Layout (USB's ``usb_nlp`` data): ``<data_dir>/<name>/train.json``, ``dev.json`` and
``test.json`` (a ``data_dir`` holding the three files itself is accepted too). Each file is
a json object of samples, read in file order; a sample is an object with

* ``ori``: the text;
* ``aug_0``, ``aug_1``: two back-translations of it, the stored strong views (read from
  ``train.json`` only, as USB does);
* ``label``: the class index (an integer, or its text).

Splits, as USB makes them: the labelled samples are ``num_labels / num_classes`` of each
class, drawn from ``train.json`` by shuffling each class's indices in class order with
NumPy's legacy generator seeded by ``seed`` (USB seeds ``np.random`` with it and calls
``np.random.shuffle``), so the same ``seed`` picks the same texts USB picks. The unlabelled
set is the labelled samples followed by the rest of each class. Evaluation reads
``dev.json`` (USB's ``eval`` split, the one its evaluation reports) unless
``nlp.eval_split`` is ``test``.

Every text is tokenised once, here, with the network's tokenizer and cut to
``nlp.max_length`` tokens (USB's ``max_length``, 512 in its configurations): token ids
take ``4 * max tokens`` bytes per stored text, three texts per training sample.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from semilearn.data.base import SSLData, check_num_classes
from semilearn.data.common import usb_class_split, usb_files_folder
from semilearn.errors import DataError

from .names import DATASETS, DEFAULT_NET, TEXT
from .pretrained import load_tokenizer, source_of
from .views import TextSpec

if TYPE_CHECKING:
    from semilearn.config import Config

__all__ = ["folder_of", "read_split", "tokenise", "usb_text_split", "build_text_dataset"]

SPLIT_FILES = ("train.json", "dev.json", "test.json")


def folder_of(name: str, data_dir: str) -> Path:
    """``<data_dir>/<name>/`` (or ``data_dir`` itself) holding the three json files."""
    return usb_files_folder(name, data_dir, SPLIT_FILES, "json files")


def read_split(path: Path, with_strong_views: bool) -> tuple[list[list[str]], list[int]]:
    """The texts (``[ori]``, or ``[ori, aug_0, aug_1]``) and labels of one json file, in file order."""
    try:
        samples = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    if not isinstance(samples, dict):
        raise DataError(f"{path} must hold a json object of samples (id -> {{ori, aug_0, aug_1, label}})")
    fields = ("ori", "aug_0", "aug_1") if with_strong_views else ("ori",)
    texts: list[list[str]] = []
    labels: list[int] = []
    for key, sample in samples.items():
        try:
            texts.append([str(sample[field]) for field in fields])
            labels.append(int(sample["label"]))
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path}: sample '{key}' needs {', '.join(fields)} and an integer label "
                            f"({type(error).__name__}: {error})") from error
    if not texts:
        raise DataError(f"{path} holds no samples")
    return texts, labels


def tokenise(tokenizer: Any, texts: list[list[str]], max_length: int) -> dict[str, torch.Tensor]:
    """Token ids ``[N, T, L]`` (int32, padded) and lengths ``[N, T]`` of ``T`` texts per sample."""
    per_sample = len(texts[0])
    flat = [sample[index] for sample in texts for index in range(per_sample)]
    encoded = tokenizer(flat, truncation=True, max_length=max_length, padding=False)["input_ids"]
    lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.int64)
    width = int(lengths.max())
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(flat), width), pad, dtype=torch.int32)
    for row, tokens in enumerate(encoded):
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.int32)
    return {"input_ids": ids.view(len(texts), per_sample, width), "length": lengths.view(len(texts), per_sample)}


def usb_text_split(targets: np.ndarray, num_labels: int, num_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """USB's balanced split: (labelled indices, unlabelled indices = labelled + the rest)."""
    return usb_class_split(targets, num_labels, num_classes, seed, noun="texts")


def _check_labels(labels: np.ndarray, num_classes: int, path: Path) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{path}: labels must be 0 .. {num_classes - 1}, found {labels.min()} .. {labels.max()}")


def build_text_dataset(name: str, config: Config, pretrain_path: str | None, max_length: int,
                       eval_split: str) -> SSLData:
    """Data set ``name`` under ``config.data_dir``, tokenised for ``config.net`` (on the host)."""
    num_classes = DATASETS[name][0]
    check_num_classes(config.num_classes, num_classes, name)
    folder = folder_of(name, config.data_dir)
    net = DEFAULT_NET if config.net == "auto" else config.net
    tokenizer = load_tokenizer(net, pretrain_path)

    train_texts, train_labels = read_split(folder / "train.json", with_strong_views=True)
    eval_path = folder / ("dev.json" if eval_split == "dev" else "test.json")
    eval_texts, eval_labels = read_split(eval_path, with_strong_views=False)
    targets = np.asarray(train_labels, dtype=np.int64)
    _check_labels(targets, num_classes, folder / "train.json")
    _check_labels(np.asarray(eval_labels), num_classes, eval_path)
    labelled_index, unlabelled_index = usb_text_split(targets, config.num_labels, num_classes, config.seed)

    train = tokenise(tokenizer, train_texts, max_length)
    evaluation = tokenise(tokenizer, eval_texts, max_length)
    train_targets = torch.from_numpy(targets)

    def rows(index: np.ndarray) -> dict[str, torch.Tensor]:
        selected = torch.from_numpy(index)
        return {key: tensor[selected] for key, tensor in train.items()}

    return SSLData(
        name=name, num_classes=num_classes,
        labelled_samples=rows(labelled_index), labelled_targets=train_targets[torch.from_numpy(labelled_index)],
        unlabelled_samples=rows(unlabelled_index),
        unlabelled_targets=train_targets[torch.from_numpy(unlabelled_index)],
        test_samples=evaluation, test_targets=torch.tensor(eval_labels, dtype=torch.int64),
        augment=TextSpec(pad_token_id=int(tokenizer.pad_token_id or 0), max_length=max_length,
                         tokenizer=source_of(net, pretrain_path)),
        default_net=DEFAULT_NET, modality=TEXT,
    )
