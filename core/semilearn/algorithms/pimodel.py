"""Pi-Model (Laine and Aila, 2017, arXiv:1610.02242): consistency between two stochastic views.

Each unlabelled image is augmented twice (two independent weak views); the class
distribution predicted for the second is pulled towards the (detached) distribution of
the first by a mean squared error. The weight of that loss ramps up linearly over the
first ``unsup_warm_up`` fraction of the run. As in USB every view has a forward pass of
its own and only the labelled one moves the batch-norm running statistics
(``joint_forward`` shares one pass).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..config import Config, Option
from .common import (
    SSLAlgorithm,
    joint_forward_option,
    mse_consistency,
    probabilities,
    supervised_loss,
    ulb_loss_ratio_option,
    unsup_warm_up_option,
)

__all__ = ["PiModel"]


class PiModel(SSLAlgorithm):
    """MSE consistency between the predictions of two weak views of each unlabelled image."""

    name = "pimodel"
    description = "mean-squared consistency between the predictions of two stochastic (weak) views"
    config_options: ClassVar[tuple[Option, ...]] = (ulb_loss_ratio_option(10.0), unsup_warm_up_option(0.4), joint_forward_option())

    @classmethod
    def views_per_sample(cls, config: Config) -> tuple[int, int]:
        return 2, 0  # two weak views of each unlabelled sample

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        return {
            "x_lb": self.augment.weak(images), "y_lb": targets,
            "x_ulb_w": self.augment.weak(unlabelled), "x_ulb_w2": self.augment.weak(unlabelled),
        }

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_w2: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        logits_lb, logits_w, logits_w2 = (outputs["logits"] for outputs in self.forward_each(x_lb, x_ulb_w, x_ulb_w2))
        sup_loss = supervised_loss(logits_lb, y_lb)
        targets = probabilities(logits_w)
        unsup_loss = mse_consistency(logits_w2, targets).mean()
        ramp = self.unsup_weight(config.unsup_warm_up)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss * ramp
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss}
