"""The data sets of USB's usb_cv benchmark (config/usb_cv): eurosat, tissuemnist, semi_aves, semi_inat,
and stl10 / cifar100 under the usb_cv keys (img_size, crop_ratio).

Each is built from tiny files written here in the published layout (tests/datafiles.py)
and checked for counts, shapes at img_size, labels, USB's split, class names, USB's
views, and one clear error when a file is missing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_datasets import _build, _config

from conftest import FAST
from datafiles import (
    EUROSAT_NAMES,
    write_cifar100,
    write_eurosat,
    write_semi_fgvc,
    write_stl10,
    write_tissuemnist,
)
from semilearn.data.augment import NO_COLOUR_OPS, BatchAugment, random_crop, random_resized_crop
from semilearn.data.common import resize_images
from semilearn.data.lazy import LazySamples
from semilearn.errors import DataError
from semilearn.plugins import PluginManager

PIL = pytest.importorskip("PIL.Image")
CPU = torch.device("cpu")
USB_CV = {"img_size": 32, "crop_ratio": 0.875}

# USB's labelled draws, made with USB 0.3.2's own split_ssl_data (semilearn/datasets/utils.py) after
# the np.random.seed(seed) of its train.py and the np.random.shuffle of the whole training split that
# its get_eurosat and get_medmnist do first (a script loading that one module; torchvision not needed).
# Training labels: EUROSAT_TRAIN (4, 5, 6, 7, 8, 8, 9, 4, 4, 5 images of classes 0..9, in order) and
# TISSUE_TRAIN (classes 0..7 repeated 4 times); the big case: 5000 labels RandomState(123).randint(0, 10).
EUROSAT_TRAIN = np.repeat(np.arange(10), [4, 5, 6, 7, 8, 8, 9, 4, 4, 5])
USB_EUROSAT_30_SEED_0 = [0, 3, 1, 8, 5, 7, 11, 9, 13, 19, 16, 17, 28, 27, 26, 36, 37, 35, 41, 43, 38, 47, 50, 48, 53,
                         51, 52, 55, 56, 57]
USB_EUROSAT_30_SEED_1 = [0, 1, 3, 8, 5, 4, 10, 12, 9, 15, 16, 17, 28, 27, 26, 32, 30, 37, 44, 42, 46, 47, 48, 49, 54,
                         53, 51, 56, 58, 55]
TISSUE_TRAIN = np.tile(np.arange(8), 4)
USB_TISSUE_16_SEED_0 = [16, 8, 17, 25, 18, 26, 27, 3, 12, 20, 13, 5, 14, 6, 31, 7]
USB_BIG_40_SEED_3_FIRST_10 = [3710, 4687, 2243, 4777, 4113, 3341, 767, 1484, 4598, 1062]


def _pil(path: Path, prepare) -> torch.Tensor:
    """The file decoded and prepared by Pillow alone, as ``[3, H, W]`` uint8 (the reference)."""
    with PIL.open(path) as image:
        return torch.from_numpy(np.asarray(prepare(image.convert("RGB"))).copy()).permute(2, 0, 1)


def _is_row_of(image: torch.Tensor, images: torch.Tensor) -> int:
    matches = (images == image).flatten(1).all(1).nonzero().flatten()
    assert len(matches) == 1
    return int(matches[0])


def test_the_usb_cv_data_sets_are_registered_with_descriptions() -> None:
    from semilearn.data import BUILTIN_DATASETS

    registry = PluginManager().load().registry("dataset")
    for name in ("eurosat", "tissuemnist", "semi_aves", "semi_inat", "stl10", "cifar100"):
        assert registry.get(name) is not None
        assert BUILTIN_DATASETS[name][1]


def test_the_labelled_draw_of_eurosat_and_medmnist_is_usbs_index_for_index() -> None:
    from semilearn.data.common import usb_shuffled_labelled_indices as draw
    from semilearn.errors import ConfigError

    assert draw(EUROSAT_TRAIN, 30, 10, 0).tolist() == USB_EUROSAT_30_SEED_0
    assert draw(EUROSAT_TRAIN, 30, 10, 1).tolist() == USB_EUROSAT_30_SEED_1
    assert draw(TISSUE_TRAIN, 16, 8, 0).tolist() == USB_TISSUE_16_SEED_0
    big = np.random.RandomState(123).randint(0, 10, 5000)
    assert draw(big, 40, 10, 3)[:10].tolist() == USB_BIG_40_SEED_3_FIRST_10
    with pytest.raises(ConfigError, match="multiple of the 10 classes"):
        draw(EUROSAT_TRAIN, 25, 10, 0)
    with pytest.raises(ConfigError, match="class 0 has only 4 training images"):
        draw(EUROSAT_TRAIN, 50, 10, 0)


# ---------------------------------------------------------------------------
# EuroSAT
# ---------------------------------------------------------------------------


def test_eurosat_splits_each_class_80_20_in_sorted_file_order_as_usb(tmp_path: Path) -> None:
    counts = (6, 7, 8, 9, 10, 11, 12, 5, 6, 7)
    written = write_eurosat(tmp_path / "data", counts)
    data = _build("eurosat", _config(tmp_path / "data", num_classes=10, num_labels=30, **USB_CV))
    train_counts = [int(0.8 * count) for count in counts]  # 4, 5, 6, 7, 8, 8, 9, 4, 4, 5
    assert data.num_classes == 10 and data.classes == EUROSAT_NAMES and data.class_names[9] == "SeaLake"
    assert data.image_shape == (3, 32, 32) and data.unlabelled_samples.dtype == torch.uint8
    assert np.bincount(data.unlabelled_targets.numpy()).tolist() == train_counts
    assert np.bincount(data.test_targets.numpy()).tolist() == [c - t for c, t in zip(counts, train_counts, strict=True)]
    # sorted by name, "AnnualCrop_10.jpg" < "AnnualCrop_2.jpg": the test split is the tail of that order
    resize = lambda image: image.resize((32, 32), PIL.Resampling.BILINEAR)  # noqa: E731 - USB's Resize(32) on PIL
    row = 0
    for label, name in enumerate(EUROSAT_NAMES):
        ordered = sorted(written[name], key=lambda path: path.name)
        for path in ordered[train_counts[label]:]:
            assert torch.equal(data.test_samples[row], _pil(path, resize)), path
            assert data.test_targets[row] == label
            row += 1
    first_train = sorted(written["Forest"], key=lambda path: path.name)[0]
    index = _is_row_of(_pil(first_train, resize), data.unlabelled_samples)
    assert data.unlabelled_targets[index] == 1
    # the labelled split: 3 of each class, USB's draw from the training split (in file order) by seed
    assert data.unlabelled_targets.tolist() == EUROSAT_TRAIN.tolist()
    assert np.bincount(data.labelled_targets.numpy()).tolist() == [3] * 10
    assert torch.equal(data.labelled_samples, data.unlabelled_samples[USB_EUROSAT_30_SEED_0])
    assert torch.equal(data.labelled_targets, data.unlabelled_targets[USB_EUROSAT_30_SEED_0])
    other = _build("eurosat", _config(tmp_path / "data", num_labels=30, seed=1, **USB_CV))
    assert torch.equal(other.labelled_samples, data.unlabelled_samples[USB_EUROSAT_30_SEED_1])


def test_eurosat_views_and_normalisation_are_usb(tmp_path: Path) -> None:
    write_eurosat(tmp_path / "data")
    spec = _build("eurosat", _config(tmp_path / "data", **USB_CV)).augment
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.5, 0.5, 0.5)
    assert (spec.max_shift, spec.padding_mode, spec.flip, spec.vflip, spec.num_ops) == (4, "reflect", True, True, 3)
    assert spec.strong_ops is None and spec.crop == 0 and spec.cutout == 0.5
    native = _build("eurosat", _config(tmp_path / "data"))  # without img_size: the native 64 px
    assert native.image_shape == (3, 64, 64) and native.augment.max_shift == 8


def test_eurosat_accepts_the_unzipped_folder_and_names_what_is_missing(tmp_path: Path) -> None:
    write_eurosat(tmp_path / "data")
    (tmp_path / "data" / "eurosat").rename(tmp_path / "2750")
    (tmp_path / "data" / "eurosat").mkdir()
    (tmp_path / "2750").rename(tmp_path / "data" / "eurosat" / "2750")
    assert _build("eurosat", _config(tmp_path / "data", **USB_CV)).num_classes == 10
    (tmp_path / "data" / "eurosat" / "2750" / "Forest").rename(tmp_path / "Forest")
    with pytest.raises(DataError) as error:
        _build("eurosat", _config(tmp_path / "data", **USB_CV))
    message = str(error.value)
    assert "\n" not in message and "eurosat/2750/Forest/ not found" in message
    assert "https://madm.dfki.de/files/sentinel/EuroSAT.zip" in message and "semilearn data download eurosat" in message


def _serve(monkeypatch, tmp_path: Path, name: str, filename: str, payload: bytes) -> str:
    """A file:// mirror serving ``payload`` as ``filename``, and ``name``'s source expecting its MD5."""
    import hashlib

    import semilearn.data.download as download
    from semilearn.data.download import RemoteFile, Source

    mirror = tmp_path / "mirror"
    mirror.mkdir(exist_ok=True)
    (mirror / filename).write_bytes(payload)
    digest = hashlib.md5(payload, usedforsecurity=False).hexdigest()
    original = download.SOURCES[name]
    remote = original.files[0]
    patched = Source(original.name, original.home, (RemoteFile(remote.url, digest, remote.unpack),), original.expected)
    monkeypatch.setitem(download.SOURCES, name, patched)
    return mirror.as_uri()


