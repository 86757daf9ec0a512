"""ReFixMatch (Nguyen et al., 2023, "Boosting semi-supervised learning by bridging high and
low-confidence predictions"): FixMatch that also learns from the samples its mask drops.

FixMatch trains a strong view only on confident weak-view pseudo-labels; the rest of the
unlabelled batch teaches nothing. ReFixMatch adds, for exactly those low-confidence samples
(weight ``1 - mask``), a KL divergence pulling the strong view's prediction towards the weak
view's: ``KL(softmax(p_w / 0.5) || softmax(z_s / 0.5))``, averaged over the whole unlabelled
batch and weighted like the FixMatch term by ``ulb_loss_ratio``. As in USB's code (where the
algorithm lives since its 0.3.2 release), the target is the softmax of the weak view's
*probabilities* over 0.5 -- a flat distribution -- and the temperature 0.5 is fixed.

That flat target pulls every low-confidence strong view towards "no idea", which keeps
confidence (and so the mask) low: on digits with 40 labels ReFixMatch ends below the
supervised baseline. ``refix_target: sharpened`` uses the weak view's prediction sharpened
with the same temperature (``softmax(z_w / 0.5)``), the paper's self-distillation target.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from ..config import Option
from .common import full_precision
from .fixmatch import FixMatch

__all__ = ["ReFixMatch", "refix_loss", "refix_target_option"]

REFIX_TARGETS = ("usb", "sharpened")


def refix_target_option() -> Option:
    return Option("refix_target", str, "usb", "Target of the KL term on low-confidence samples: `usb` (the softmax "
                  "of the weak view's probabilities over 0.5, a nearly flat target, as USB's code) or `sharpened` "
                  "(the weak view's prediction sharpened with temperature 0.5, as the paper).", choices=REFIX_TARGETS)


def refix_loss(logits_s: torch.Tensor, probs_w: torch.Tensor, mask: torch.Tensor, target: str = "usb") -> torch.Tensor:
    """``mean_b (1 - mask_b) KL(t_b || softmax(z_s / 0.5))`` with ``t = softmax(p_w / 0.5)`` as USB computes it
    (``target="usb"``), or ``t = softmax(log(p_w) / 0.5)``, the weak prediction sharpened (``"sharpened"``)."""
    if target not in REFIX_TARGETS:
        raise ValueError(f"refix_target must be one of {', '.join(REFIX_TARGETS)}, got {target!r}")
    scaled = full_precision(probs_w).log() if target == "sharpened" else full_precision(probs_w)
    divergence = F.kl_div(F.log_softmax(full_precision(logits_s) / 0.5, dim=-1), F.softmax(scaled / 0.5, dim=-1),
                          reduction="none")
    return torch.sum(divergence * (1.0 - mask).unsqueeze(dim=-1), dim=1).mean()


class ReFixMatch(FixMatch):
    """FixMatch plus a KL term that keeps the low-confidence samples in training."""

    name = "refixmatch"
    description = "FixMatch + a KL term on the low-confidence samples its mask leaves out"
    config_options: ClassVar[tuple[Option, ...]] = (*FixMatch.config_options, refix_target_option())

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_s: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        terms = self.fixmatch_terms(x_lb, y_lb, x_ulb_w, x_ulb_s)
        low_confidence_loss = refix_loss(terms.logits_s, terms.probs, terms.mask, config.refix_target)
        loss = terms.sup_loss + config.ulb_loss_ratio * terms.unsup_loss + config.ulb_loss_ratio * low_confidence_loss
        return loss, {"sup_loss": terms.sup_loss, "unsup_loss": terms.unsup_loss, "refix_loss": low_confidence_loss,
                      "mask_ratio": terms.mask.mean()}
