"""FreeMatch (Wang et al., 2023, arXiv:2205.07246): self-adaptive thresholds and a fairness loss.

Self-adaptive thresholding (the ``"freematch"`` mask policy): a global threshold that
tracks the model's mean confidence on unlabelled data (an EMA with momentum ``ema_p``),
scaled per class by the EMA class distribution relative to its largest class, so that the
threshold is low while the model is unsure and classes it predicts rarely are easier to
pass. Self-adaptive fairness: on the strong views that pass, the mean prediction -- divided
by the histogram of predicted classes and renormalised -- is compared with the EMA class
distribution treated the same way (``ent_loss_ratio``), which discourages collapsing onto a
few classes.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..config import Option
from .common import (
    SSLAlgorithm,
    ema_p_option,
    full_precision,
    hard_label_option,
    masked_loss,
    one_hot,
    probabilities,
    supervised_loss,
    temperature_option,
    ulb_loss_ratio_option,
)

__all__ = ["FreeMatch", "fairness_loss"]


def _normalised_ratio(values: torch.Tensor, histogram: torch.Tensor) -> torch.Tensor:
    """``values / histogram`` (0 where the histogram is 0), renormalised to sum to 1."""
    scaled = values * torch.where(histogram > 0, 1.0 / histogram.clamp_min(1e-12), torch.zeros_like(histogram))
    return scaled / scaled.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def fairness_loss(logits_s: torch.Tensor, mask: torch.Tensor, p_model: torch.Tensor,
                  label_hist: torch.Tensor) -> torch.Tensor:
    """FreeMatch's self-adaptive fairness term (the paper's ``L_f``, as USB computes it).

    Over the samples with ``mask`` 1: ``sum_c m_c log(s_c)`` where ``m = SumNorm(p_model /
    label_hist)`` and ``s = SumNorm(mean(p_s) / hist_s)``, ``p_s`` the strong-view
    predictions and ``hist_s`` the histogram of their arg-max classes. 0 when no sample
    passes. Gradients reach the logits through ``mean(p_s)`` only.
    """
    probs_s = torch.softmax(full_precision(logits_s), dim=-1)
    num_classes = probs_s.shape[-1]
    weights = mask[:, None]
    count = mask.sum()
    hist_s = (one_hot(probs_s.detach().argmax(dim=-1), num_classes) * weights).sum(dim=0) / count.clamp_min(1.0)
    mean_s = (probs_s * weights).sum(dim=0) / count.clamp_min(1.0)
    model_term = _normalised_ratio(p_model, label_hist).detach()
    batch_term = _normalised_ratio(mean_s, hist_s.detach())
    loss = (model_term * torch.log(batch_term + 1e-12)).sum()
    return torch.where(count > 0, loss, torch.zeros_like(loss))


class FreeMatch(SSLAlgorithm):
    """Confidence-adaptive global and class-wise thresholds, and a class fairness loss."""

    name = "freematch"
    description = "self-adaptive global/class-wise thresholds from EMA confidence, plus a fairness loss"
    config_options: ClassVar[tuple[Option, ...]] = (
        temperature_option(0.5),
        hard_label_option(True),
        ema_p_option(0.999),
        Option("ent_loss_ratio", float, 0.001, "Weight of the self-adaptive fairness loss.", minimum=0, usb=True),
        Option("use_quantile", bool, False, "Track the 0.8 quantile of the confidence instead of its mean.",
               usb=True),
        Option("clip_thresh", bool, False, "Clip the global threshold to at most 0.95.", usb=True),
        ulb_loss_ratio_option(1.0),
    )

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_s: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        logits_lb, logits_w, logits_s = self.forward_logits(x_lb, x_ulb_w, x_ulb_s)
        sup_loss = supervised_loss(logits_lb, y_lb)
        probs = probabilities(logits_w)
        mask = self.mask("freematch", probs, momentum=config.ema_p, use_quantile=config.use_quantile,
                         clip_thresh=config.clip_thresh)
        unsup_loss = masked_loss(logits_s, self.targets_from_logits(logits_w, config.hard_label), mask)

        state = self.state_for("mask")
        uniform = torch.full_like(probs[0], 1.0 / probs.shape[-1])
        ent_loss = fairness_loss(logits_s, mask, state.get("p_model", uniform), state.get("label_hist", uniform))
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss + config.ent_loss_ratio * ent_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "ent_loss": ent_loss,
                      "mask_ratio": mask.mean()}
