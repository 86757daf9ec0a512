"""Digits split, labelled draws, sample streams and batched augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semilearn.data.augment import AugmentSpec, BatchAugment, cutout, rand_augment, random_translate
from semilearn.data.base import balanced_labelled_indices
from semilearn.data.digits import digits_arrays
from semilearn.data.sampler import SampleStream
from semilearn.errors import ConfigError


def test_digits_split_is_fixed_stratified_and_disjoint() -> None:
    train_x, train_y, test_x, test_y = digits_arrays()
    again = digits_arrays()
    assert np.array_equal(test_y, again[3]) and np.array_equal(test_x, again[2])
    assert train_x.dtype == np.uint8 and train_x.shape[1:] == (1, 8, 8)
    assert len(train_y) + len(test_y) == 1797
    # stratified: every class is ~25% test
    for label in range(10):
        share = (test_y == label).sum() / ((test_y == label).sum() + (train_y == label).sum())
        assert 0.23 < share < 0.27
    assert train_x.max() == 255 and train_x.min() == 0


def test_labelled_draw_is_balanced_and_seeded() -> None:
    _, train_y, _, _ = digits_arrays()
    first = balanced_labelled_indices(train_y, 40, 10, seed=0)
    assert np.bincount(train_y[first], minlength=10).tolist() == [4] * 10
    assert np.array_equal(first, balanced_labelled_indices(train_y, 40, 10, seed=0))
    assert not np.array_equal(first, balanced_labelled_indices(train_y, 40, 10, seed=1))
    with pytest.raises(ConfigError, match="multiple of the 10 classes"):
        balanced_labelled_indices(train_y, 41, 10, seed=0)
    with pytest.raises(ConfigError, match="asks for 500 labels per class"):
        balanced_labelled_indices(train_y, 5000, 10, seed=0)


def test_stream_visits_every_sample_once_per_pass() -> None:
    stream = SampleStream(10, 4, seed=1, device=torch.device("cpu"))
    drawn = torch.cat([stream.next() for _ in range(5)]).tolist()  # 20 draws = 2 passes
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:]) == list(range(10))


def test_stream_batch_larger_than_the_set() -> None:
    stream = SampleStream(3, 7, seed=1, device=torch.device("cpu"))
    batch = stream.next()
    assert len(batch) == 7 and set(batch.tolist()) == {0, 1, 2}


def test_stream_state_round_trip_continues_identically() -> None:
    stream = SampleStream(13, 5, seed=2, device=torch.device("cpu"))
    for _ in range(3):
        stream.next()
    state = stream.state_dict()
    expected = [stream.next().tolist() for _ in range(6)]
    other = SampleStream(13, 5, seed=99, device=torch.device("cpu"))
    other.load_state_dict(state)
    assert [other.next().tolist() for _ in range(6)] == expected
    with pytest.raises(ConfigError, match="resume with the same data set"):
        SampleStream(14, 5, seed=2, device=torch.device("cpu")).load_state_dict(state)


def test_ranks_get_disjoint_shards_of_the_global_batch() -> None:
    single = SampleStream(100, 8, seed=3, device=torch.device("cpu"))
    ranks = [SampleStream(100, 8, seed=3, device=torch.device("cpu"), rank=r, world_size=2) for r in range(2)]
    for _ in range(20):
        whole = single.next().tolist()
        shards = [stream.next().tolist() for stream in ranks]
        assert shards[0] + shards[1] == whole
        assert not set(shards[0]) & set(shards[1])
    with pytest.raises(ConfigError, match="split evenly across 3 processes"):
        SampleStream(100, 8, seed=3, device=torch.device("cpu"), rank=0, world_size=3)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_translation_moves_whole_images_by_at_most_the_shift() -> None:
    images = torch.zeros(64, 1, 8, 8)
    images[:, :, 3, 4] = 1.0
    shifted = random_translate(images, 1, _generator())
    positions = shifted.flatten(1).argmax(1)
    rows, cols = positions // 8, positions % 8
    assert shifted.sum().item() == 64  # the pixel never leaves an 8x8 image with a 1-pixel shift here
    assert set(rows.tolist()) <= {2, 3, 4} and set(cols.tolist()) <= {3, 4, 5}
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 3


def test_augmentation_is_reproducible_from_the_generator_state() -> None:
    spec = AugmentSpec(mean=(0.5,) * 3, std=(0.25,) * 3, max_shift=4, padding_mode="reflect", flip=True, fill=0.5)
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    generator = _generator(5)
    augment = BatchAugment(spec, generator)
    state = generator.get_state()
    first = augment.strong(images)
    generator.set_state(state)
    assert torch.equal(first, augment.strong(images))
    assert not torch.equal(first, augment.strong(images))
    assert first.shape == (32, 3, 32, 32) and first.dtype == torch.float32


def test_rand_augment_applies_per_sample_operations_within_range() -> None:
    images = torch.rand(256, 3, 16, 16)
    out = rand_augment(images, 2, _generator(1), fill=0.5)
    assert out.shape == images.shape
    assert out.min() >= 0 and out.max() <= 1
    changed = (out - images).abs().flatten(1).amax(1) > 1e-6
    assert 0.5 < changed.float().mean() < 1.0  # identity (and no-op draws) leave some samples untouched


def test_cutout_fills_one_square_per_image() -> None:
    images = torch.ones(128, 1, 16, 16)
    out = cutout(images, 0.5, _generator(2), fill=0.0)
    filled = (out == 0).flatten(1).sum(1)
    assert filled.max() <= 8 * 8 and filled.max() > 0
    for image, count in zip(out[:, 0] == 0, filled.tolist(), strict=True):
        rows, cols = image.any(1).sum().item(), image.any(0).sum().item()
        assert rows * cols == count  # one filled rectangle (a square, clipped at the border)
