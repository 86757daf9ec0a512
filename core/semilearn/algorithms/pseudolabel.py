"""Pseudo-Label (Lee, 2013; as benchmarked by Arazo et al., 2020, arXiv:1908.02983).

The network labels its own unlabelled data: the arg-max class of a weakly augmented
image becomes its hard target wherever the top probability reaches ``p_cutoff``, and the
same view is trained on it. The unlabelled loss weight ramps up linearly over the first
``unsup_warm_up`` fraction of the run, so early, unreliable labels count little. As in
USB the labelled and unlabelled batches have a forward pass each, and only the labelled one
moves the batch-norm running statistics (``joint_forward`` shares one pass). USB runs it
with ``uratio: 1``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..config import Config, Option
from .common import (
    SSLAlgorithm,
    joint_forward_option,
    masked_loss,
    p_cutoff_option,
    probabilities,
    supervised_loss,
    ulb_loss_ratio_option,
    unsup_warm_up_option,
)

__all__ = ["PseudoLabel"]


class PseudoLabel(SSLAlgorithm):
    """Hard self-training on weak views above a confidence threshold, with a warm-up ramp."""

    name = "pseudolabel"
    description = "hard pseudo-labels on weak views above p_cutoff, with a linear unsupervised warm-up"
    config_options: ClassVar[tuple[Option, ...]] = (p_cutoff_option(0.95), ulb_loss_ratio_option(1.0), unsup_warm_up_option(0.4),
                      joint_forward_option())

    @classmethod
    def views_per_sample(cls, config: Config) -> tuple[int, int]:
        return 1, 0  # weak views only

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        return {"x_lb": self.augment.weak(images), "y_lb": targets, "x_ulb_w": self.augment.weak(unlabelled)}

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        outputs_lb, outputs_ulb = self.forward_each(x_lb, x_ulb_w)
        logits_lb, logits_ulb = outputs_lb["logits"], outputs_ulb["logits"]
        sup_loss = supervised_loss(logits_lb, y_lb)

        probs = probabilities(logits_ulb)
        mask = self.mask("fixed", probs, p_cutoff=config.p_cutoff)
        targets = self.pseudo_labels("hard", probs)
        unsup_loss = masked_loss(logits_ulb, targets, mask)
        ramp = self.unsup_weight(config.unsup_warm_up)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss * ramp
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "mask_ratio": mask.mean()}
