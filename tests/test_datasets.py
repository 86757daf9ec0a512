"""Benchmark and custom data sets from real files in their published formats; the extra networks.

The files are tiny and generated (tests/datafiles.py); each loader must read back the
exact pixels, orientation and labels written, split them the way USB does, refuse bad
files with one clear line, and train through ``semilearn run``.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST
from datafiles import class_images, write_cifar10, write_cifar100, write_stl10, write_svhn
from semilearn.config import Config
from semilearn.data import InputSpec
from semilearn.errors import ConfigError, DataError
from semilearn.plugins import PluginManager

CPU = torch.device("cpu")


def _config(data_dir: Path | str, **values: object) -> Config:
    base: dict[str, object] = {"num_classes": None, "num_labels": 20, "seed": 0, "data_dir": str(data_dir)}
    base.update(values)
    return Config(base)


def _build(name: str, config: Config):
    """Build through the data set registry, as a run does."""
    return PluginManager().load().registry("dataset").get(name)(config, CPU)


def _short_run(cli, *overrides: str):
    settings = [*FAST, "--set", "num_train_iter=2", "--set", "num_eval_iter=2", "--set", "num_log_iter=1",
                "--set", "epoch=1"]
    for override in overrides:
        settings += ["--set", override]
    return cli("run", *settings)


# ---------------------------------------------------------------------------
# CIFAR
# ---------------------------------------------------------------------------


def test_cifar10_reads_the_pickle_batches_exactly_and_splits_as_usb(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path / "data", per_class=5)
    data = _build("cifar10", _config(tmp_path / "data", num_labels=20))
    assert torch.equal(data.unlabelled_samples, torch.from_numpy(written.train_images))  # pixels and orientation
    assert torch.equal(data.unlabelled_targets, torch.from_numpy(written.train_targets))
    assert torch.equal(data.test_samples, torch.from_numpy(written.test_images))
    assert torch.equal(data.test_targets, torch.from_numpy(written.test_targets))
    assert data.labelled_samples.dtype == torch.uint8 and data.labelled_samples.is_contiguous()
    assert np.bincount(data.labelled_targets.numpy(), minlength=10).tolist() == [2] * 10
    # every labelled image is one of the training images with its own label
    for image, label in zip(data.labelled_samples, data.labelled_targets, strict=True):
        matches = (data.unlabelled_samples == image).flatten(1).all(1).nonzero().flatten()
        assert len(matches) == 1 and data.unlabelled_targets[matches[0]] == label
    assert data.num_classes == 10 and data.default_net == "wrn_28_2"
    other_seed = _build("cifar10", _config(tmp_path / "data", num_labels=20, seed=1))
    assert not torch.equal(other_seed.labelled_samples, data.labelled_samples)
    again = _build("cifar10", _config(tmp_path / "data", num_labels=20))
    assert torch.equal(again.labelled_samples, data.labelled_samples)


def test_cifar_augmentation_is_usb_classic_cv(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "data")
    spec = _build("cifar10", _config(tmp_path / "data")).augment
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    assert (spec.max_shift, spec.padding_mode, spec.flip, spec.num_ops) == (4, "reflect", True, 3)
    assert spec.fill == 0.0 and spec.cutout_fill == pytest.approx((125 / 255, 123 / 255, 114 / 255))


def test_cutout_fills_with_a_per_channel_colour() -> None:
    from semilearn.data.augment import AugmentSpec, BatchAugment, cutout

    grey = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    out = cutout(torch.ones(64, 3, 16, 16), 0.5, torch.Generator().manual_seed(0), fill=grey)
    filled = out[:, 0] != 1
    assert filled.any()
    for channel, value in enumerate((0.1, 0.2, 0.3)):
        assert torch.allclose(out[:, channel][filled], torch.tensor(value))
    spec = AugmentSpec(mean=(0.0,) * 3, std=(1.0,) * 3, max_shift=0, num_ops=0, cutout=0.5, fill=0.0,
                       cutout_fill=(0.1, 0.2, 0.3))
    strong = BatchAugment(spec, torch.Generator().manual_seed(0)).strong(torch.full((64, 3, 16, 16), 255, dtype=torch.uint8))
    assert torch.equal(strong, out)  # same draws, same colour: the spec's cutout_fill reaches cutout


def test_usb_img_size_and_crop_ratio_resize_and_set_the_crop(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "data")
    data = _build("cifar10", _config(tmp_path / "data", img_size=48, crop_ratio=0.75))
    assert data.image_shape == (3, 48, 48) and data.labelled_samples.shape[1:] == (3, 48, 48)
    assert data.augment.max_shift == 12
    with pytest.raises(ConfigError, match="crop_ratio"):
        _build("cifar10", _config(tmp_path / "data", crop_ratio=1.5))


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    written = write_cifar100(tmp_path / "data", per_class=2)
    data = _build("cifar100", _config(tmp_path / "data", num_labels=100))
    assert torch.equal(data.unlabelled_targets, torch.from_numpy(written.train_targets))
    assert torch.equal(data.test_samples, torch.from_numpy(written.test_images))
    assert data.num_classes == 100 and data.default_net == "wrn_28_8"
    assert data.augment.mean == pytest.approx((129.3 / 255, 124.1 / 255, 112.4 / 255))


def test_the_torchvision_layout_without_the_name_folder_is_accepted(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path / "data")
    (tmp_path / "data" / "cifar10" / "cifar-10-batches-py").rename(tmp_path / "flat")
    flat = tmp_path / "plain"
    flat.mkdir()
    (tmp_path / "flat").rename(flat / "cifar-10-batches-py")
    data = _build("cifar10", _config(flat))
    assert torch.equal(data.test_samples, torch.from_numpy(written.test_images))


def test_batches_pickled_by_numpy_1_are_read(tmp_path: Path) -> None:
    """The published batches name numpy.core.multiarray (numpy 1); numpy 2 writes numpy._core."""
    written = write_cifar10(tmp_path / "data")
    for path in written.folder.glob("*_batch*"):
        content = path.read_bytes()
        assert b"numpy._core.multiarray" in content
        path.write_bytes(content.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    data = _build("cifar10", _config(tmp_path / "data"))
    assert torch.equal(data.test_samples, torch.from_numpy(written.test_images))


class _RunsCode:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_batch_that_would_run_code_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written = write_cifar10(tmp_path / "data")
    with open(written.folder / "data_batch_3", "wb") as stream:
        pickle.dump({b"data": _RunsCode(), b"labels": []}, stream, protocol=2)
    with pytest.raises(DataError, match=r"data_batch_3 is not a CIFAR python batch \(refusing to load \w+\.print\)"):
        _build("cifar10", _config(tmp_path / "data"))
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda path: path.write_bytes(path.read_bytes()[:200]), "is not a CIFAR python batch"),
        (lambda path: path.write_bytes(b"not a pickle at all"), "is not a CIFAR python batch"),
        (lambda path: pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, open(path, "wb")),
         r"expected uint8 data of shape \[N, 3072\]"),
        (lambda path: pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [0]}, open(path, "wb")),
         "is it the other CIFAR"),
        (lambda path: path.unlink(), r"cifar10/cifar-10-batches-py/data_batch_2 not found.*semilearn data download "
                                     r"cifar10 --data-dir"),
    ],
)
def test_broken_cifar_files_are_one_clear_error(tmp_path: Path, damage, expected: str) -> None:
    written = write_cifar10(tmp_path / "data")
    damage(written.folder / "data_batch_2")
    with pytest.raises(DataError, match=expected):
        _build("cifar10", _config(tmp_path / "data"))


def test_impossible_num_labels_are_configuration_errors(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "data", per_class=5)
    with pytest.raises(ConfigError, match="multiple of the 10 classes"):
        _build("cifar10", _config(tmp_path / "data", num_labels=25))
    with pytest.raises(ConfigError, match="asks for 6 labels per class, but class 0 has only 5"):
        _build("cifar10", _config(tmp_path / "data", num_labels=60))
    with pytest.raises(DataError, match="num_classes is 100, but data set 'cifar10' has 10"):
        _build("cifar10", _config(tmp_path / "data", num_classes=100))


# ---------------------------------------------------------------------------
# SVHN
# ---------------------------------------------------------------------------


def test_svhn_reads_the_mat_files_with_extra_as_usb(tmp_path: Path) -> None:
    written = write_svhn(tmp_path / "data", per_class=3, extra_per_class=2)
    data = _build("svhn", _config(tmp_path / "data", num_labels=40))
    train = np.concatenate([written.train_images, written.extra_images])
    targets = np.concatenate([written.train_targets, written.extra_targets])
    assert torch.equal(data.unlabelled_samples, torch.from_numpy(train))
    assert torch.equal(data.unlabelled_targets, torch.from_numpy(targets))  # 10 in the file is the digit 0
    assert torch.equal(data.test_samples, torch.from_numpy(written.test_images))
    assert torch.equal(data.test_targets, torch.from_numpy(written.test_targets))
    assert np.bincount(data.labelled_targets.numpy(), minlength=10).tolist() == [4] * 10  # needs extra: 3 + 2
    spec = data.augment
    assert spec.flip is False and spec.max_shift == 4 and spec.mean == (0.4380, 0.4440, 0.4730)


def test_svhn_noextra_uses_the_training_file_alone(tmp_path: Path) -> None:
    written = write_svhn(tmp_path / "data", per_class=3, extra_per_class=0)
    data = _build("svhn_noextra", _config(tmp_path / "data", num_labels=30))
    assert torch.equal(data.unlabelled_samples, torch.from_numpy(written.train_images))
    with pytest.raises(DataError, match=r"svhn/extra_32x32.mat not found.*semilearn data download svhn"):
        _build("svhn", _config(tmp_path / "data"))


def test_a_broken_svhn_file_is_one_clear_error(tmp_path: Path) -> None:
    write_svhn(tmp_path / "data", extra_per_class=0)
    (tmp_path / "data" / "svhn" / "test_32x32.mat").write_bytes(b"MATLAB? no" * 20)
    with pytest.raises(DataError, match=r"test_32x32.mat is not an SVHN .mat file"):
        _build("svhn_noextra", _config(tmp_path / "data"))
    from scipy.io import savemat

    savemat(tmp_path / "data" / "svhn" / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 2), np.float64),
                                                            "y": np.ones((2, 1))})
    with pytest.raises(DataError, match=r"expected X of uint8 \[32, 32, 3, N\]"):
        _build("svhn_noextra", _config(tmp_path / "data"))


# ---------------------------------------------------------------------------
# STL-10
# ---------------------------------------------------------------------------


def test_stl10_reads_column_major_binaries_and_adds_the_unlabelled_split(tmp_path: Path) -> None:
    written = write_stl10(tmp_path / "data", per_class=2, unlabelled=6)
    data = _build("stl10", _config(tmp_path / "data", num_labels=10))
    assert data.image_shape == (3, 96, 96)
    assert torch.equal(data.test_samples, torch.from_numpy(written.test_images))  # columns read as columns
    assert torch.equal(data.test_targets, torch.from_numpy(written.test_targets))  # 1..10 read as 0..9
    # unlabelled: the unlabelled split, then the 5000 (here 20) training images, as USB
    assert torch.equal(data.unlabelled_samples, torch.from_numpy(np.concatenate([written.extra_images,
                                                                                written.train_images])))
    assert data.unlabelled_targets is None
    assert np.bincount(data.labelled_targets.numpy(), minlength=10).tolist() == [1] * 10
    assert data.default_net == "wrn_var_37_2" and data.augment.max_shift == 12 and data.augment.flip


def test_a_truncated_stl10_file_is_one_clear_error(tmp_path: Path) -> None:
    written = write_stl10(tmp_path / "data")
    path = written.folder / "unlabeled_X.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="unlabeled_X.bin is .* bytes, not a whole number of 3x96x96 images"):
        _build("stl10", _config(tmp_path / "data", num_labels=10))
    written = write_stl10(tmp_path / "data")
    (written.folder / "test_y.bin").write_bytes(bytes([1, 2]))
    with pytest.raises(DataError, match="test_y.bin holds 2 labels for 10 images"):
        _build("stl10", _config(tmp_path / "data", num_labels=10))


# ---------------------------------------------------------------------------
# Training through `semilearn run`
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "writer", "overrides"),
    [
        ("cifar10", write_cifar10, ("num_labels=20", "batch_size=4", "uratio=1")),  # net auto: wrn_28_2
        ("cifar100", write_cifar100, ("num_labels=100", "net=small_cnn")),
        ("svhn", write_svhn, ("num_labels=30", "net=small_cnn")),
        ("stl10", write_stl10, ("num_labels=10", "batch_size=4", "uratio=1")),  # net auto: wrn_var_37_2 at 96
    ],
)
def test_each_benchmark_trains_through_semilearn_run(cli, tmp_path: Path, dataset: str, writer, overrides) -> None:
    writer(tmp_path / "data")
    result = _short_run(cli, f"dataset={dataset}", f"data_dir={tmp_path / 'data'}", *overrides)
    assert result.code == 0, result.text
    assert f"data: {dataset}:" in result.text
    assert "completed at step 2/2" in result.text
    if dataset in ("cifar10", "stl10"):
        assert f"net: {'wrn_28_2' if dataset == 'cifar10' else 'wrn_var_37_2'}" in result.text


def test_missing_benchmark_files_stop_a_run_with_one_line(cli, tmp_path: Path) -> None:
    result = _short_run(cli, "dataset=cifar10", f"data_dir={tmp_path / 'nothing'}")
    assert result.code != 0
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.text
    assert "cifar-10-batches-py/data_batch_1 not found" in lines[0]
    assert "semilearn data download cifar10" in lines[0]


# ---------------------------------------------------------------------------
# Custom data: npz
# ---------------------------------------------------------------------------


def _npz(path: Path, *, channels_last: bool = True, unlabelled: bool = True, **extra: np.ndarray) -> dict:
    labelled, labelled_targets = class_images(3, 4, 12, seed=0)
    test, test_targets = class_images(2, 4, 12, seed=1)
    pool, pool_targets = class_images(5, 4, 12, seed=2)

    def layout(images: np.ndarray) -> np.ndarray:
        return images.transpose(0, 2, 3, 1) if channels_last else images

    arrays = {"labelled_images": layout(labelled), "labelled_targets": labelled_targets,
              "test_images": layout(test), "test_targets": test_targets}
    if unlabelled:
        arrays["unlabelled_images"] = layout(pool)
    arrays.update(extra)
    np.savez(path, **arrays)
    return {"labelled": labelled, "labelled_targets": labelled_targets, "test": test, "pool": pool,
            "pool_targets": pool_targets}


def test_npz_with_unlabelled_images_uses_every_labelled_image(tmp_path: Path, caplog) -> None:
    arrays = _npz(tmp_path / "mine.npz")
    with caplog.at_level("WARNING", logger="semilearn"):
        data = _build("npz", _config(tmp_path / "mine.npz", num_labels=40))
    assert torch.equal(data.labelled_samples, torch.from_numpy(arrays["labelled"]))  # channels-last read right
    assert torch.equal(data.unlabelled_samples, torch.from_numpy(np.concatenate([arrays["labelled"], arrays["pool"]])))
    assert torch.equal(data.test_samples, torch.from_numpy(arrays["test"]))
    assert data.num_classes == 4 and data.unlabelled_targets is None
    assert data.default_net == "small_cnn" and data.augment.max_shift == 1
    assert "all 12 labelled images" in caplog.text and "num_labels (40)" in caplog.text
    mean = data.unlabelled_samples.float().div(255).mean(dim=(0, 2, 3))
    assert data.augment.mean == pytest.approx(tuple(mean.tolist()), abs=1e-3)


def test_npz_without_unlabelled_images_is_split_like_a_benchmark(tmp_path: Path) -> None:
    arrays = _npz(tmp_path / "mine.npz", channels_last=False, unlabelled=False)
    data = _build("npz", _config(tmp_path, num_labels=8))  # a folder holding one .npz
    assert torch.equal(data.unlabelled_samples, torch.from_numpy(arrays["labelled"]))
    assert np.bincount(data.labelled_targets.numpy(), minlength=4).tolist() == [2] * 4


def test_npz_grey_images_and_known_unlabelled_targets(tmp_path: Path) -> None:
    grey, targets = class_images(2, 3, 20, seed=0, channels=1)
    np.savez(tmp_path / "grey.npz", labelled_images=grey[:, 0], labelled_targets=targets,
             unlabelled_images=grey[:, 0], unlabelled_targets=targets, test_images=grey[:, 0], test_targets=targets)
    data = _build("npz", _config(tmp_path / "grey.npz", num_labels=6))
    assert data.image_shape == (1, 20, 20) and data.default_net == "wrn_28_2"
    assert torch.equal(data.unlabelled_targets, torch.from_numpy(np.concatenate([targets, targets])))
    assert len(data.augment.cutout_fill) == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"test_targets": None}, r"has no array 'test_targets'"),
        ({"labelled_images": np.zeros((12, 12, 12, 3), np.float32)}, r"'labelled_images' must be uint8"),
        ({"test_images": np.zeros((8, 3, 10, 10), np.uint8)}, r"every image array needs the same \[C, H, W\]"),
        ({"labelled_targets": np.zeros(5, np.int64)}, r"'labelled_targets' has 5 entries for 12 images"),
        ({"labelled_targets": np.full(12, 0.5)}, r"'labelled_targets' must be a 1-d integer array"),
        ({"test_images": np.zeros((8, 5, 12, 12, 2), np.uint8)}, r"expected \[N, H, W\], \[N, H, W, C\]"),
    ],
)
def test_bad_npz_contents_are_one_clear_error(tmp_path: Path, change: dict, expected: str) -> None:
    _npz(tmp_path / "mine.npz")
    with np.load(tmp_path / "mine.npz") as archive:
        arrays = {key: archive[key] for key in archive.files}
    for key, value in change.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = value
    np.savez(tmp_path / "mine.npz", **arrays)
    with pytest.raises(DataError, match=expected):
        _build("npz", _config(tmp_path / "mine.npz"))


def test_npz_path_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="reads a .npz file named by data_dir, but .* is not there"):
        _build("npz", _config(tmp_path / "absent.npz"))
    _npz(tmp_path / "a.npz")
    _npz(tmp_path / "b.npz")
    with pytest.raises(DataError, match="holds 2 .npz files"):
        _build("npz", _config(tmp_path))
    (tmp_path / "bad.npz").write_bytes(b"zip? no")
    with pytest.raises(DataError, match="bad.npz is not a readable .npz file"):
        _build("npz", _config(tmp_path / "bad.npz"))


def test_npz_trains_through_semilearn_run(cli, tmp_path: Path) -> None:
    _npz(tmp_path / "mine.npz")
    result = _short_run(cli, "dataset=npz", f"data_dir={tmp_path / 'mine.npz'}", "num_labels=12")
    assert result.code == 0, result.text
    assert "data: npz: 12 labelled, 32 unlabelled, 8 test images of 3x12x12, 4 classes" in result.text
    assert "net: small_cnn" in result.text and "completed at step 2/2" in result.text


# ---------------------------------------------------------------------------
# Custom data: image folder
# ---------------------------------------------------------------------------


def _image_folder(root: Path, *, size: int = 16, odd_size: bool = False, grey: bool = False) -> dict[str, list]:
    pil = pytest.importorskip("PIL.Image")
    written: dict[str, list] = {}
    for split, per_class, seed in (("train", 3, 0), ("test", 2, 1)):
        images, targets = class_images(per_class, 3, size, seed, channels=1 if grey else 3)
        for index, (image, target) in enumerate(zip(images, targets, strict=True)):
            folder = root / split / ["cat", "dog", "emu"][target]
            folder.mkdir(parents=True, exist_ok=True)
            array = image[0] if grey else image.transpose(1, 2, 0)
            picture = pil.fromarray(array)
            if odd_size and split == "train" and index == 0:
                picture = picture.resize((size * 2, size))
            picture.save(folder / f"{index:03d}.png")
            written.setdefault(split, []).append((folder / f"{index:03d}.png", image, int(target)))
    return written


def test_image_folder_reads_classes_in_sorted_order_and_splits_like_a_benchmark(tmp_path: Path) -> None:
    written = _image_folder(tmp_path / "pets")
    data = _build("image_folder", _config(tmp_path / "pets", num_labels=6))
    assert data.num_classes == 3 and data.image_shape == (3, 16, 16)
    by_path = sorted(written["train"], key=lambda item: (item[2], item[0].name))
    assert torch.equal(data.unlabelled_samples, torch.from_numpy(np.stack([image for _, image, _ in by_path])))
    assert data.unlabelled_targets.tolist() == [target for _, _, target in by_path]
    assert np.bincount(data.labelled_targets.numpy(), minlength=3).tolist() == [2, 2, 2]
    assert len(data.test_targets) == 6 and data.default_net == "wrn_28_2"


def test_image_folder_with_an_unlabelled_list_and_folder(tmp_path: Path) -> None:
    written = _image_folder(tmp_path / "pets", grey=True)
    root = tmp_path / "pets"
    first, second = written["train"][0][0], written["train"][1][0]
    (root / "unlabelled.txt").write_text(
        f"# labels not used\n{first.relative_to(root)}\n\n{second.relative_to(root / 'train')}\n"
    )
    (root / "unlabelled" / "batch").mkdir(parents=True)
    pytest.importorskip("PIL.Image").fromarray(np.zeros((16, 16), np.uint8)).save(root / "unlabelled" / "batch" / "x.png")
    data = _build("image_folder", _config(root, num_labels=7))
    assert data.image_shape == (1, 16, 16)
    assert len(data.labelled_targets) == 7  # 9 training images, 2 listed as unlabelled
    assert len(data.unlabelled_samples) == 7 + 2 + 1  # labelled, listed, unlabelled/
    assert data.unlabelled_targets is None
    (root / "unlabelled.txt").write_text("train/cat/nope.png\n")
    with pytest.raises(DataError, match=r"unlabelled.txt, line 1: 'train/cat/nope.png' is not an image under"):
        _build("image_folder", _config(root))


def test_image_folder_resizes_odd_images_with_a_warning(tmp_path: Path, caplog) -> None:
    _image_folder(tmp_path / "pets", odd_size=True)
    with caplog.at_level("WARNING", logger="semilearn"):
        data = _build("image_folder", _config(tmp_path / "pets", num_labels=3))
    assert data.image_shape == (3, 16, 16) and data.unlabelled_samples.shape[1:] == (3, 16, 16)
    assert "images of 2 sizes; all are resized to 16x16" in caplog.text


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"needs .*train/<class>/ and .*test/<class>/ \(or val/\)"):
        _build("image_folder", _config(tmp_path))
    _image_folder(tmp_path / "pets")
    (tmp_path / "pets" / "test" / "fox").mkdir()
    with pytest.raises(DataError, match="test/fox is a class that .*train does not have"):
        _build("image_folder", _config(tmp_path / "pets"))
    (tmp_path / "pets" / "test" / "fox").rmdir()
    (tmp_path / "pets" / "train" / "cat" / "000.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*cat/000.png"):
        _build("image_folder", _config(tmp_path / "pets", num_labels=3))


def test_image_folder_without_pillow_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for split in ("train", "test"):
        (tmp_path / split / "cat").mkdir(parents=True)
        (tmp_path / split / "cat" / "a.png").write_bytes(b"\x89PNG")
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    with pytest.raises(DataError, match="^dataset 'image_folder' decodes images with Pillow: pip install pillow$"):
        _build("image_folder", _config(tmp_path, num_labels=1))


def test_image_folder_trains_through_semilearn_run(cli, tmp_path: Path) -> None:
    _image_folder(tmp_path / "pets")
    result = _short_run(cli, "dataset=image_folder", f"data_dir={tmp_path / 'pets'}", "num_labels=6")
    assert result.code == 0, result.text
    assert "image_folder: 3 classes (cat=0, dog=1, emu=2)" in result.text
    assert "data: image_folder: 6 labelled, 9 unlabelled, 6 test images of 3x16x16, 3 classes" in result.text
    assert "completed at step 2/2" in result.text


# ---------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------


def test_the_usb_networks_are_registered_and_follow_the_interface() -> None:
    registry = PluginManager().load().registry("net")
    for name in ("wrn_28_2", "wrn_28_8", "wrn_var_37_2", "resnet18"):
        assert name in registry.names()
    wrn_var = registry.get("wrn_var_37_2")(10, InputSpec("image", (3, 96, 96)))
    convolutions = [module for module in wrn_var.modules() if isinstance(module, torch.nn.Conv2d)]
    assert len(convolutions) == 37
    assert sum(parameter.numel() for parameter in wrn_var.parameters()) == 5_929_450  # USB's count
    out = wrn_var(torch.randn(2, 3, 96, 96))
    assert out["logits"].shape == (2, 10) and out["feat"].shape == (2, wrn_var.num_features) == (2, 256)

    small = registry.get("resnet18")(7, InputSpec("image", (1, 32, 32)))
    large = registry.get("resnet18")(7, InputSpec("image", (3, 96, 96)))
    assert small.conv1.kernel_size == (3, 3) and large.conv1.kernel_size == (7, 7)
    for net, shape in ((small, (2, 1, 32, 32)), (large, (2, 3, 96, 96))):
        out = net(torch.randn(shape))
        assert out["logits"].shape == (2, 7) and out["feat"].shape == (2, 512) and net.num_features == 512
    resnet18 = registry.get("resnet18")(10, InputSpec("image", (3, 96, 96)))
    assert sum(parameter.numel() for parameter in resnet18.parameters()) == 11_181_642

    assert "resnet50" in registry.names()  # USB's ImageNet network (parity: test_usb_parity.py)
    small = registry.get("resnet50")(7, InputSpec("image", (1, 32, 32)))
    large = registry.get("resnet50")(7, InputSpec("image", (3, 64, 64)))
    assert small.conv1.kernel_size == (3, 3) and large.conv1.kernel_size == (7, 7)
    for net, shape in ((small, (2, 1, 32, 32)), (large, (2, 3, 64, 64))):
        out = net(torch.randn(shape))
        assert out["logits"].shape == (2, 7) and out["feat"].shape == (2, 2048) and net.num_features == 2048
    assert large.layer_key("conv1.weight") == (0,) and large.layer_key("layer3.5.conv3.weight") == (1, 3, 5)
    assert large.layer_key("classifier.weight") is None
    resnet50 = registry.get("resnet50")(1000, InputSpec("image", (3, 224, 224)))
    assert sum(parameter.numel() for parameter in resnet50.parameters()) == 25_557_032


def test_the_data_set_registry_lists_the_new_data_sets(cli) -> None:
    result = cli("datasets")
    assert result.code == 0
    for name in ("cifar10", "cifar100", "svhn", "svhn_noextra", "stl10", "npz", "image_folder"):
        assert name in result.out