def _zip(folder: Path, arcname: str, extra: str | None = None) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, f"{arcname}/{path.relative_to(folder)}")
        if extra:
            bundle.writestr(extra, b"x")
    return buffer.getvalue()


def test_eurosat_downloads_the_zip_with_its_published_md5_and_unpacks_it(cli, tmp_path: Path, monkeypatch) -> None:
    from semilearn.data.download import SOURCES

    (remote,) = SOURCES["eurosat"].files
    assert remote.url == "https://madm.dfki.de/files/sentinel/EuroSAT.zip" and remote.unpack
    assert remote.md5 == "c8fa014336c82ac7804f0398fcb19387"  # torchvision's published checksum of this file
    write_eurosat(tmp_path / "made")
    mirror = _serve(monkeypatch, tmp_path, "eurosat", "EuroSAT.zip", _zip(tmp_path / "made" / "eurosat", "2750"))
    result = cli("data", "download", "eurosat", "--data-dir", str(tmp_path / "data"), "--mirror", mirror)
    assert result.code == 0, result.text
    assert (tmp_path / "data" / "eurosat" / "2750" / "SeaLake" / "SeaLake_1.jpg").is_file()
    assert len(_build("eurosat", _config(tmp_path / "data", **USB_CV)).test_samples) == 21  # n - int(0.8 n) per class
    listed = cli("data", "list", "--data-dir", str(tmp_path / "data"))
    assert any(line.startswith("eurosat") and "complete" in line for line in listed.out.splitlines())


