"""AdaMatch (Berthelot et al., 2022, arXiv:2106.04732): relative confidence threshold and
distribution alignment.

The threshold is relative to how confident the model is on labelled data: ``p_cutoff``
times the mean top probability of the labelled batch's weak views (the ``"adamatch"`` mask
policy), so it adapts as training progresses instead of waiting for a fixed 0.95. Before
thresholding, the unlabelled predictions are aligned (``"ema"`` alignment policy) so that
their running class distribution matches the running mean prediction on labelled data; the
pseudo-labels come from the aligned predictions.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..config import Option
from .common import (
    SSLAlgorithm,
    ema_p_option,
    hard_label_option,
    masked_loss,
    p_cutoff_option,
    probabilities,
    sharpen_soft_labels_option,
    supervised_loss,
    temperature_option,
    ulb_loss_ratio_option,
)

__all__ = ["AdaMatch"]


class AdaMatch(SSLAlgorithm):
    """Pseudo-labels above a threshold relative to labelled confidence, after distribution alignment."""

    name = "adamatch"
    description = "relative confidence threshold (p_cutoff x labelled confidence) after distribution alignment"
    config_options: ClassVar[tuple[Option, ...]] = (
        p_cutoff_option(0.95),
        temperature_option(0.5),
        hard_label_option(True), sharpen_soft_labels_option(),
        Option("dist_align", bool, True, "Align unlabelled predictions to the labelled ones.", usb=True),
        ema_p_option(0.999),
        ulb_loss_ratio_option(1.0),
    )

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_s: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        logits_lb, logits_w, logits_s = self.forward_logits(x_lb, x_ulb_w, x_ulb_s)
        sup_loss = supervised_loss(logits_lb, y_lb)
        probs_lb, probs = probabilities(logits_lb), probabilities(logits_w)
        if config.dist_align:
            probs = self.align("ema", probs, "model", momentum=config.ema_p, probs_lb=probs_lb)
        mask = self.mask("adamatch", probs, probs_lb=probs_lb, p_cutoff=config.p_cutoff)
        unsup_loss = masked_loss(logits_s, self.pseudo_label(probs), mask)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "mask_ratio": mask.mean()}
