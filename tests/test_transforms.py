"""CPU-side transforms (semilearn/data/transformed.py): a Dataset's views made by the user's own
callables in the workers, in place of the on-device augmentation. The callables here have
torchvision's call signature (``transform(sample) -> tensor``) and draw from the global
generators torchvision's transforms draw from: Python's ``random`` and torch's."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import semilearn
from conftest import installed
from semilearn import AlgorithmBase
from semilearn.errors import ConfigError, DataError, TrainingError

pytest.importorskip("PIL.Image")

QUICK = {"algorithm": "fixmatch", "num_train_iter": 8, "num_eval_iter": 4, "num_log_iter": 4, "epoch": 1,
         "batch_size": 8, "uratio": 2, "num_labels": 8, "eval_batch_size": 32}


class Photos(torch.utils.data.Dataset):
    """PIL images of 4 classes (each its own colour), 12x12; items (image, label)."""

    def __init__(self, count: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.targets = [index % 4 for index in range(count)]
        self.noise = rng.integers(0, 60, size=(count, 12, 12, 3))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        from PIL import Image

        colour = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])[self.targets[index]]
        pixels = (colour + self.noise[index]).clip(0, 255).astype(np.uint8)
        return Image.fromarray(pixels), self.targets[index]


class ToTensor:
    """PIL image -> float [C, H, W] in [0, 1], normalised (torchvision's ToTensor + Normalize)."""

    def __call__(self, image) -> torch.Tensor:
        array = np.asarray(image, dtype=np.float32) / 255.0
        return (torch.from_numpy(array).permute(2, 0, 1) - 0.5) / 0.25


class RandomCrop:
    """Pad by 2 and crop back at a random place; flip with probability 1/2 (Python's random)."""

    def __call__(self, image):
        from PIL import ImageOps

        padded = ImageOps.expand(image, border=2)
        left, top = random.randint(0, 4), random.randint(0, 4)
        cropped = padded.crop((left, top, left + image.width, top + image.height))
        return ImageOps.mirror(cropped) if random.random() < 0.5 else cropped


class Noise:
    """Gaussian noise drawn from torch's global generator (a strong view's stand-in)."""

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor + 0.3 * torch.randn(tensor.shape)


class Compose:
    def __init__(self, *steps) -> None:
        self.steps = steps

    def __call__(self, sample):
        for step in self.steps:
            sample = step(sample)
        return sample


def _transforms() -> dict[str, object]:
    return {"weak": Compose(RandomCrop(), ToTensor()), "strong": Compose(RandomCrop(), ToTensor(), Noise()),
            "eval": ToTensor()}


def _data(**extra: object) -> dict[str, object]:
    return {"train": Photos(48, 0), "test": Photos(12, 1), "transforms": _transforms(), **extra}


def _train(tmp_path: Path, name: str, data: object = None, **keys: object):
    return semilearn.train({**QUICK, **keys}, data=data if data is not None else _data(),
                           save_dir=str(tmp_path / name), console=False)


def test_a_run_with_transforms_is_the_same_with_0_and_2_workers(tmp_path: Path) -> None:
    runs = {workers: _train(tmp_path, f"w{workers}", num_workers=workers) for workers in (0, 2)}
    for result in runs.values():
        assert result.status == "completed" and result.algorithm.modality == "transformed"
    for name, tensor in runs[0].algorithm.module.state_dict().items():
        assert torch.equal(tensor, runs[2].algorithm.module.state_dict()[name]), name
    assert runs[0].eval_history == runs[2].eval_history


@pytest.mark.together  # runs where semilearn-checkpoint is installed
@pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="resume needs semilearn-checkpoint")
def test_a_run_with_transforms_stopped_and_resumed_ends_as_a_straight_one(tmp_path: Path) -> None:
    straight = _train(tmp_path, "straight", num_workers=2)
    first = _train(tmp_path, "halves", num_workers=2, stop_step=5)
    assert first.status == "interrupted" and first.algorithm.global_step == 5
    second = semilearn.train({**QUICK, "num_workers": 2}, data=_data(), save_dir=str(tmp_path / "halves"),
                             resume=first.run_dir, console=False)
    assert second.status == "completed"
    for name, tensor in straight.algorithm.module.state_dict().items():
        assert torch.equal(tensor, second.algorithm.module.state_dict()[name]), name


