"""The GPU-path options, checked for correctness on the CPU: mixed precision, channels-last,
host-resident data, compilation. (Speed is measured on a GPU machine, not here.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import train_in_process
from semilearn.data.transfer import HostGather


def _weights(result) -> dict[str, torch.Tensor]:
    return result.algorithm.module.state_dict()


@pytest.mark.parametrize("algorithm", ["fixmatch", "flexmatch", "mixmatch"])
def test_host_resident_data_trains_exactly_like_device_data(tmp_path: Path, algorithm: str) -> None:
    on_device = train_in_process(tmp_path / "a", "num_train_iter=6", "data_device=device", f"algorithm={algorithm}")
    on_host = train_in_process(tmp_path / "b", "num_train_iter=6", "data_device=host", f"algorithm={algorithm}")
    assert on_host.algorithm.data_device == torch.device("cpu")
    assert on_host.algorithm._host_gather is not None and on_device.algorithm._host_gather is None
    for name, tensor in _weights(on_device).items():
        assert torch.equal(tensor, _weights(on_host)[name]), name


def test_host_gather_returns_the_rows_on_the_device() -> None:
    images = torch.arange(5 * 3 * 2 * 2, dtype=torch.uint8).reshape(5, 3, 2, 2)
    gather = HostGather(torch.device("cpu"))
    index = torch.tensor([4, 0, 2])
    assert torch.equal(gather.gather(images, index), images[index])


@pytest.mark.parametrize("dtype", ["bfloat16"])
def test_mixed_precision_trains_and_evaluates(tmp_path: Path, dtype: str) -> None:
    result = train_in_process(tmp_path, "num_train_iter=4", "amp=true", f"amp_dtype={dtype}")
    assert result.status == "completed"
    assert result.algorithm.amp_dtype == torch.bfloat16
    assert all(torch.isfinite(tensor).all() for tensor in _weights(result).values() if tensor.is_floating_point())


def test_channels_last_changes_memory_order_not_results(tmp_path: Path) -> None:
    last = train_in_process(tmp_path / "a", "num_train_iter=3", "channels_last=true")
    first = train_in_process(tmp_path / "b", "num_train_iter=3", "channels_last=false")
    weight = next(t for t in _weights(last).values() if t.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    for name, tensor in _weights(first).items():
        assert torch.allclose(tensor, _weights(last)[name], atol=1e-4), name


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path: Path) -> None:
    """torch.compile on the CPU takes a minute to compile: run with `pytest -m slow`."""
    eager = train_in_process(tmp_path / "a", "num_train_iter=3")
    compiled = train_in_process(tmp_path / "b", "num_train_iter=3", "compile=true")
    for name, tensor in _weights(eager).items():
        assert torch.allclose(tensor, _weights(compiled)[name], atol=1e-3), name
