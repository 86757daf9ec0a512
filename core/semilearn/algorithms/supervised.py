"""Supervised baselines: cross-entropy on labelled data only.

``supervised`` trains on the labelled subset (``num_labels`` images), the baseline an SSL
algorithm must beat with the same labels; ``fullysupervised`` (USB's name) on every
training image with its label, the ceiling. Both take USB's step: one forward pass of the
weakly augmented labelled batch, the mean cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..algorithm import AlgorithmBase
from ..config import Config

__all__ = ["Supervised", "FullySupervised"]


class Supervised(AlgorithmBase):
    """Trains on the labelled samples alone (weak augmentation); the unlabelled set is unused."""

    name = "supervised"
    description = "labelled data only (the baseline every SSL algorithm must beat)"
    uses_unlabelled = False

    @classmethod
    def views_per_sample(cls, config: Config) -> tuple[int, int]:
        return 1, 0  # weak views of labelled samples only

    def train_step(self, x_lb: torch.Tensor, y_lb: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # type: ignore[override]
        logits = self.model(x_lb)["logits"]
        sup_loss = F.cross_entropy(logits, y_lb)
        return sup_loss, {"sup_loss": sup_loss}


class FullySupervised(Supervised):
    """Every training image with its label (USB's ``fullysupervised``): the fully supervised ceiling.

    Where a data set does not know the labels of its unlabelled images (STL-10's unlabelled
    split), the labelled subset is used, as in USB.
    """

    name = "fullysupervised"
    description = "every training image with its label (the fully supervised ceiling; USB's name)"
    labels_every_image = True
