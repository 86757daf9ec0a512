"""The parity tolerance: how a quantity this engine computes is compared with USB's record of it.

One rule for every parity test (why, and the measurements behind it: tests/parity/README.md,
"Tolerances"). Both sides compute in float64 (``sketch.PRECISION``), and a recorded quantity
agrees when

    |ours - USB's| <= TOLERANCE * scale

where the scale is what the quantity's rounding is made of:

- a tensor of a network (a gradient, a weight, an EMA weight, a batch-norm statistic): the
  root mean square of its *layer's* tensors of that kind (the module that holds it: ``conv1``
  for ``conv1.weight`` and ``conv1.bias``), or its own if larger. A gradient that is zero in
  exact arithmetic (a convolution's bias in front of a batch norm, a softmax's shared shift)
  holds rounding noise of its layer's size, and is measured against that, not against itself.
  Its sketch's sums and projections are measured against that scale times what they add up
  (``n`` values for a sum, ``sqrt(n)`` for a projection on a normal vector, ``n`` squares);
- any other tensor (masks, pseudo-labels, distributions, an algorithm's state): its own
  root mean square;
- a number (a loss term, the learning rate, a scalar state): its own magnitude.

Integer tensors (hard labels, indices, counts) are decisions, not arithmetic: they must be equal.

One computation loses more: a difference quotient of step ``h`` (VAT's probe, ``vat_xi``)
divides the rounding of the values it subtracts by ``h``, so everything downstream of it is
compared at ``TOLERANCE / h`` (:func:`tolerance`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .sketch import SAMPLES, sketch_row

# float64's unit roundoff is 1.1e-16: the spread of three training steps across thread counts,
# oneDNN on and off and AVX2 / AVX-512 kernels stays below 1e-12 on this scale, while computing
# any one value of the step in float32 instead (the smallest real departure) moves it by 6e-8.
TOLERANCE = 1e-9
# A case's discrete decisions (masks, hard labels, integer state) must survive this relative
# perturbation of every weight and input, recorded by the generator (``decisions``): 10^6 times
# float64's rounding, so no CPU's rounding can flip one.
DECISION_MARGIN = 1e-10
_FLOOR = 1e-300  # a scale of zero: only an exact zero agrees
# One float32 forward pass computed twice in different ways (another process's settings, oneDNN
# or not, ONNX Runtime's kernels): each output within this much of the outputs' root mean square.
# float32 rounds at 6e-8; the longest reduction of a pass over small_cnn sums 288 products, whose
# worst-case rounding is 288 * 6e-8 = 1.7e-5 of their scale. Measured: at most 2.7e-6.
FLOAT32_FORWARD = 2e-5


def tolerance(finite_difference: float | None = None) -> float:
    """The relative tolerance of values computed through a difference quotient of step
    ``finite_difference`` (none: ``TOLERANCE``)."""
    return TOLERANCE / finite_difference if finite_difference else TOLERANCE

_LABELS = ("sum", "sum of squares", "sum of |x|", "projection 1", "projection 2") + ("sampled value",) * SAMPLES


class Comparison:
    """Collects what differs beyond the tolerance, and the largest relative difference seen."""

    def __init__(self, tolerance: float = TOLERANCE) -> None:
        self.tolerance = tolerance
        self.failures: list[str] = []
        self.largest = (0.0, "")

    def _note(self, difference: float, where: str) -> None:
        if difference > self.largest[0]:
            self.largest = (difference, where)
        if not difference <= self.tolerance:  # also catches NaN
            self.failures.append(f"{where}: relative difference {difference:.3g}")

    def scalar(self, ours: float, theirs: float, where: str) -> None:
        self._note(abs(ours - theirs) / max(abs(theirs), _FLOOR), where)

    def tensor(self, ours: torch.Tensor, theirs: torch.Tensor, where: str) -> None:
        """A whole tensor, against its own root mean square (integer tensors: equal)."""
        ours, theirs = ours.detach().cpu(), theirs.detach().cpu()
        if tuple(ours.shape) != tuple(theirs.shape):
            self.failures.append(f"{where}: shape {tuple(ours.shape)} here, {tuple(theirs.shape)} in USB")
            return
        if not theirs.is_floating_point():
            if not torch.equal(ours.to(theirs.dtype), theirs):
                self.failures.append(f"{where}: {ours.tolist()} here, {theirs.tolist()} in USB")
            return
        if not theirs.numel():
            return
        ours, theirs = ours.double(), theirs.double()
        scale = theirs.pow(2).mean().sqrt().item()
        self._note((ours - theirs).abs().max().item() / max(scale, _FLOOR), where)

    def row(self, ours: torch.Tensor, theirs: torch.Tensor, shape: list[int], where: str,
            layer_rms: float = 0.0) -> None:
        """Two sketch rows (see sketch.py), against the tensor's root mean square or ``layer_rms``
        if larger."""
        count = max(1, math.prod(shape))
        rms = max(math.sqrt(max(theirs[1].item(), 0.0) / count), layer_rms)
        total, norm = rms * count, rms * math.sqrt(count)
        scales = (total, rms * total, total, norm, norm) + (rms,) * SAMPLES
        for a, b, scale, label in zip(ours.tolist(), theirs.tolist(), scales, _LABELS, strict=True):
            self._note(abs(a - b) / max(scale, _FLOOR), f"{where} ({label})")

    def table(self, ours: Mapping[str, torch.Tensor], theirs: Mapping[str, Any], where: str) -> None:
        """A network's tensors of one kind (a fixture's sketch table), each against its layer's scale."""
        names = theirs["names"]
        missing = [name for name in names if name not in ours]
        if missing:
            self.failures.append(f"{where}: {len(missing)} tensors missing here, e.g. {missing[:3]}")
        extra = sorted(set(ours) - set(names))
        if extra:
            self.failures.append(f"{where}: {len(extra)} tensors only here, e.g. {extra[:3]}")
        layers = layer_rms(names, theirs["shapes"], theirs["stats"])
        for index, name in enumerate(names):
            if name not in ours:
                continue
            if list(ours[name].shape) != list(theirs["shapes"][index]):
                self.failures.append(f"{where} {name}: shape {list(ours[name].shape)} here, "
                                     f"{theirs['shapes'][index]} in USB")
                continue
            self.row(sketch_row(ours[name]), theirs["stats"][index], theirs["shapes"][index], f"{where} {name}",
                     layers[layer_of(name)])

    def value(self, ours: torch.Tensor, theirs: Mapping[str, Any], where: str) -> None:
        """A tensor against a fixture's single-tensor record (whole, or a sketch)."""
        if "tensor" in theirs:
            self.tensor(ours, theirs["tensor"], where)
        else:
            self.row(sketch_row(ours), theirs["stats"], theirs["shape"], where)

    def report(self) -> str:
        return "\n".join(self.failures[:40]) + (f"\n... and {len(self.failures) - 40} more"
                                                if len(self.failures) > 40 else "")


def layer_of(name: str) -> str:
    """The module a parameter or buffer belongs to: ``block1.layer.0.conv1`` for ``block1.layer.0.conv1.weight``."""
    return name.rpartition(".")[0]


def layer_rms(names: list[str], shapes: list[list[int]], stats: torch.Tensor) -> dict[str, float]:
    """The root mean square of each layer's tensors in a sketch table (from their sums of squares)."""
    squares: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, shape, row in zip(names, shapes, stats, strict=True):
        layer = layer_of(name)
        squares[layer] = squares.get(layer, 0.0) + max(row[1].item(), 0.0)
        counts[layer] = counts.get(layer, 0) + max(1, math.prod(shape))
    return {layer: math.sqrt(squares[layer] / counts[layer]) for layer in squares}


def forward_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """The largest difference between two computations of the same outputs, relative to their root mean square
    (compared with ``FLOAT32_FORWARD``)."""
    theirs = theirs.detach().double()
    return float((ours.detach().double() - theirs).abs().max() / max(theirs.pow(2).mean().sqrt().item(), _FLOOR))
