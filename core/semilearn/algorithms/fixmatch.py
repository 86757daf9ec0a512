"""FixMatch (Sohn et al., 2020, arXiv:2001.07685): weak-view pseudo-labels train strong views.

The weak view of an unlabelled image is classified; where the top class probability
reaches ``p_cutoff`` (the ``"fixed"`` mask policy) its pseudo-label -- the arg-max class,
or the distribution sharpened with ``T`` -- is the target of the strong view. Labelled,
weak and strong views go through the network in one forward pass.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

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

__all__ = ["FixMatch", "FixMatchTerms"]


class FixMatchTerms(NamedTuple):
    """FixMatch's losses of one step, with what a variant adds its own terms from."""

    sup_loss: torch.Tensor
    unsup_loss: torch.Tensor
    mask: torch.Tensor
    probs: torch.Tensor  # the weak views' probabilities (detached, float32)
    logits_s: torch.Tensor  # the strong views' logits


class FixMatch(SSLAlgorithm):
    """Confidence-thresholded pseudo-labels from weak views are the targets of strong views."""

    name = "fixmatch"
    description = "confidence-thresholded pseudo-labels from weak views train the strong views"
    config_options: ClassVar[tuple[Option, ...]] = (p_cutoff_option(0.95), temperature_option(0.5), hard_label_option(True),
                      sharpen_soft_labels_option(), ulb_loss_ratio_option(1.0))

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_s: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        terms = self.fixmatch_terms(x_lb, y_lb, x_ulb_w, x_ulb_s)
        loss = terms.sup_loss + self.config.ulb_loss_ratio * terms.unsup_loss
        return loss, {"sup_loss": terms.sup_loss, "unsup_loss": terms.unsup_loss, "mask_ratio": terms.mask.mean()}

    def fixmatch_terms(
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_s: torch.Tensor
    ) -> FixMatchTerms:
        """The supervised loss and the masked pseudo-label loss of the strong views."""
        logits_lb, logits_w, logits_s = self.forward_logits(x_lb, x_ulb_w, x_ulb_s)
        sup_loss = supervised_loss(logits_lb, y_lb)
        probs = probabilities(logits_w)
        mask = self.mask("fixed", probs, p_cutoff=self.config.p_cutoff)
        unsup_loss = masked_loss(logits_s, self.pseudo_label(probs), mask)
        return FixMatchTerms(sup_loss, unsup_loss, mask, probs, logits_s)
