"""Supervised baseline: cross-entropy on the labelled data only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..algorithm import AlgorithmBase

__all__ = ["Supervised"]


class Supervised(AlgorithmBase):
    """Trains on the labelled samples alone (weak augmentation); the unlabelled set is unused."""

    name = "supervised"
    description = "labelled data only (the baseline every SSL algorithm must beat)"
    uses_unlabelled = False

    def train_step(self, x_lb: torch.Tensor, y_lb: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # type: ignore[override]
        logits = self.model(x_lb)["logits"]
        sup_loss = F.cross_entropy(logits, y_lb)
        return sup_loss, {"sup_loss": sup_loss}
