"""UDA (Xie et al., 2020, arXiv:1904.12848): sharpened soft targets, confidence masking and
training signal annealing.

The weak view's prediction is the soft target of the strong view, for samples whose top
probability reaches ``p_cutoff`` (0.8). As in USB the probabilities are used unchanged;
``sharpen_soft_labels`` sharpens them with ``T`` (0.4) as the paper does. Training signal
annealing (TSA) keeps the few labelled samples from being memorised early: a labelled
sample drops out of the supervised loss once the model's top probability for it exceeds
``eta_t`` (as USB; ``tsa_true_class`` compares the true class's probability, as the paper),
which rises from ``1 / C`` to 1 over the run along ``tsa_schedule`` (``linear``, ``exp``
or ``log`` in the training progress; ``none`` turns TSA off).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from ..config import Option
from .common import (
    SSLAlgorithm,
    cross_entropy,
    masked_loss,
    p_cutoff_option,
    probabilities,
    sharpen_soft_labels_option,
    temperature_option,
    ulb_loss_ratio_option,
)

__all__ = ["UDA", "tsa_threshold"]

TSA_SCHEDULES = ("none", "linear", "exp", "log")


def tsa_threshold(schedule: str, progress: float, num_classes: int) -> float:
    """TSA's ``eta_t = alpha_t (1 - 1/C) + 1/C`` at ``progress = t / T`` in [0, 1].

    ``alpha_t`` is ``progress`` (linear), ``exp(5 (progress - 1))`` (exp: releases the
    labelled loss late) or ``1 - exp(-5 progress)`` (log: early); ``none`` gives 1.
    """
    if schedule == "none":
        return 1.0
    if schedule == "linear":
        alpha = progress
    elif schedule == "exp":
        alpha = math.exp((progress - 1.0) * 5.0)
    elif schedule == "log":
        alpha = 1.0 - math.exp(-progress * 5.0)
    else:
        raise ValueError(f"unknown TSA schedule '{schedule}' ({', '.join(TSA_SCHEDULES)})")
    return alpha * (1.0 - 1.0 / num_classes) + 1.0 / num_classes


class UDA(SSLAlgorithm):
    """Soft sharpened targets on confident weak views train strong views; TSA on labelled data."""

    name = "uda"
    description = "sharpened soft targets with a confidence mask, and training signal annealing (TSA)"
    config_options: ClassVar[tuple[Option, ...]] = (
        temperature_option(0.4),
        sharpen_soft_labels_option(),
        p_cutoff_option(0.8),
        Option("tsa_schedule", str, "none", "Training signal annealing schedule of the labelled loss.",
               choices=TSA_SCHEDULES, usb=True),
        Option("tsa_true_class", bool, False, "TSA compares the true class's probability (the paper) instead of "
               "the top probability (USB)."),
        ulb_loss_ratio_option(1.0),
    )

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_s: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        logits_lb, logits_w, logits_s = self.forward_logits(x_lb, x_ulb_w, x_ulb_s)

        num_classes = logits_lb.shape[-1]
        eta = tsa_threshold(config.tsa_schedule, self.global_step / self.num_train_iter, num_classes)
        probs_lb = probabilities(logits_lb)
        if config.tsa_true_class:
            compared = probs_lb.gather(1, y_lb[:, None]).squeeze(1)
        else:
            compared = probs_lb.max(dim=-1).values
        sup_mask = (compared <= eta).float()
        sup_loss = (cross_entropy(logits_lb, y_lb) * sup_mask).mean()

        probs = probabilities(logits_w)
        mask = self.mask("fixed", probs, p_cutoff=config.p_cutoff)
        targets = self.pseudo_labels("soft", probs, temperature=self.soft_label_temperature())
        unsup_loss = masked_loss(logits_s, targets, mask)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "mask_ratio": mask.mean(),
                      "tsa_ratio": sup_mask.mean()}
