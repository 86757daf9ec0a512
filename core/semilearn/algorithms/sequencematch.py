"""SequenceMatch (Nguyen, 2024, "SequenceMatch: Revisiting the design of weak-strong
augmentations for semi-supervised learning"): FlexMatch with a medium view between the weak
and the strong one.

The gap between a weak and a strong view can be too wide for one consistency step.
SequenceMatch adds a medium view (one RandAugment operation where the strong view has
several) and, on top of FlexMatch's curriculum pseudo-labels, three KL terms for the
confident samples (FlexMatch's mask): medium towards weak, strong towards medium and strong
towards weak. Each target is ``softmax(p / T)`` of the detached probabilities of its view,
as USB computes it (a softmax of probabilities, which is flat), and each term is weighted
like the pseudo-label loss by ``ulb_loss_ratio``. USB's code, where the algorithm lives
since its 0.3.2 release, stops with a NameError after computing the loss; the arithmetic
here is its loss.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F

from ..data.augment import BatchAugment
from ..data.modality import IMAGE
from .common import (
    full_precision,
    masked_loss,
    probabilities,
    supervised_loss,
)
from .flexmatch import FlexMatch

__all__ = ["SequenceMatch", "sequence_kl"]


def sequence_kl(logits: torch.Tensor, target_probs: torch.Tensor, temperature: float,
                mask: torch.Tensor) -> torch.Tensor:
    """``mean_b mask_b KL(softmax(q / T) || softmax(z))`` with USB's arithmetic (``softmax(z).log()``)."""
    divergence = F.kl_div(F.softmax(full_precision(logits), dim=-1).log(), F.softmax(target_probs / temperature, dim=-1),
                          reduction="none").sum(dim=1)
    return (divergence * mask).mean()


class SequenceMatch(FlexMatch):
    """FlexMatch with weak, medium and strong views tied by three KL terms."""

    name = "sequencematch"
    modalities = (IMAGE,)
    modality_reason = "its medium view is a one-operation RandAugment"
    description = "FlexMatch + a medium view: KL from medium to weak, strong to medium and strong to weak"

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        index, unlabelled = self.draw_unlabelled()
        return {
            "x_lb": self.augment.weak(images), "y_lb": targets, "idx_ulb": index,
            "x_ulb_w": self.augment.weak(unlabelled), "x_ulb_m": cast(BatchAugment, self.augment).medium(unlabelled),
            "x_ulb_s": self.augment.strong(unlabelled),
        }

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, idx_ulb: torch.Tensor, x_ulb_w: torch.Tensor,
        x_ulb_m: torch.Tensor, x_ulb_s: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        logits_lb, logits_w, logits_m, logits_s = self.forward_logits(x_lb, x_ulb_w, x_ulb_m, x_ulb_s)
        sup_loss = supervised_loss(logits_lb, y_lb)
        probs_w, probs_m = probabilities(logits_w), probabilities(logits_m)
        mask = self.flexmatch_mask(probs_w, idx_ulb)
        unsup_loss = masked_loss(logits_s, self.pseudo_label(probs_w), mask)
        medium_weak = sequence_kl(logits_m, probs_w, config.T, mask)
        strong_medium = sequence_kl(logits_s, probs_m, config.T, mask)
        strong_weak = sequence_kl(logits_s, probs_w, config.T, mask)
        loss = sup_loss + config.ulb_loss_ratio * (unsup_loss + medium_weak + strong_medium + strong_weak)
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "kl_medium_weak": medium_weak,
                      "kl_strong_medium": strong_medium, "kl_strong_weak": strong_weak, "mask_ratio": mask.mean()}
