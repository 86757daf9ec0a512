"""A small convolutional network for tiny images (scikit-learn's 8x8 digits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ..data.modality import InputSpec

__all__ = ["SmallCNN", "small_cnn"]


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels, momentum=0.01),
        nn.LeakyReLU(0.1, inplace=True),
    )


class SmallCNN(nn.Module):
    """Two stages of two 3x3 convolutions, a 2x2 max-pool between them, global pooling.

    Returns the network output interface of :mod:`semilearn.nets`: a dict with
    ``logits`` ``[B, num_classes]`` and ``feat`` ``[B, num_features]``.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 16) -> None:
        super().__init__()
        self.num_features = 2 * width
        self.features = nn.Sequential(
            _conv_block(in_channels, width),
            _conv_block(width, width),
            nn.MaxPool2d(2),
            _conv_block(width, 2 * width),
            _conv_block(2 * width, 2 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(self.num_features, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.features(x)
        return {"logits": self.classifier(feat), "feat": feat}


def small_cnn(num_classes: int, spec: InputSpec) -> SmallCNN:
    return SmallCNN(num_classes, spec.image_shape[0])