def _built(tmp_path: Path, algorithm: str, **keys: object) -> AlgorithmBase:
    from semilearn.api import _given_data
    from semilearn.plugins import PluginManager
    from semilearn.runner import build_algorithm, load_config

    manager = PluginManager().load(blocked=["logging", "checkpoint"])
    given = _given_data(_data(), "photos")
    manager.add(given)
    settings = [f"{key}={value}" for key, value in {**QUICK, "algorithm": algorithm, **keys}.items()]
    config = load_config(manager, None, [*settings, "dataset=photos", f"save_dir={tmp_path}"]).config
    return build_algorithm(config, manager, tmp_path / "run")


@pytest.mark.parametrize(("algorithm", "weak", "strong"), [
    ("fixmatch", ["x_lb", "x_ulb_w"], ["x_ulb_s"]),
    ("meanteacher", ["x_lb", "x_ulb_w", "x_ulb_w2"], []),
    ("comatch", ["x_lb", "x_ulb_w"], ["x_ulb_s_0", "x_ulb_s_1"]),
])
def test_each_view_a_step_reads_is_a_draw_of_its_own(tmp_path: Path, algorithm: str, weak: list[str],
                                                     strong: list[str]) -> None:
    built = _built(tmp_path, algorithm, num_workers=0)
    with built.lazy_loading.running():
        batch = built.sample_batch()
    views = [batch[name] for name in weak + strong]
    for view in views:
        assert view.dtype == torch.float32 and view.shape[1:] == (3, 12, 12)
    unlabelled = [batch[name] for name in weak[1:] + strong]
    for index, first in enumerate(unlabelled):  # views of the same samples, each drawn anew
        for second in unlabelled[index + 1:]:
            assert not torch.equal(first, second)


def test_an_algorithm_reading_more_views_than_it_declares_is_one_line(tmp_path: Path) -> None:
    built = _built(tmp_path, "fixmatch", num_workers=0)
    with built.lazy_loading.running():
        _, unlabelled = built.draw_unlabelled()
        built.augment.strong(unlabelled)
        with pytest.raises(TrainingError, match=r"algorithm 'fixmatch' reads strong view 2 of each sample, but its "
                                                r"views_per_sample gives 1"):
            built.augment.strong(unlabelled)


def test_transforms_refuse_memory_and_bad_callables_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CPU-side transforms draw new views at every draw"):
        _train(tmp_path, "memory", data_loading="memory")
    with pytest.raises(DataError, match="no 'strong' transform; give weak, strong and eval"):
        _train(tmp_path, "missing", data=_data(transforms={"weak": ToTensor(), "eval": ToTensor()}))
    with pytest.raises(DataError, match=r"item 0 of the training set \(Photos\): the 'eval' transform gave "
                                        r"Image; expected a float tensor"):
        _train(tmp_path, "pil", data=_data(transforms={"weak": ToTensor(), "strong": ToTensor(),
                                                       "eval": RandomCrop()}))
    bad_weak = {"weak": RandomCrop(), "strong": ToTensor(), "eval": ToTensor()}
    with pytest.raises(DataError, match=r"item \d+ of the training set \(Photos\): the 'weak' transform gave Image; "
                                        r"expected a float tensor \[3, 12, 12\]"):
        _train(tmp_path, "weak", data=_data(transforms=bad_weak), num_workers=0)
    with pytest.raises(ConfigError, match="algorithm 'sequencematch' needs image data"):
        _train(tmp_path, "sequencematch", algorithm="sequencematch")


MODULE = '''
import numpy as np
import torch
from PIL import Image


class Photos(torch.utils.data.Dataset):
    def __init__(self, count, seed):
        rng = np.random.default_rng(seed)
        self.targets = [index % 4 for index in range(count)]
        self.noise = rng.integers(0, 60, size=(count, 12, 12, 3))

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        colour = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])[self.targets[index]]
        return Image.fromarray((colour + self.noise[index]).clip(0, 255).astype(np.uint8)), self.targets[index]


def to_tensor(image):
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)


def flipped(image):
    return to_tensor(image).flip(-1) if torch.rand(()) < 0.5 else to_tensor(image)


def make(config):
    return {"train": Photos(48, 0), "test": Photos(12, 1),
            "transforms": {"weak": flipped, "strong": flipped, "eval": to_tensor}}
'''


def test_a_dataset_named_by_import_path_brings_its_transforms(cli, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from conftest import FAST

    (tmp_path / "photos_module.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("photos_module", None)
    result = cli("run", *FAST, "--set", "dataset=photos_module:make", "--set", "num_labels=8",
                 "--set", "num_workers=2")
    assert result.code == 0, result.err
    assert "data: photos_module:make: 8 labelled, 48 unlabelled, 12 test samples (transformed), 4 classes · read " \
           "from disk as steps need them, by 2 workers per stream" in result.out
    assert "completed at step 20/20" in result.out
