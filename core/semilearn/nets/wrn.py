"""Wide residual networks as used by USB for 32x32 images (WRN-28-k).

Pre-activation residual blocks, batch norm with momentum 0.001 and leaky ReLU (slope
0.1), three groups of width 16k, 32k and 64k, global average pooling.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["WideResNet", "wrn_28_2", "wrn_28_8", "init_weights"]

_BN_MOMENTUM = 0.001
_LEAKY_SLOPE = 0.1


def init_weights(model: nn.Module) -> None:
    """The wide ResNets' initialisation: He (fan-out) convolutions, unit batch norm, Xavier classifier."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu")
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.data.fill_(1)
            module.bias.data.zero_()
        elif isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            module.bias.data.zero_()


class _BasicBlock(nn.Module):
    """Pre-activation block; a block that changes width takes the raw input on both paths
    unless ``activate_before_residual`` (the first block of the network)."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, activate_before_residual: bool = False):
        super().__init__()
        self.equal_in_out = in_planes == out_planes
        self.activate_before_residual = activate_before_residual
        uses_bn1 = self.equal_in_out or activate_before_residual
        self.bn1 = nn.BatchNorm2d(in_planes, momentum=_BN_MOMENTUM, eps=0.001) if uses_bn1 else None
        self.relu1 = nn.LeakyReLU(_LEAKY_SLOPE, inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(out_planes, momentum=_BN_MOMENTUM, eps=0.001)
        self.relu2 = nn.LeakyReLU(_LEAKY_SLOPE, inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=True)
        self.shortcut = (
            None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.equal_in_out:
            conv_input = self.relu1(self.bn1(x))  # type: ignore[misc]
            residual = x
        else:
            if self.activate_before_residual:
                x = self.relu1(self.bn1(x))  # type: ignore[misc]
            conv_input = x
            residual = self.shortcut(x)  # type: ignore[misc]
        out = self.conv2(self.relu2(self.bn2(self.conv1(conv_input))))
        return residual + out


class WideResNet(nn.Module):
    """WRN-depth-widen for ``num_classes`` classes; ``forward`` returns ``logits`` and ``feat``."""

    def __init__(self, num_classes: int, depth: int = 28, widen_factor: int = 2, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WRN depth must be 6n + 4")
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=True)
        self.block1 = self._group(widths[0], widths[1], blocks, 1, activate_before_residual=True)
        self.block2 = self._group(widths[1], widths[2], blocks, 2)
        self.block3 = self._group(widths[2], widths[3], blocks, 2)
        self.bn = nn.BatchNorm2d(widths[3], momentum=_BN_MOMENTUM, eps=0.001)
        self.relu = nn.LeakyReLU(_LEAKY_SLOPE, inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = widths[3]
        self.classifier = nn.Linear(widths[3], num_classes)
        init_weights(self)

    @staticmethod
    def _group(in_planes: int, out_planes: int, blocks: int, stride: int, activate_before_residual: bool = False):
        layers = [
            _BasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1,
                        activate_before_residual)
            for i in range(blocks)
        ]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.conv1(x)
        out = self.block3(self.block2(self.block1(out)))
        out = self.relu(self.bn(out))
        feat = torch.flatten(self.pool(out), 1)
        return {"logits": self.classifier(feat), "feat": feat}


def wrn_28_2(num_classes: int, in_channels: int, image_size: int) -> WideResNet:
    return WideResNet(num_classes, depth=28, widen_factor=2, in_channels=in_channels)


def wrn_28_8(num_classes: int, in_channels: int, image_size: int) -> WideResNet:
    return WideResNet(num_classes, depth=28, widen_factor=8, in_channels=in_channels)
