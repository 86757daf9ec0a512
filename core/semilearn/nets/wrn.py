"""Wide residual networks as USB builds them, weight for weight (WRN-28-k and its variant).

Pre-activation residual blocks (batch norm with momentum 0.001, leaky ReLU with slope
0.1), global average pooling, a linear classifier. The layers, their order and their
parameter names are USB's (``block1.layer.0.conv1.weight``, ``convShortcut``, the final
``bn1``), so that the same seed gives the same initial weights as USB's constructors and
USB's checkpoints load as they are (``semilearn checkpoint import-usb``):

* block convolutions and shortcuts have no bias; block batch norms use the default eps,
  the final one eps 0.001;
* every block has its first batch norm, also the blocks that change width without
  ``activate_before_residual`` (the first of groups two and up): there it runs -- its
  running statistics move -- but the convolution and the shortcut take the raw input;
* the first block of the first group activates its input for both paths.

``wrn_28_2`` has 1,467,626 parameters for 10 classes, ``wrn_28_8`` 23,401,028 for 100 and
``wrn_var_37_2`` (four groups, a strided first group, for 96x96 images) 5,929,450 for 10,
as USB's.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ..data.modality import InputSpec

__all__ = ["WideResNet", "wrn_28_2", "wrn_28_8", "wrn_var_37_2", "init_weights"]

_BN_MOMENTUM = 0.001
_BLOCK = re.compile(r"block(\d+)\.layer\.(\d+)\.")
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
    def __init__(self, in_planes: int, out_planes: int, stride: int, activate_before_residual: bool = False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes, momentum=_BN_MOMENTUM)
        self.relu1 = nn.LeakyReLU(_LEAKY_SLOPE, inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes, momentum=_BN_MOMENTUM)
        self.relu2 = nn.LeakyReLU(_LEAKY_SLOPE, inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = (  # noqa: N815 - USB's parameter name
            None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride=stride, padding=0, bias=False)
        )
        self.activate_before_residual = activate_before_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.equal_in_out and self.activate_before_residual:
            x = self.relu1(self.bn1(x))
            conv_input = x
        else:
            activated = self.relu1(self.bn1(x))  # computed also where unused: its running statistics move
            conv_input = activated if self.equal_in_out else x
        out = self.conv2(self.relu2(self.bn2(self.conv1(conv_input))))
        return (x if self.convShortcut is None else self.convShortcut(x)) + out


class _Group(nn.Module):
    """``blocks`` blocks; the first changes the width and applies the stride."""

    def __init__(self, blocks: int, in_planes: int, out_planes: int, stride: int,
                 activate_before_residual: bool = False) -> None:
        super().__init__()
        self.layer = nn.Sequential(*(
            _BasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1,
                        activate_before_residual)
            for i in range(blocks)
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)  # type: ignore[no-any-return]


class WideResNet(nn.Module):
    """WRN-depth-widen for ``num_classes`` classes (see the module docstring).

    Args:
        num_classes: classifier outputs.
        depth: ``6n + 4``; each group has ``n`` blocks (28: 4).
        widen_factor: width multiplier of the groups.
        in_channels: image channels.
        first_stride: stride of the first group (1; USB's variant for 96x96 images: 2).
        groups: 3 (widths 16k, 32k, 64k) or 4 (and 128k: USB's variant).

    ``forward`` returns ``logits`` and ``feat`` (see :mod:`semilearn.nets`);
    :meth:`extract` the feature map before pooling.
    """

    def __init__(self, num_classes: int, depth: int = 28, widen_factor: int = 2, in_channels: int = 3,
                 first_stride: int = 1, groups: int = 3) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError("WRN depth must be 6n + 4")
        if groups not in (3, 4):
            raise ValueError("a wide ResNet here has 3 or 4 groups")
        blocks = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor, 128 * widen_factor][: groups + 1]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=True)
        self.block1 = _Group(blocks, widths[0], widths[1], first_stride, activate_before_residual=True)
        self.block2 = _Group(blocks, widths[1], widths[2], 2)
        self.block3 = _Group(blocks, widths[2], widths[3], 2)
        self.block4 = _Group(blocks, widths[3], widths[4], 2) if groups == 4 else None
        self.bn1 = nn.BatchNorm2d(widths[-1], momentum=_BN_MOMENTUM, eps=0.001)
        self.relu = nn.LeakyReLU(_LEAKY_SLOPE, inplace=False)
        self.num_features = widths[-1]
        self.classifier = nn.Linear(widths[-1], num_classes)
        init_weights(self)

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """The activated feature map before pooling, ``[B, num_features, h, w]``."""
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        if self.block4 is not None:
            out = self.block4(out)
        return self.relu(self.bn1(out))  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = torch.flatten(F.adaptive_avg_pool2d(self.extract(x), 1), 1)
        return {"logits": self.classifier(feat), "feat": feat}

    def layer_key(self, name: str) -> tuple[int, ...] | None:
        """Layer of parameter ``name`` for layer-wise learning-rate decay (:mod:`semilearn.optim`), as USB:
        the first convolution, then each residual block, then the rest (final norm, classifier)."""
        if name.startswith("conv1"):
            return (0,)
        block = _BLOCK.match(name)
        return (1, int(block.group(1)), int(block.group(2))) if block else None


def wrn_28_2(num_classes: int, spec: InputSpec) -> WideResNet:
    return WideResNet(num_classes, depth=28, widen_factor=2, in_channels=spec.image_shape[0])


def wrn_28_8(num_classes: int, spec: InputSpec) -> WideResNet:
    return WideResNet(num_classes, depth=28, widen_factor=8, in_channels=spec.image_shape[0])


def wrn_var_37_2(num_classes: int, spec: InputSpec) -> WideResNet:
    """USB's variant for 96x96 images: four groups, the first strided (a 6x6 map before pooling)."""
    return WideResNet(num_classes, depth=28, widen_factor=2, in_channels=spec.image_shape[0], first_stride=2, groups=4)
