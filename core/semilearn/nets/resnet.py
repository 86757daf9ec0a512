"""ResNet-18 and ResNet-50 (He et al., 2016), with the stem chosen by image size.

Four stages (stages two to four halve the size), batch norm and ReLU, global average
pooling. ResNet-18: two basic blocks a stage (two 3x3 convolutions; 64, 128, 256 and 512
channels). ResNet-50: 3, 4, 6 and 3 bottleneck blocks (a 1x1 convolution to 64, 128, 256
or 512 channels, a 3x3 convolution that carries the stage's stride, as torchvision's
"ResNet v1.5", and a 1x1 convolution to four times as many: 2048 features).

Images of 64 pixels or more get the ImageNet stem (7x7 convolution with stride 2, then
3x3 max-pooling): then the networks are USB's ``ResNet50`` class weight for weight, with
basic blocks ``[2, 2, 2, 2]`` for ResNet-18 (11,181,642 parameters for 10 classes) and
USB's own ``resnet50`` (bottlenecks ``[3, 4, 6, 3]``, 23,528,522 parameters for 10
classes, 25,557,032 for 1000): the same parameter names, the same initial weights from
the same seed (Kaiming-normal convolutions, fan-out; batch norms at 1 and 0; the
classifier as ``nn.Linear`` makes it). Smaller images get the CIFAR stem (one 3x3
convolution, no pooling), which keeps a 32x32 image at 4x4 before pooling instead of 1x1;
USB has no such stem.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ..data.modality import InputSpec

__all__ = ["ResNet", "resnet18", "resnet50"]

# Below this side the network uses the small-image stem.
LARGE_STEM_MIN_SIZE = 64
_BLOCK = re.compile(r"layer(\d+)\.(\d+)\.")


class _BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class _Bottleneck(nn.Module):
    """1x1 to ``planes``, 3x3 with the stride, 1x1 to ``planes * 4``; the shortcut projected when the shape changes."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet of basic or bottleneck blocks; ``forward`` returns ``logits`` and ``feat`` (see :mod:`semilearn.nets`).

    Args:
        num_classes: classifier outputs.
        blocks: blocks per stage (ResNet-18: ``(2, 2, 2, 2)``; ResNet-50: ``(3, 4, 6, 3)``).
        in_channels: image channels.
        large_stem: the ImageNet stem (strided 7x7 convolution and max-pooling) instead of
            a single 3x3 convolution.
        bottleneck: bottleneck blocks (ResNet-50) instead of basic blocks (ResNet-18).
    """

    def __init__(
        self,
        num_classes: int,
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        in_channels: int = 3,
        large_stem: bool = True,
        bottleneck: bool = False,
    ) -> None:
        super().__init__()
        self.large_stem = large_stem
        if large_stem:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if large_stem else nn.Identity()
        block: type[_BasicBlock | _Bottleneck] = _Bottleneck if bottleneck else _BasicBlock
        expansion = _Bottleneck.expansion if bottleneck else 1
        in_planes = 64
        for index, count in enumerate(blocks):
            planes = 64 * 2**index
            stride = 1 if index == 0 else 2
            stage = nn.Sequential(*(
                block(in_planes if i == 0 else planes * expansion, planes, stride if i == 0 else 1)
                for i in range(count)
            ))
            self.add_module(f"layer{index + 1}", stage)
            in_planes = planes * expansion
        self.num_stages = len(blocks)
        self.num_features = in_planes
        self.classifier = nn.Linear(in_planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before pooling, ``[B, num_features, h, w]``."""
        out = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index in range(self.num_stages):
            out = getattr(self, f"layer{index + 1}")(out)
        return out  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = torch.flatten(F.adaptive_avg_pool2d(self.extract(x), 1), 1)
        return {"logits": self.classifier(feat), "feat": feat}

    def layer_key(self, name: str) -> tuple[int, ...] | None:
        """Layer of parameter ``name`` for layer-wise learning-rate decay (:mod:`semilearn.optim`), as USB:
        the stem, then each block of each stage, then the classifier."""
        if name.startswith(("conv1", "bn1")):
            return (0,)
        block = _BLOCK.match(name)
        return (1, int(block.group(1)), int(block.group(2))) if block else None


def resnet18(num_classes: int, spec: InputSpec) -> ResNet:
    channels, height, _ = spec.image_shape
    return ResNet(num_classes, (2, 2, 2, 2), channels, large_stem=height >= LARGE_STEM_MIN_SIZE)


def resnet50(num_classes: int, spec: InputSpec) -> ResNet:
    channels, height, _ = spec.image_shape
    return ResNet(num_classes, (3, 4, 6, 3), channels, large_stem=height >= LARGE_STEM_MIN_SIZE, bottleneck=True)
