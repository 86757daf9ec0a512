"""SoftMatch (Chen et al., 2023, arXiv:2301.10921): truncated-Gaussian sample weights and
uniform alignment.

Rather than a hard threshold, every pseudo-label is weighted by a truncated Gaussian of its
confidence (the ``"softmatch"`` mask policy): 1 above the running mean confidence ``mu``,
``exp(-(p - mu)^2 / (2 var / n_sigma^2))`` below, with ``mu`` and ``var`` EMAs (``ema_p``)
of the batch statistics. So nothing is discarded outright, and unreliable labels count
little. The confidences are taken after uniform alignment (``dist_align``; the
``"ema"`` alignment policy towards a uniform class distribution, or towards the labelled
predictions with ``dist_uniform: false``), which keeps weights fair across classes; the
pseudo-labels themselves come from the unaligned prediction.
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
    probabilities,
    supervised_loss,
    temperature_option,
    ulb_loss_ratio_option,
)

__all__ = ["SoftMatch"]


class SoftMatch(SSLAlgorithm):
    """Every pseudo-label counts, weighted by a truncated Gaussian of its aligned confidence."""

    name = "softmatch"
    description = "truncated-Gaussian weights on pseudo-labels, after uniform distribution alignment"
    config_options: ClassVar[tuple[Option, ...]] = (
        temperature_option(0.5),
        hard_label_option(True),
        Option("dist_align", bool, True, "Align the predictions before weighting them.", usb=True),
        Option("dist_uniform", bool, True, "Align towards a uniform class distribution (else towards the "
               "labelled batch's mean prediction).", usb=True),
        ema_p_option(0.999),
        Option("n_sigma", float, 2.0, "Width of the Gaussian in standard deviations.", minimum=0,
               exclusive_minimum=True, usb=True),
        Option("per_class", bool, False, "Keep one Gaussian per predicted class.", usb=True),
        ulb_loss_ratio_option(1.0),
    )

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_s: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        logits_lb, logits_w, logits_s = self.forward_logits(x_lb, x_ulb_w, x_ulb_s)
        sup_loss = supervised_loss(logits_lb, y_lb)
        probs = aligned = probabilities(logits_w)
        if config.dist_align:
            aligned = self.align("ema", probs, "uniform" if config.dist_uniform else "model",
                                 momentum=config.ema_p, probs_lb=probabilities(logits_lb))
        mask = self.mask("softmatch", aligned, momentum=config.ema_p, n_sigma=config.n_sigma,
                         per_class=config.per_class)
        unsup_loss = masked_loss(logits_s, self.targets_from_logits(logits_w, config.hard_label), mask)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "mask_ratio": mask.mean()}
