"""The wide residual network USB uses for STL-10 at 96x96 (``wrn_var_37_2``).

Four groups of four pre-activation blocks (widths 32, 64, 128 and 256 for widen factor 2)
after a 16-channel stem; the first group has stride 2 and the others halve the size
again, so a 96x96 image ends as a 6x6 map before global average pooling. The 37 of the
name are its convolutions: the stem, 32 in the blocks and 4 shortcut projections. Batch
norm with momentum 0.001 and leaky ReLU (slope 0.1) as in :mod:`semilearn.nets.wrn`;
unlike there, every block that changes width normalises and activates its input before
both the convolution and the shortcut.
"""

from __future__ import annotations

import torch
from torch import nn

from .wrn import init_weights

__all__ = ["WideResNetVar", "wrn_var_37_2"]

_BN_MOMENTUM = 0.001
_LEAKY_SLOPE = 0.1


class _Block(nn.Module):
    """Pre-activation residual block; a width change activates the input for both paths."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.equal_in_out = in_planes == out_planes and stride == 1
        self.bn1 = nn.BatchNorm2d(in_planes, momentum=_BN_MOMENTUM, eps=0.001)
        self.relu1 = nn.LeakyReLU(_LEAKY_SLOPE, inplace=False)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(out_planes, momentum=_BN_MOMENTUM, eps=0.001)
        self.relu2 = nn.LeakyReLU(_LEAKY_SLOPE, inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=True)
        self.shortcut = (
            None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        activated = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(activated))))
        if self.shortcut is None:
            return x + out
        return self.shortcut(activated) + out


class WideResNetVar(nn.Module):
    """WRN variant with a fourth group and a strided first group, for larger images.

    Args:
        num_classes: classifier outputs.
        depth: ``6n + 4``; each of the four groups has ``n`` blocks (USB: 28, so 4).
        widen_factor: width multiplier of the groups (USB: 2).
        first_stride: stride of the first group (USB: 2).
        in_channels: image channels.

    ``forward`` returns ``logits`` and ``feat`` (see :mod:`semilearn.nets`).
    """

    def __init__(
        self, num_classes: int, depth: int = 28, widen_factor: int = 2, first_stride: int = 2, in_channels: int = 3
    ) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WRN depth must be 6n + 4")
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor, 128 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=True)
        self.block1 = self._group(widths[0], widths[1], blocks, first_stride)
        self.block2 = self._group(widths[1], widths[2], blocks, 2)
        self.block3 = self._group(widths[2], widths[3], blocks, 2)
        self.block4 = self._group(widths[3], widths[4], blocks, 2)
        self.bn = nn.BatchNorm2d(widths[4], momentum=_BN_MOMENTUM, eps=0.001)
        self.relu = nn.LeakyReLU(_LEAKY_SLOPE, inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = widths[4]
        self.classifier = nn.Linear(widths[4], num_classes)
        init_weights(self)

    @staticmethod
    def _group(in_planes: int, out_planes: int, blocks: int, stride: int) -> nn.Sequential:
        return nn.Sequential(
            *(_Block(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1) for i in range(blocks))
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.conv1(x)
        out = self.block4(self.block3(self.block2(self.block1(out))))
        out = self.relu(self.bn(out))
        feat = torch.flatten(self.pool(out), 1)
        return {"logits": self.classifier(feat), "feat": feat}


def wrn_var_37_2(num_classes: int, in_channels: int, image_size: int) -> WideResNetVar:
    return WideResNetVar(num_classes, depth=28, widen_factor=2, first_stride=2, in_channels=in_channels)
