"""FlexMatch (Zhang et al., 2021, arXiv:2110.08263): FixMatch with curriculum pseudo-labelling.

Instead of one threshold, each class gets ``p_cutoff * b / (2 - b)``, where ``b`` is the
class's learning effect: how many unlabelled samples were last predicted as that class
with confidence ``>= p_cutoff``, relative to the best-learned class. Hard classes get
lower thresholds, so they receive pseudo-labels too. With ``thresh_warmup`` the samples
never predicted confidently count as a class of their own in that normalisation, so the
thresholds rise gradually from zero at the start. The bookkeeping is the ``"flexmatch"``
mask policy; its per-sample record and class effects are in checkpoints.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..config import Option
from ..data.modality import count
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
from .refixmatch import refix_loss, refix_target_option

__all__ = ["FlexMatch"]


class FlexMatch(SSLAlgorithm):
    """FixMatch with class-wise thresholds that follow each class's learning progress."""

    name = "flexmatch"
    description = "FixMatch with class-wise curriculum thresholds (learning effects), warmed up from zero"
    config_options: ClassVar[tuple[Option, ...]] = (
        p_cutoff_option(0.95),
        temperature_option(0.5),
        hard_label_option(True),
        sharpen_soft_labels_option(),
        Option("thresh_warmup", bool, True, "Count never-selected samples when normalising the learning "
               "effects, so thresholds start near zero and rise.", usb=True),
        Option("use_refix", bool, False, "Add ReFixMatch's KL term on the low-confidence samples (USB's FlexMatch "
               "files carry the key, false; its code does not read it).", usb=True),
        refix_target_option(),
        ulb_loss_ratio_option(1.0),
    )

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        index, unlabelled = self.draw_unlabelled()
        return {
            "x_lb": self.augment.weak(images), "y_lb": targets, "idx_ulb": index,
            "x_ulb_w": self.augment.weak(unlabelled), "x_ulb_s": self.augment.strong(unlabelled),
        }

    def flexmatch_mask(self, probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """The class-wise curriculum mask of ``probs``, the unlabelled samples ``indices``."""
        config = self.config
        return self.mask("flexmatch", probs, indices=indices, p_cutoff=config.p_cutoff,
                         thresh_warmup=config.thresh_warmup, num_samples=count(self.data.unlabelled_samples))

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, idx_ulb: torch.Tensor, x_ulb_w: torch.Tensor,
        x_ulb_s: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        logits_lb, logits_w, logits_s = self.forward_logits(x_lb, x_ulb_w, x_ulb_s)
        sup_loss = supervised_loss(logits_lb, y_lb)
        probs = probabilities(logits_w)
        mask = self.flexmatch_mask(probs, idx_ulb)
        unsup_loss = masked_loss(logits_s, self.pseudo_label(probs), mask)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss
        metrics = {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "mask_ratio": mask.mean()}
        if config.use_refix:
            metrics["refix_loss"] = refix_loss(logits_s, probs, mask, config.refix_target)
            loss = loss + config.ulb_loss_ratio * metrics["refix_loss"]
        return loss, metrics
