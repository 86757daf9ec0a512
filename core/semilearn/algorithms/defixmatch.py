"""DeFixMatch (Schmutz et al., 2022, arXiv:2203.07512): debiased FixMatch.

FixMatch's pseudo-label loss is biased: pseudo-labels are wrong in systematic ways that
the model then reinforces. DeFixMatch estimates that bias on the labelled data, where it
can be measured: the labelled images go through the very same unlabelled loss (weak view
-> confidence mask and pseudo-label -> loss on a strong view), and that loss is
subtracted: ``sup + ulb_loss_ratio * (unsup - unsup_on_labelled)``. The supervised loss
averages the weak and strong labelled views.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..config import Option
from .common import (
    SSLAlgorithm,
    hard_label_option,
    masked_loss,
    p_cutoff_option,
    probabilities,
    sharpen_soft_labels_option,
    supervised_loss,
    temperature_option,
    ulb_loss_ratio_option,
)

__all__ = ["DeFixMatch"]


class DeFixMatch(SSLAlgorithm):
    """FixMatch minus the same pseudo-label loss measured on labelled data (debiasing)."""

    name = "defixmatch"
    description = "debiased FixMatch: the pseudo-label loss on labelled data is subtracted from the unlabelled one"
    config_options: ClassVar[tuple[Option, ...]] = (p_cutoff_option(0.95), temperature_option(0.5), hard_label_option(True), sharpen_soft_labels_option(),
                      ulb_loss_ratio_option(0.5))

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        return {
            "x_lb": self.augment.weak(images), "x_lb_s": self.augment.strong(images), "y_lb": targets,
            "x_ulb_w": self.augment.weak(unlabelled), "x_ulb_s": self.augment.strong(unlabelled),
        }

    def pseudo_label_loss(self, logits_w: torch.Tensor, logits_s: torch.Tensor, use: str
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """FixMatch's masked pseudo-label loss of a weak/strong pair, and its mask."""
        probs = probabilities(logits_w)
        mask = self.mask("fixed", probs, use=use, p_cutoff=self.config.p_cutoff)
        return masked_loss(logits_s, self.pseudo_label(probs), mask), mask

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, x_lb_s: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor,
        x_ulb_s: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits_lb, logits_lb_s, logits_w, logits_s = self.forward_logits(x_lb, x_lb_s, x_ulb_w, x_ulb_s, weak=2)
        sup_loss = 0.5 * (supervised_loss(logits_lb, y_lb) + supervised_loss(logits_lb_s, y_lb))
        unsup_loss, mask = self.pseudo_label_loss(logits_w, logits_s, "mask")
        anti_loss, mask_lb = self.pseudo_label_loss(logits_lb, logits_lb_s, "mask_lb")
        loss = sup_loss + self.config.ulb_loss_ratio * (unsup_loss - anti_loss)
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "anti_unsup_loss": anti_loss,
                      "mask_ratio": mask.mean(), "mask_ratio_lb": mask_lb.mean()}
