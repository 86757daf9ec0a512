"""What is recorded of a tensor (a sketch row), the seeded fill of a network's weights and the
precision the fixtures are computed in: shared by the generators (run beside USB's package) and
the parity tests (run beside ours). Only torch: it imports in both environments."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

SAMPLES = 8  # values kept of a sketched tensor, at evenly spaced flat positions


def sketch_row(tensor: torch.Tensor) -> torch.Tensor:
    """Thirteen numbers standing for a tensor: its sum, sum of squares, sum of absolute
    values, two projections on fixed random vectors (seeded by the size) and the values at
    ``SAMPLES`` evenly spaced flat positions. Computed in float64."""
    flat = tensor.detach().cpu().reshape(-1).double()
    count = flat.numel()
    projection = torch.randn(2, count, generator=torch.Generator().manual_seed(count), dtype=torch.float64)
    positions = torch.linspace(0, count - 1, SAMPLES).long()
    return torch.cat([torch.stack([flat.sum(), (flat * flat).sum(), flat.abs().sum()]), projection @ flat,
                      flat[positions]])


def fill(model: nn.Module, seed: int) -> None:
    """Every parameter from a generator seeded with ``seed``, in ``named_parameters`` order: normal with
    standard deviation 0.02, plus 1 for the normalisation layers' scales."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            value = torch.randn(parameter.shape, generator=generator) * 0.02
            if name.endswith(("LayerNorm.weight", "layer_norm.weight")):
                value += 1.0
            parameter.copy_(value)


# The precision the fixtures are computed in, on both sides (tests/parity/README.md, "Tolerances"):
# networks are built from the seed in float32, as USB builds them, then converted exactly.
PRECISION = torch.float64


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """``torch.get_default_dtype()`` is ``dtype`` inside the block (tensors made without a dtype)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)
