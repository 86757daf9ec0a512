"""The lazy data path: samples read by worker processes as steps need them (semilearn/data/lazy.py),
and any map-style ``Dataset`` as a data set (semilearn/data/torchdata.py)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, train_in_process
from datafiles import write_image_folder
from semilearn.config import Config
from semilearn.data.lazy import LazySamples
from semilearn.errors import ConfigError, DataError

pytest.importorskip("PIL.Image")


def _config(**values: object) -> Config:
    return Config({"num_classes": None, "num_labels": 8, "seed": 0, **values})


def _build(**values: object):
    from semilearn.data.custom import build_image_folder

    return build_image_folder(_config(dataset="image_folder", **values), torch.device("cpu"))


def test_a_lazy_image_folder_holds_names_and_reads_what_memory_holds(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "pets")
    lazy = _build(data_dir=str(tmp_path / "pets"), data_loading="lazy", num_workers=2)
    memory = _build(data_dir=str(tmp_path / "pets"), data_loading="memory")
    for field in ("labelled_samples", "unlabelled_samples", "test_samples"):
        held = getattr(lazy, field)
        assert isinstance(held, LazySamples) and isinstance(held.reader.files[0], str)
        assert torch.equal(held.materialize(workers=2), getattr(memory, field)), field
    for field in ("labelled_targets", "unlabelled_targets", "test_targets"):
        assert torch.equal(getattr(lazy, field), getattr(memory, field)), field
    assert lazy.augment == memory.augment  # the same normalisation statistics, read lazily
    assert lazy.image_shape == memory.image_shape == (3, 12, 12)


def _final_weights(tmp_path: Path, name: str, *settings: str) -> dict[str, torch.Tensor]:
    result = train_in_process(tmp_path / name, "algorithm=fixmatch", "p_cutoff=0.5", "dataset=image_folder",
                              f"data_dir={tmp_path / 'pets'}", "num_labels=8", *settings)
    assert result.status == "completed"
    algorithm = result.algorithm
    return {**{f"model.{key}": value for key, value in algorithm.module.state_dict().items()},
            **{f"ema.{key}": value for key, value in algorithm.ema_model.state_dict().items()}}


def test_the_number_of_workers_changes_nothing(tmp_path: Path) -> None:
    """0, 2 and 4 workers, and the same data held in memory: bit-identical weights after training."""
    write_image_folder(tmp_path / "pets")
    runs = {"memory": _final_weights(tmp_path, "memory", "data_loading=memory")}
    for workers in (0, 2, 4):
        runs[f"{workers} workers"] = _final_weights(tmp_path, f"lazy{workers}", "data_loading=lazy",
                                                    f"num_workers={workers}")
    reference = runs.pop("memory")
    for name, weights in runs.items():
        assert weights.keys() == reference.keys()
        different = [key for key in reference if not torch.equal(weights[key], reference[key])]
        assert not different, f"{name}: {different[:3]}"


def test_the_banner_says_where_the_samples_are(cli, tmp_path: Path) -> None:
    write_image_folder(tmp_path / "pets")
    common = (*FAST, "--set", "dataset=image_folder", "--set", f"data_dir={tmp_path / 'pets'}", "--set",
              "num_labels=8", "--set", "num_train_iter=2")
    lazy = cli("run", *common, "--set", "data_loading=lazy", "--set", "num_workers=2")
    assert lazy.code == 0, lazy.err
    assert "data: image_folder: 8 labelled, 32 unlabelled, 12 test images of 3x12x12, 4 classes · read from disk " \
           "as steps need them, by 2 workers per stream (19.0 KB if decoded)" in lazy.out
    memory = cli("run", *common, "--set", "data_loading=memory")
    assert " · in memory (22.5 KB)" in memory.out  # labelled (a copy), unlabelled and test images


# ---------------------------------------------------------------------------
# A Dataset of the user's, named by import path.
# ---------------------------------------------------------------------------

MODULE = '''
import numpy as np
import torch
from PIL import Image


class Shapes(torch.utils.data.Dataset):
    """{count} PIL images of 4 classes, each class its own colour; items (image, label)."""

    def __init__(self, count, seed, size=10):
        rng = np.random.default_rng(seed)
        self.labels = [index % 4 for index in range(count)]
        self.noise = rng.integers(0, 40, size=(count, size, size, 3))
        self.size = size

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        {hook}
        colour = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])[self.labels[index]]
        return Image.fromarray((colour + self.noise[index]).clip(0, 255).astype(np.uint8)), self.labels[index]


def make(config):
    return {{"train": Shapes(48, 0), "test": Shapes(12, 1), "classes": ["red", "green", "blue", "yellow"]}}
'''


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, hook: str = "pass") -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE.format(count="count", hook=hook)))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return f"{name}:make"


@pytest.mark.parametrize("loading", ["memory", "lazy"])
def test_a_dataset_subclass_named_by_import_path_trains_to_completion(cli, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      loading: str) -> None:
    target = _module(tmp_path, monkeypatch, f"shapes_{loading}")
    result = cli("run", *FAST, "--set", f"dataset={target}", "--set", "num_labels=8", "--set",
                 f"data_loading={loading}", "--set", "num_workers=2")
    assert result.code == 0, result.err
    assert f"data: {target}: 8 labelled, 48 unlabelled, 12 test images of 3x10x10, 4 classes" in result.out
    assert "completed at step 20/20" in result.out


@pytest.mark.together
def test_a_hugging_face_dataset_in_memory_trains_to_completion(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    from semilearn.data.torchdata import build_from_datasets

    rng = np.random.default_rng(0)

    def split(count: int) -> object:
        labels = [index % 3 for index in range(count)]
        images = [(np.full((9, 9, 3), 60 * (1 + label)) + rng.integers(0, 30, (9, 9, 3))).astype(np.uint8)
                  for label in labels]
        features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=3)})
        return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features).with_format("torch")

    config = _config(num_workers=2, num_labels=6)
    data = build_from_datasets(config, split(30), split(9), name="hf")
    assert data.image_shape == (3, 9, 9) and len(data.labelled_targets) == 6 and len(data.test_targets) == 9

    from semilearn import runner
    from semilearn.plugins import PluginManager

    manager = PluginManager().load(environ={"SEMILEARN_DISABLE_PLUGIN_AUTOLOAD": "1"})
    monkey = pytest.MonkeyPatch()
    monkey.setattr(runner, "build_algorithm", _with_data(runner.build_algorithm, data))
    try:
        resolution = runner.load_config(manager, None, [item for item in FAST if item != "--set"] +
                                        [f"save_dir={tmp_path}", "num_labels=6", "dataset=hf"])
        result = runner.run(resolution.config, manager)
    finally:
        monkey.undo()
    assert result.status == "completed"


def _with_data(build, data):  # the Python entry point (next) takes data sets itself; here the builder is given
    from semilearn.data import torchdata

    def building(config, manager, run_dir, device=None):
        original = torchdata.builder_for
        torchdata.builder_for = lambda manager, name: (lambda config, device: data)
        try:
            return build(config, manager, run_dir, device)
        finally:
            torchdata.builder_for = original

    return building


# ---------------------------------------------------------------------------
# Bad input: one line naming what, and nothing lost.
# ---------------------------------------------------------------------------


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])  # the header survives: the survey passes, the decode fails


def test_an_unreadable_image_met_mid_run_stops_the_run_naming_it(cli, tmp_path: Path) -> None:
    write_image_folder(tmp_path / "pets")
    broken = sorted((tmp_path / "pets" / "train" / "c2").iterdir())[1]
    _truncate(broken)
    common = (*FAST, "--set", "dataset=image_folder", "--set", f"data_dir={tmp_path / 'pets'}", "--set",
              "num_labels=8", "--set", "data_loading=lazy", "--set", "num_workers=2")
    failed = cli("run", *common)
    assert failed.code == 1
    errors = [line for line in failed.err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and str(broken) in errors[0] and "on_bad_sample: skip" in errors[0], failed.err
    skipped = cli("run", *common, "--set", "on_bad_sample=skip")
    assert skipped.code == 0, skipped.err
    assert "completed at step 20/20" in skipped.out
    assert f"could not be read and were replaced by another sample of their batch (the first: cannot decode image " \
           f"{broken}" in skipped.out + skipped.err


def test_a_worker_that_dies_stops_the_run_with_one_line(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = ("import os, signal\n        if torch.utils.data.get_worker_info() is not None and index == 7:\n"
            "            os.kill(os.getpid(), signal.SIGKILL)")
    target = _module(tmp_path, monkeypatch, "dying", hook)
    result = cli("run", *FAST, "--set", f"dataset={target}", "--set", "num_labels=8", "--set", "data_loading=lazy",
                 "--set", "num_workers=2")
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "a worker process reading the" in errors[0] and "died" in errors[0] \
        and "resume from the last checkpoint" in errors[0], result.err


def test_a_dataset_that_gives_the_wrong_thing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from semilearn.data.torchdata import build_from_datasets

    class Numbers(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 10

        def __getitem__(self, index: int) -> int:
            return index

    class Uneven(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 12

        def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
            side = 8 if index != 5 else 9
            return torch.zeros(3, side, side, dtype=torch.uint8), index % 2

    config = _config(num_labels=2, data_loading="memory")
    with pytest.raises(DataError, match=r"item 0 of the training set \(Numbers\): an item is a int; expected "
                                        r"\(sample, label\) or a dict"):
        build_from_datasets(config, Numbers(), Numbers())
    with pytest.raises(DataError, match=r"item 5 of the training set \(Uneven\): read as torch.uint8 \[3, 9, 9\], "
                                        r"expected uint8 \[3, 8, 8\] like the other samples"):
        build_from_datasets(config, Uneven(), Uneven())
    resized = build_from_datasets(_config(num_labels=2, data_loading="memory", img_size=8), Uneven(), Uneven())
    assert resized.image_shape == (3, 8, 8)
    with pytest.raises(DataError, match="the test set is empty"):
        build_from_datasets(config, Uneven(), torch.utils.data.TensorDataset(torch.zeros(0)))


def test_an_import_path_that_does_not_import(cli, tmp_path: Path) -> None:
    result = cli("run", *FAST, "--set", "dataset=no_such_module_here:make")
    assert result.code == 2
    assert result.err.strip().splitlines()[-1].startswith(
        "error: dataset 'no_such_module_here:make': cannot import no_such_module_here")
    with pytest.raises(ConfigError, match="has no attribute 'nothing'"):
        from semilearn.data.torchdata import _import

        _import("semilearn.data:nothing")
