"""FixMatch (Sohn et al., 2020): pseudo-labels from weak views, consistency on strong views.

The weak view of an unlabelled image is classified; where the top class probability
reaches ``p_cutoff`` it becomes the target (hard, or soft with temperature ``T``) of the
strong view. Labelled, weak and strong views go through the network in one forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..algorithm import AlgorithmBase
from ..config import Option

__all__ = ["FixMatch"]


class FixMatch(AlgorithmBase):
    name = "fixmatch"
    description = "confidence-thresholded pseudo-labels from weak views train the strong views"
    config_options = (
        Option("p_cutoff", float, 0.95, "Confidence a weak view needs for its pseudo-label to count.",
               minimum=0, maximum=1, usb=True),
        Option("T", float, 0.5, "Temperature of soft pseudo-labels (with hard_label: false).", minimum=0,
               exclusive_minimum=True, usb=True),
        Option("hard_label", bool, True, "Use the arg-max class as the pseudo-label (else the sharpened "
               "distribution).", usb=True),
        Option("ulb_loss_ratio", float, 1.0, "Weight of the unlabelled loss (the paper's lambda_u).", minimum=0,
               aliases=("lambda_u",), usb=True),
    )

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_s: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        num_lb = x_lb.shape[0]
        logits = self.model(torch.cat((x_lb, x_ulb_w, x_ulb_s)))["logits"]
        logits_lb = logits[:num_lb]
        logits_w, logits_s = logits[num_lb:].chunk(2)
        sup_loss = F.cross_entropy(logits_lb, y_lb)

        logits_w = logits_w.detach().float()
        max_probs, hard_targets = torch.softmax(logits_w, dim=-1).max(dim=-1)
        mask = (max_probs >= config.p_cutoff).float()
        if config.hard_label:
            per_sample = F.cross_entropy(logits_s, hard_targets, reduction="none")
        else:
            soft_targets = torch.softmax(logits_w / config.T, dim=-1)
            per_sample = -(soft_targets * F.log_softmax(logits_s.float(), dim=-1)).sum(dim=-1)
        unsup_loss = (per_sample * mask).mean()
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "mask_ratio": mask.mean()}
