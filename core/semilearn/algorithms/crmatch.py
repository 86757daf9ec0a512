"""CR-Match (Fan et al., 2021, arXiv:2112.05825): FixMatch plus a rotation head and a
feature-distance loss.

On top of FixMatch's confidence-masked pseudo-labels, two more consistency signals:
self-supervised rotation prediction -- a head classifies which of the four rotations was
applied to each of ``batch_size`` weak unlabelled views, all four rotations of each in the
batch (``rot_loss_ratio``; 0 turns it off) -- and a feature-distance loss that keeps the
classifier invariant but the features equivariant: a linear head maps the features of the
weak and strong views into a space where, for the confident samples, their cosine
similarity is pushed down to at most zero.

Networks here expose pooled features, so the feature-distance head reads ``feat`` (USB's
reads the flattened feature map of a WRN before pooling).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, Option
from ..nets.heads import RotationHead
from .common import (
    SSLAlgorithm,
    cross_entropy,
    four_rotations,
    hard_label_option,
    p_cutoff_option,
    split,
    temperature_option,
    ulb_loss_ratio_option,
)

__all__ = ["CRMatch", "feature_distance_loss"]


def feature_distance_loss(features_s: torch.Tensor, features_w: torch.Tensor) -> torch.Tensor:
    """Per-sample ``max(0, cos(features_s, features_w))`` (a cosine embedding loss with target -1)."""
    return F.cosine_similarity(features_s.float(), features_w.float(), dim=-1).clamp_min(0.0)


class CRMatch(SSLAlgorithm):
    """FixMatch + rotation prediction + a feature-distance loss between weak and strong views."""

    name = "crmatch"
    description = "FixMatch + rotation-prediction head + feature-distance loss between weak and strong views"
    config_options = (
        p_cutoff_option(0.95),
        temperature_option(0.5),
        hard_label_option(True),
        Option("rot_loss_ratio", float, 1.0, "Weight of the rotation prediction loss; 0 turns it off.", minimum=0,
               usb=True),
        ulb_loss_ratio_option(1.0),
    )

    def heads(self, config: Config, num_features: int) -> dict[str, nn.Module]:
        heads: dict[str, nn.Module] = {"feat_ds": nn.Linear(num_features, num_features)}
        if config.rot_loss_ratio > 0:
            heads["logits_rot"] = RotationHead(num_features, hidden=num_features)
        return heads

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        batch = {
            "x_lb": self.augment.weak(images), "y_lb": targets,
            "x_ulb_w": self.augment.weak(unlabelled), "x_ulb_s": self.augment.strong(unlabelled),
        }
        if self.config.rot_loss_ratio > 0:
            rotated, labels = four_rotations(self.augment.weak(unlabelled[: images.shape[0]]))
            batch["x_ulb_rot"], batch["rot_v"] = rotated, labels
        return batch

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_s: torch.Tensor,
        x_ulb_rot: torch.Tensor | None = None, rot_v: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        views = [x_lb, x_ulb_w, x_ulb_s] + ([x_ulb_rot] if x_ulb_rot is not None else [])
        outputs, sizes = self.forward_views(*views)
        logits = split(outputs["logits"], sizes)
        logits_lb, logits_w, logits_s = logits[0], logits[1], logits[2]
        feat_ds = split(outputs["feat_ds"], sizes)
        sup_loss = cross_entropy(logits_lb, y_lb).mean()

        probs = torch.softmax(logits_w.detach().float(), dim=-1)
        mask = self.mask("fixed", probs)
        targets = self.pseudo_labels("hard" if config.hard_label else "soft", probs, config.T)
        unsup_loss = (cross_entropy(logits_s, targets) * mask).mean()
        ds_loss = (feature_distance_loss(feat_ds[2], feat_ds[1]) * mask).mean()
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss + ds_loss
        metrics = {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "ds_loss": ds_loss, "mask_ratio": mask.mean()}
        if x_ulb_rot is not None and rot_v is not None:
            rot_loss = cross_entropy(split(outputs["logits_rot"], sizes)[3], rot_v).mean()
            loss = loss + config.rot_loss_ratio * rot_loss
            metrics["rot_loss"] = rot_loss
        return loss, metrics
