"""ImageNet in USB's layout (``dataset: imagenet``, semilearn/data/imagenet.py) and USB's two
classic-CV ImageNet configuration files.

A tiny tree of JPEGs in ImageNet's layout (tests/datafiles.py: ``write_imagenet``) is built
lazily and in memory, trained on through ``semilearn run``, and broken in the ways a real
copy breaks. The labelled draw is checked against lists USB's own loader printed.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_datasets import _build, _config
from test_usb_config import USB_CLASSIC_CV

from conftest import FAST, installed
from datafiles import IMAGENET_CLASSES, write_imagenet
from semilearn.data.imagenet import labelled_positions
from semilearn.data.lazy import LazySamples
from semilearn.errors import ConfigError, DataError

PIL = pytest.importorskip("PIL.Image")
SMALL = {"img_size": 32, "crop_ratio": 0.875}  # training images stored at int(32 / 0.875) = 36

# What USB 0.3.2's ImagenetDataset labels: tests/parity/usb_draw_imagenet.py COUNTS NUM_LABELS SEED
# printed these positions in each class's sorted file order, class by class in USB's order
# (USB's listing sorted first: it shuffles names in the order the file system lists them).
USB_DRAWS = [
    ((5, 7, 6), 6, 0, [[1], [3, 4], [1, 0]]),
    ((5, 7, 6), 6, 1, [[1], [1, 6], [2, 3]]),
    ((12, 9, 10, 11), 10, 3, [[9, 4], [0, 1], [7, 3], [9, 7]]),
]
# ImageNet-sized classes: (1300, 1291, 732, 1300), num_labels 400, seed 0: per class the count,
# the first five positions and the sum of all
USB_LARGE = ([112, 111, 63, 112], [[147, 705, 898, 548, 23], [1010, 640, 787, 687, 215], [224, 420, 725, 47, 125],
                                   [151, 658, 136, 534, 818]], [71431, 73966, 24536, 66319])


@pytest.mark.parametrize(("counts", "num_labels", "seed", "expected"), USB_DRAWS)
def test_the_labelled_draw_is_usbs(counts: tuple[int, ...], num_labels: int, seed: int,
                                   expected: list[list[int]]) -> None:
    assert labelled_positions(counts, num_labels, seed) == expected


def test_the_labelled_draw_is_usbs_on_imagenet_sized_classes() -> None:
    chosen = labelled_positions((1300, 1291, 732, 1300), 400, 0)
    counts, firsts, sums = USB_LARGE
    assert [len(positions) for positions in chosen] == counts  # int(n * 400 / 4623): 112, 111, 63, 112
    assert [positions[:5] for positions in chosen] == firsts
    assert [sum(positions) for positions in chosen] == sums
    assert all(len(set(positions)) == len(positions) for positions in chosen)


def _materialized(data):
    fields = ("labelled_samples", "unlabelled_samples", "test_samples")
    return dataclasses.replace(data, **{field: getattr(data, field).materialize(2)
                                        if isinstance(getattr(data, field), LazySamples) else getattr(data, field)
                                        for field in fields})


def _pil(path: Path, prepare) -> torch.Tensor:
    with PIL.open(path) as image:
        return torch.from_numpy(np.array(prepare(image.convert("RGB")))).permute(2, 0, 1)


def test_imagenet_is_read_lazily_in_usbs_layout_with_usbs_labelled_choice(tmp_path: Path) -> None:
    written = write_imagenet(tmp_path / "data", train_counts=(5, 7, 6), val_per_class=2, size=(50, 40))
    built = _build("imagenet", _config(tmp_path / "data", num_labels=6, seed=0, num_workers=2, **SMALL))
    for field in ("labelled_samples", "unlabelled_samples", "test_samples"):
        assert isinstance(getattr(built, field), LazySamples), field  # data_loading: auto reads lazily
    assert built.labelled_samples.reader is built.unlabelled_samples.reader  # one list of the training files
    assert built.classes == IMAGENET_CLASSES and built.num_classes == 3 and built.default_net == "resnet50"
    # the unlabelled set: every training image, class by class in sorted file order
    train = [path for wnid in IMAGENET_CLASSES for path in written["train"][wnid]]
    assert built.unlabelled_samples.reader.files == [str(path) for path in train]
    assert built.unlabelled_targets.tolist() == [0] * 5 + [1] * 7 + [2] * 6
    # the labelled images: USB's draw (seed 0: positions [1], [3, 4], [1, 0] of each class's sorted files)
    labelled = [built.labelled_samples.describe(row) for row in range(len(built.labelled_samples))]
    assert labelled == [str(written["train"][wnid][position])
                        for wnid, positions in zip(IMAGENET_CLASSES, USB_DRAWS[0][3], strict=True)
                        for position in positions]
    assert built.labelled_targets.tolist() == [0, 1, 1, 2, 2]
    assert built.test_targets.tolist() == [0, 0, 1, 1, 2, 2]
    other_seed = _build("imagenet", _config(tmp_path / "data", num_labels=6, seed=1, **SMALL))
    assert [other_seed.labelled_samples.describe(row) for row in range(5)] != labelled

    data = _materialized(built)
    assert data.labelled_samples.shape == (5, 3, 36, 36) and data.unlabelled_samples.shape == (18, 3, 36, 36)
    assert data.test_samples.shape == (6, 3, 32, 32) and data.image_shape == (3, 32, 32)
    square = lambda image: image.resize((36, 36), PIL.Resampling.BILINEAR)  # noqa: E731

    def centre(image):  # the shorter side (40) to 36: 45x36, then the centre 32x32
        return image.resize((45, 36), PIL.Resampling.BILINEAR).crop((6, 2, 38, 34))

    assert torch.equal(data.unlabelled_samples[7], _pil(train[7], square))
    assert torch.equal(data.labelled_samples[0], _pil(written["train"][IMAGENET_CLASSES[0]][1], square))
    assert torch.equal(data.test_samples[5], _pil(written["val"][IMAGENET_CLASSES[2]][1], centre))
    spec = data.augment
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    assert (spec.crop, spec.max_shift, spec.flip, spec.num_ops) == (32, 0, True, 3)

    memory = _build("imagenet", _config(tmp_path / "data", num_labels=6, seed=0, data_loading="memory", **SMALL))
    for field in ("labelled_samples", "unlabelled_samples", "test_samples"):
        assert torch.equal(getattr(memory, field), getattr(data, field)), field


def test_imagenet_accepts_the_folders_at_data_dir_and_any_image_suffix(tmp_path: Path) -> None:
    written = write_imagenet(tmp_path / "data", train_counts=(3, 3))
    (tmp_path / "data" / "imagenet").rename(tmp_path / "flat")
    first = written["train"][IMAGENET_CLASSES[0]][0]
    moved = tmp_path / "flat" / "train" / IMAGENET_CLASSES[0] / "nested" / "extra.jpeg"
    moved.parent.mkdir()
    shutil.copy(tmp_path / "flat" / first.relative_to(tmp_path / "data" / "imagenet"), moved)
    (moved.parent / "notes.txt").write_text("not an image")
    (moved.parent / ".hidden.jpg").write_text("not an image either")
    data = _build("imagenet", _config(tmp_path / "flat", num_labels=2, **SMALL))
    assert len(data.unlabelled_samples) == 7 and data.unlabelled_targets.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert data.unlabelled_samples.describe(3).endswith("nested/extra.jpeg")


def test_imagenet_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    def error(data_dir: Path, **values: object) -> str:
        with pytest.raises((DataError, ConfigError)) as raised:
            _build("imagenet", _config(data_dir, **{"num_labels": 3, **SMALL, **values}))
        message = str(raised.value)
        assert "\n" not in message
        return message

    assert f"imagenet: {tmp_path / 'none' / 'imagenet' / 'train'} not found (data_dir is '{tmp_path / 'none'}')" \
        in error(tmp_path / "none")
    write_imagenet(tmp_path / "noval", train_counts=(3, 3))
    shutil.rmtree(tmp_path / "noval" / "imagenet" / "val")
    assert f"{tmp_path / 'noval' / 'imagenet' / 'val'} not found" in error(tmp_path / "noval")
    (tmp_path / "empty" / "imagenet" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "imagenet" / "val").mkdir(parents=True)
    assert "train has no class folders" in error(tmp_path / "empty")
    write_imagenet(tmp_path / "hollow", train_counts=(3, 3))
    for path in (tmp_path / "hollow" / "imagenet" / "train" / IMAGENET_CLASSES[1]).iterdir():
        path.unlink()
    assert f"{IMAGENET_CLASSES[1]} holds no images (.jpg, .jpeg" in error(tmp_path / "hollow")
    write_imagenet(tmp_path / "differ", train_counts=(3, 3))
    (tmp_path / "differ" / "imagenet" / "val" / IMAGENET_CLASSES[1]).rename(
        tmp_path / "differ" / "imagenet" / "val" / "n09999999")
    assert "the class folders of train/ and val/ differ (2 and 2): " in error(tmp_path / "differ")
    assert "val/n09999999 is a class that train/ does not have" in error(tmp_path / "differ")
    write_imagenet(tmp_path / "fine", train_counts=(3, 3))
    assert "num_labels (7) must be between 1 and the 6 training images" in error(tmp_path / "fine", num_labels=7)
    assert "num_labels (1) labels no image" in error(tmp_path / "fine", num_labels=1)
    assert "num_classes is 1000, but data set 'imagenet' has 2 classes" in error(tmp_path / "fine", num_classes=1000)


def test_imagenet_trains_through_semilearn_run(cli, tmp_path: Path) -> None:
    write_imagenet(tmp_path / "data", train_counts=(5, 7, 6))
    settings = [*FAST, "--set", "num_train_iter=2", "--set", "num_eval_iter=2", "--set", "num_log_iter=1",
                "--set", "epoch=1", "--set", "batch_size=4", "--set", "uratio=1", "--set", "net=small_cnn"]
    for override in ("dataset=imagenet", f"data_dir={tmp_path / 'data'}", "num_labels=6", "img_size=32",
                     "crop_ratio=0.875", "num_workers=2"):
        settings += ["--set", override]
    result = cli("run", *settings)
    assert result.code == 0, result.text
    assert "data: imagenet: 5 labelled, 18 unlabelled, 6 test images of 3x32x32, 3 classes · read from disk as " \
           "steps need them, by 2 workers per stream" in result.text
    assert "completed at step 2/2" in result.text


# USB's config/classic_cv/comatch/comatch_imagenet_100k_0.yaml and simmatch/simmatch_imagenet_100k_0.yaml:
# the keys they set that differ from, or are not in, the classic-CV FixMatch file (test_usb_config.py)
_IMAGENET_COMMON = {
    "epoch": 1024, "num_train_iter": 1048576, "num_log_iter": 1024, "num_eval_iter": 5120, "num_labels": 100000,
    "eval_batch_size": 256, "p_cutoff": 0.7, "ulb_loss_ratio": 1.0, "proj_size": 128, "smoothing_alpha": 0.9,
    "uratio": 1, "T": 0.1, "ema_m": 0.999, "crop_ratio": 0.875, "img_size": 224, "optim": "SGD", "lr": 0.03,
    "momentum": 0.9, "weight_decay": 0.0003, "layer_decay": 1.0, "amp": False, "clip": 0.0, "use_cat": True,
    "net": "resnet50", "net_from_name": False, "data_dir": "/home", "dataset": "imagenet",
    "train_sampler": "RandomSampler", "num_classes": 1000, "seed": 0, "world_size": 1, "rank": 0,
    "multiprocessing_distributed": True, "dist_url": "tcp://127.0.0.1:10053", "dist_backend": "nccl", "gpu": "None",
}
USB_IMAGENET_FILES = {
    "comatch": {**_IMAGENET_COMMON, "batch_size": 64, "hard_label": False, "contrast_p_cutoff": 0.2,
                "contrast_loss_ratio": 1.0, "K": 30000, "queue_batch": 5, "da_len": 128, "use_epass": False,
                "num_workers": 1},
    "simmatch": {**_IMAGENET_COMMON, "batch_size": 128, "in_loss_ratio": 1.0, "K": 100000, "da_len": 256,
                 "use_epass": True, "num_workers": 4},
}
# keys of the files that the algorithm has no use for (USB ignores them too)
_UNUSED = {"comatch": {"p_cutoff"}, "simmatch": {"p_cutoff"}}


@pytest.mark.parametrize("algorithm", sorted(USB_IMAGENET_FILES))
def test_usbs_imagenet_files_resolve(cli, tmp_path: Path, algorithm: str) -> None:
    head = {key: USB_CLASSIC_CV[key] for key in ("resume", "overwrite", "use_tensorboard")}
    raw = {"algorithm": algorithm, "save_dir": "./saved_models/classic_cv", "save_name": f"{algorithm}_imagenet_100k_0",
           **head, "load_path": f"./saved_models/classic_cv/{algorithm}_imagenet_100k_0/latest_model.pth",
           **USB_IMAGENET_FILES[algorithm]}
    (tmp_path / "usb.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    quiet = ("-p", "no:recorder", "-p", "no:recorder_late") if installed("semilearn-test-recorder") else ()
    result = cli("config", "show", "usb.yaml", *quiet)
    assert result.code == 0, result.err
    resolved = yaml.safe_load(result.out[result.out.index("algorithm:"):])
    assert (resolved["algorithm"], resolved["dataset"], resolved["net"]) == (algorithm, "imagenet", "resnet50")
    for key in ("img_size", "crop_ratio", "num_labels", "num_classes", "batch_size", "lr", "weight_decay", "T"):
        assert resolved[key] == raw[key], key
    for key, value in raw.items():
        if key in resolved and key not in _UNUSED[algorithm] and key not in ("K", "save_dir", "load_path", "gpu",
                                                                              "use_cat", "data_dir", "save_name"):
            assert resolved[key] == value, key