def test_a_zip_with_an_unsafe_entry_is_refused(cli, tmp_path: Path, monkeypatch) -> None:
    write_eurosat(tmp_path / "made", counts=(1,) * 10)
    payload = _zip(tmp_path / "made" / "eurosat", "2750", extra="../escape.txt")
    mirror = _serve(monkeypatch, tmp_path, "eurosat", "EuroSAT.zip", payload)
    result = cli("data", "download", "eurosat", "--data-dir", str(tmp_path / "data"), "--mirror", mirror)
    assert result.code != 0 and "unsafe entry '../escape.txt'" in result.text
    assert not (tmp_path / "data" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()


# ---------------------------------------------------------------------------
# TissueMNIST
# ---------------------------------------------------------------------------


def test_tissuemnist_reads_train_and_test_as_rgb_at_img_size_as_usb(tmp_path: Path) -> None:
    written = write_tissuemnist(tmp_path / "data", per_class=4, val_per_class=3, test_per_class=2)
    data = _build("tissuemnist", _config(tmp_path / "data", num_classes=8, num_labels=16, img_size=32,
                                         crop_ratio=0.95))
    train_images, train_labels = written["train"]
    test_images, test_labels = written["test"]
    assert len(data.unlabelled_samples) == 32 and len(data.test_samples) == 16  # the val split is not used
    assert data.image_shape == (3, 32, 32)
    expected = resize_images(torch.from_numpy(train_images).unsqueeze(1), 32)
    for channel in range(3):  # USB's as_rgb: the grey level in every channel
        assert torch.equal(data.unlabelled_samples[:, channel : channel + 1], expected)
    assert torch.equal(data.unlabelled_targets, torch.from_numpy(train_labels))
    assert torch.equal(data.test_targets, torch.from_numpy(test_labels))
    assert torch.equal(data.test_samples[:, :1], resize_images(torch.from_numpy(test_images).unsqueeze(1), 32))
    assert np.bincount(data.labelled_targets.numpy()).tolist() == [2] * 8
    assert train_labels.tolist() == TISSUE_TRAIN.tolist()
    assert torch.equal(data.labelled_samples, data.unlabelled_samples[USB_TISSUE_16_SEED_0])  # USB's draw
    assert data.classes is not None and data.classes[0] == "Collecting Duct, Connecting Tubule" and len(data.classes) == 8
    spec = data.augment
    assert spec.mean == (0.5,) * 3 and spec.std == (0.5,) * 3
    assert (spec.max_shift, spec.padding_mode, spec.flip, spec.vflip) == (1, "reflect", True, True)  # int(32 * 0.05)
    assert spec.strong_ops == NO_COLOUR_OPS and spec.num_ops == 3


def test_tissuemnist_missing_or_wrong_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        _build("tissuemnist", _config(tmp_path / "nothing", num_labels=16))
    message = str(error.value)
    assert "medmnist/tissuemnist/tissuemnist.npz not found" in message
    assert "semilearn data download tissuemnist" in message and "\n" not in message
    folder = tmp_path / "data" / "medmnist" / "tissuemnist"
    folder.mkdir(parents=True)
    np.savez(folder / "tissuemnist.npz", train_images=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="has no array 'train_labels'"):
        _build("tissuemnist", _config(tmp_path / "data", num_labels=16))


def test_tissuemnist_has_a_download_source_with_medmnists_published_md5() -> None:
    from semilearn.data.download import SOURCES

    source = SOURCES["tissuemnist"]
    (remote,) = source.files
    assert remote.url == "https://zenodo.org/record/5208230/files/tissuemnist.npz?download=1"
    assert remote.md5 == "ebe78ee8b05294063de985d821c1c34b" and remote.filename == "tissuemnist.npz"
    assert source.home == "medmnist/tissuemnist" and source.expected == ("tissuemnist.npz",)


def test_tissuemnist_downloads_from_a_mirror_into_usbs_place(cli, tmp_path: Path, monkeypatch) -> None:
    write_tissuemnist(tmp_path / "made")
    payload = (tmp_path / "made" / "medmnist" / "tissuemnist" / "tissuemnist.npz").read_bytes()
    mirror = _serve(monkeypatch, tmp_path, "tissuemnist", "tissuemnist.npz", payload)
    result = cli("data", "download", "tissuemnist", "--data-dir", str(tmp_path / "data"), "--mirror", mirror)
    assert result.code == 0, result.text
    assert (tmp_path / "data" / "medmnist" / "tissuemnist" / "tissuemnist.npz").read_bytes() == payload
    assert len(_build("tissuemnist", _config(tmp_path / "data", num_labels=16)).test_samples) == 16


# ---------------------------------------------------------------------------
# Semi-Aves and Semi-iNat
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("loading", ["auto", "memory"])
def test_semi_aves_reads_the_lists_as_usb_and_stores_the_deterministic_resizes(tmp_path: Path, loading: str) -> None:
    """Read lazily by default (data_loading: auto), or held in memory: the same images either way."""
    written = write_semi_fgvc(tmp_path / "data", num_classes=3, per_class=3, unlabelled=5, test_per_class=2,
                              size=(60, 40))
    built = _build("semi_aves", _config(tmp_path / "data", num_classes=3, num_labels=6, data_loading=loading,
                                        num_workers=2, **USB_CV))
    lazy = {field: getattr(built, field) for field in ("labelled_samples", "unlabelled_samples", "test_samples")}
    assert all(isinstance(held, LazySamples) == (loading == "auto") for held in lazy.values())
    data = dataclasses.replace(built, **{field: held.materialize(2) if isinstance(held, LazySamples) else held
                                         for field, held in lazy.items()})
    # every l_train_val image is labelled, u_train_in alone is unlabelled, test.txt is the test split
    assert len(data.labelled_samples) == 9 and len(data.unlabelled_samples) == 5 and len(data.test_samples) == 6
    assert data.unlabelled_targets is None and data.num_classes == 3 and data.classes is None
    assert data.labelled_targets.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.test_targets.tolist() == [0, 0, 1, 1, 2, 2]
    # training images: Resize((36, 36)) (int(32 / 0.875)); test images: Resize(36) of the shorter side, CenterCrop(32)
    assert data.labelled_samples.shape[1:] == (3, 36, 36) and data.unlabelled_samples.shape[1:] == (3, 36, 36)
    assert data.image_shape == (3, 32, 32)
    square = lambda image: image.resize((36, 36), PIL.Resampling.BILINEAR)  # noqa: E731

    def centre(image):
        resized = image.resize((54, 36), PIL.Resampling.BILINEAR)  # 60x40 -> shorter side 36
        return resized.crop((11, 2, 43, 34))

    first_labelled = written["l_train_val.txt"][0][0]
    first_test = written["test.txt"][0][0]
    assert torch.equal(data.labelled_samples[0], _pil(first_labelled, square))
    assert torch.equal(data.unlabelled_samples[4], _pil(written["u_train_in.txt"][4][0], square))
    assert torch.equal(data.test_samples[0], _pil(first_test, centre))
    spec = data.augment
    assert spec.mean == (0.485, 0.456, 0.406) and spec.std == (0.229, 0.224, 0.225)
    assert (spec.crop, spec.max_shift, spec.flip, spec.vflip, spec.num_ops) == (32, 0, True, False, 3)
    augment = BatchAugment(spec, torch.Generator().manual_seed(0))
    for view in (augment.weak, augment.strong, augment.medium):
        assert view(data.unlabelled_samples).shape == (5, 3, 32, 32)
    assert augment.plain(data.test_samples).shape == (6, 3, 32, 32)


def test_semi_aves_images_beside_the_lists_folder_as_usbs_readme_draws_them(tmp_path: Path) -> None:
    write_semi_fgvc(tmp_path / "data")
    task = tmp_path / "data" / "semi_fgvc" / "semi_aves"
    for name in ("trainval_images", "u_train_in", "test"):
        (task / name).rename(task.parent / name)
    assert len(_build("semi_aves", _config(tmp_path / "data", **USB_CV)).test_samples) == 6


def test_semi_aves_and_semi_inat_name_the_missing_file_and_the_layout(tmp_path: Path) -> None:
    written = write_semi_fgvc(tmp_path / "data")
    written["u_train_in.txt"][2][0].unlink()
    with pytest.raises(DataError) as error:
        _build("semi_aves", _config(tmp_path / "data", **USB_CV))
    assert "u_train_in.txt, line 3: image" in str(error.value) and "u_train_in/2.jpg not found" in str(error.value)
    assert "\n" not in str(error.value)
    with pytest.raises(DataError) as error:
        _build("semi_inat", _config(tmp_path / "data", **USB_CV))
    message = str(error.value)
    assert "semi_fgvc/semi_inat/l_train_val.txt not found" in message
    assert "l_train_val.txt, u_train_in.txt, test.txt" in message and "\n" not in message
    write_semi_fgvc(tmp_path / "other")
    (tmp_path / "other" / "semi_fgvc" / "semi_aves" / "test.txt").write_text("\ntest/0/0.jpg zero\n")
    with pytest.raises(DataError, match="test.txt, line 2: the class 'zero' is not a whole number"):
        _build("semi_aves", _config(tmp_path / "other", **USB_CV))


def test_semi_aves_class_names_come_from_the_species_list_when_there(tmp_path: Path) -> None:
    write_semi_fgvc(tmp_path / "data", num_classes=3)
    names = tmp_path / "data" / "semi_fgvc" / "semi_aves_species_names.txt"  # where ssl-evaluation's data/ puts it
    names.write_text("0 Charadrius_semipalmatus\n1 Tachycineta_thalassina\n2 Stelgidopteryx_serripennis\n")
    data = _build("semi_aves", _config(tmp_path / "data", **USB_CV))
    assert data.classes == ("Charadrius_semipalmatus", "Tachycineta_thalassina", "Stelgidopteryx_serripennis")
    names.write_text("0 Charadrius_semipalmatus\n")
    with pytest.raises(DataError, match="names 1 classes; the lists have 3"):
        _build("semi_aves", _config(tmp_path / "data", **USB_CV))


def test_semi_inat_reads_the_same_layout(tmp_path: Path) -> None:
    write_semi_fgvc(tmp_path / "data", task="semi_inat", num_classes=4, per_class=2, unlabelled=3)
    data = _build("semi_inat", _config(tmp_path / "data", num_classes=4, **USB_CV))
    assert data.num_classes == 4 and len(data.labelled_samples) == 8 and len(data.unlabelled_samples) == 3
    with pytest.raises(DataError, match="num_classes is 810"):
        _build("semi_inat", _config(tmp_path / "data", num_classes=810, **USB_CV))


def test_random_crop_and_random_resized_crop_cut_windows_of_the_image() -> None:
    images = torch.arange(2 * 36 * 36, dtype=torch.float32).reshape(2, 1, 36, 36).expand(-1, 3, -1, -1).contiguous()
    cropped = random_crop(images, 32, torch.Generator().manual_seed(0))
    for image, crop in zip(images, cropped, strict=True):
        top, left = divmod(int(crop[0, 0, 0].item()) % (36 * 36), 36)
        assert top <= 4 and left <= 4 and torch.equal(crop, image[:, top : top + 32, left : left + 32])
    whole = random_resized_crop(images, 36, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(whole, images, atol=1e-3)
    zoomed = random_resized_crop(images, 32, torch.Generator().manual_seed(1))
    assert zoomed.shape == (2, 3, 32, 32) and zoomed.min() >= images.min() and zoomed.max() <= images.max()


# ---------------------------------------------------------------------------
# STL-10 and CIFAR-100 under the usb_cv keys
# ---------------------------------------------------------------------------


def test_stl10_and_cifar100_follow_the_usb_cv_keys(tmp_path: Path) -> None:
    write_stl10(tmp_path / "data")
    at_96 = _build("stl10", _config(tmp_path / "data", num_labels=10, img_size=96, crop_ratio=0.875))
    assert at_96.image_shape == (3, 96, 96) and at_96.augment.max_shift == 12  # int(96 * 0.125)
    at_32 = _build("stl10", _config(tmp_path / "data", num_labels=10, img_size=32, crop_ratio=0.875))
    assert at_32.image_shape == (3, 32, 32) and at_32.unlabelled_samples.shape[1:] == (3, 32, 32)
    assert at_32.augment.max_shift == 4
    write_cifar100(tmp_path / "data")
    cifar = _build("cifar100", _config(tmp_path / "data", num_labels=100, **USB_CV))
    assert cifar.image_shape == (3, 32, 32) and cifar.augment.max_shift == 4 and cifar.augment.flip


# ---------------------------------------------------------------------------
# Training through `semilearn run`
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "writer", "overrides"),
    [
        ("eurosat", write_eurosat, ("num_labels=10", "img_size=32", "crop_ratio=0.875")),
        ("tissuemnist", write_tissuemnist, ("num_labels=8", "img_size=32", "crop_ratio=0.95")),
        ("semi_aves", write_semi_fgvc, ("num_labels=9", "img_size=32", "crop_ratio=0.875")),
    ],
)
def test_usb_cv_data_sets_train_through_semilearn_run(cli, tmp_path: Path, dataset: str, writer, overrides) -> None:
    writer(tmp_path / "data")
    settings = [*FAST, "--set", "num_train_iter=2", "--set", "num_eval_iter=2", "--set", "num_log_iter=1",
                "--set", "epoch=1", "--set", "batch_size=4", "--set", "uratio=1", "--set", "net=small_cnn"]
    for override in (f"dataset={dataset}", f"data_dir={tmp_path / 'data'}", *overrides):
        settings += ["--set", override]
    result = cli("run", *settings)
    assert result.code == 0, result.text
    assert f"data: {dataset}:" in result.text and "completed at step 2/2" in result.text
