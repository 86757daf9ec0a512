"""CR-Match (Fan et al., 2021, arXiv:2112.05825): FixMatch plus a rotation head and a
feature-distance loss.

On top of FixMatch's confidence-masked hard pseudo-labels, two more consistency signals:
self-supervised rotation prediction -- a head classifies which of the four rotations was
applied to each of ``batch_size`` weakly augmented unlabelled images, all four rotations
of each in the batch (on while ``rot_loss_ratio`` is above 0) -- and a feature-distance
loss that keeps the classifier invariant but the features equivariant: a linear head maps
the flattened feature map of the weak and of the strong view (before pooling) into a space
where, for the confident samples, their cosine similarity is pushed down to at most zero.

As in USB: the loss is the plain sum ``sup + unsup + distance (+ rotation)`` -- USB reads
``ulb_loss_ratio`` and ``rot_loss_ratio`` for CR-Match but weighs every term 1, and
``rot_loss_ratio`` only switches the rotation loss on or off; the pseudo-labels are always
the arg-max class (``hard_label`` is accepted and has no effect); the rotated images are
drawn from the unlabelled set by a stream of their own, not taken from the step's
unlabelled batch; labelled, weak, strong and rotated views share one forward pass. A
network without ``extract`` (a feature map) gets the distance head on its pooled features.
Text and audio take it with ``rot_loss_ratio: 0`` (USB's files set it; rotations are for
images): the strong view is then a stored back-translation, or a strong audio effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, Option
from ..data.modality import IMAGE
from ..data.sampler import SampleStream
from ..nets.heads import FeatureMapHead, RotationHead, feature_map_size, unwrap
from .common import (
    SSLAlgorithm,
    four_rotations,
    full_precision,
    hard_label_option,
    masked_loss,
    p_cutoff_option,
    probabilities,
    ulb_loss_ratio_option,
)

if TYPE_CHECKING:
    from ..data.base import SSLData
    from ..plugins import PluginManager

__all__ = ["CRMatch", "feature_distance_loss"]


def feature_distance_loss(features_s: torch.Tensor, features_w: torch.Tensor) -> torch.Tensor:
    """Per-sample ``max(0, cos(features_s, features_w))``: PyTorch's cosine embedding loss with target -1."""
    target = -torch.ones(features_s.shape[0], device=features_s.device)
    return F.cosine_embedding_loss(full_precision(features_s), full_precision(features_w), target, reduction="none")


class CRMatch(SSLAlgorithm):
    """FixMatch + rotation prediction + a feature-distance loss between weak and strong views."""

    name = "crmatch"
    modalities = (IMAGE,)
    modality_reason = "rotates its inputs"
    description = "FixMatch + rotation-prediction head + feature-distance loss between weak and strong views"
    config_options: ClassVar[tuple[Option, ...]] = (
        p_cutoff_option(0.95),
        hard_label_option(True),
        Option("rot_loss_ratio", float, 1.0, "Above 0 turns the rotation loss on (USB weighs it 1 whatever the "
               "value).", minimum=0, usb=True),
        ulb_loss_ratio_option(1.0),
    )

    def __init__(self, config: Config, data: SSLData, model: nn.Module, manager: PluginManager, run_dir: Path,
                 device: torch.device) -> None:
        self._for_heads = (model, data)  # heads() measures the network's feature map
        super().__init__(config, data, model, manager, run_dir, device)
        self.rotation_stream: SampleStream | None = None
        if self.use_rotation:
            self.rotation_stream = self.sample_stream(data.unlabelled_samples, config.batch_size, "rotation")

    @property
    def use_rotation(self) -> bool:
        return bool(self.config.rot_loss_ratio > 0)

    @classmethod
    def supports_modality(cls, modality: str, config: Config) -> bool:
        return modality == IMAGE or not config.get("rot_loss_ratio", 1.0) > 0

    @classmethod
    def modality_remedy(cls, modality: str, config: Config) -> str:
        return "set rot_loss_ratio: 0 to drop the rotation loss (USB's usb_nlp and usb_audio files do)"

    def heads(self, config: Config, num_features: int) -> dict[str, nn.Module]:
        # created in USB's order (it decides the initial weights drawn from the seed)
        heads: dict[str, nn.Module] = {}
        if config.rot_loss_ratio > 0:
            heads["logits_rot"] = RotationHead(num_features, hidden=num_features)
        backbone, data = self._for_heads
        map_size = feature_map_size(backbone, *data.image_shape[:2]) if data.is_image else None
        heads["logits_ds"] = (FeatureMapHead(map_size, num_features) if map_size is not None
                              else nn.Linear(num_features, num_features))
        return heads

    def sample_batch(self) -> dict[str, Any]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        batch = {
            "x_lb": self.augment.weak(images), "y_lb": targets,
            "x_ulb_w": self.augment.weak(unlabelled), "x_ulb_s": self.augment.strong(unlabelled),
        }
        if self.rotation_stream is not None:
            index = self.rotation_stream.next()
            rotated, labels = four_rotations(self.augment.weak(self.gather(self.data.unlabelled_samples, index)))
            batch["x_ulb_rot"], batch["rot_v"] = rotated, labels
        return batch

    def train_step(  # type: ignore[override]
        self, x_lb: Any, y_lb: torch.Tensor, x_ulb_w: Any, x_ulb_s: Any,
        x_ulb_rot: torch.Tensor | None = None, rot_v: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        views = [x_lb, x_ulb_w, x_ulb_s] + ([x_ulb_rot] if x_ulb_rot is not None else [])
        if self.config.use_cat:
            outputs = self.forward_outputs(*views)
        else:  # as USB: labelled, strong, weak (without gradients), then the rotated views
            outputs = self.forward_outputs(*views[:3])
            if x_ulb_rot is not None:
                outputs.append(dict(unwrap(self.model)(x_ulb_rot)))
        logits_lb, logits_w, logits_s = (part["logits"] for part in outputs[:3])
        distance = [part["logits_ds"] for part in outputs]
        sup_loss = F.cross_entropy(full_precision(logits_lb), y_lb)

        probs = probabilities(logits_w)
        mask = self.mask("fixed", probs, p_cutoff=self.config.p_cutoff)
        targets = self.pseudo_labels("hard", probs)
        unsup_loss = masked_loss(logits_s, targets, mask)
        ds_loss = (feature_distance_loss(distance[2], distance[1]) * mask).mean()
        loss = sup_loss + unsup_loss + ds_loss
        metrics = {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "ds_loss": ds_loss, "mask_ratio": mask.mean()}
        if x_ulb_rot is not None and rot_v is not None:
            rot_loss = F.cross_entropy(full_precision(outputs[3]["logits_rot"]), rot_v)
            loss = loss + rot_loss
            metrics["rot_loss"] = rot_loss
        return loss, metrics

    # -- checkpoint state ---------------------------------------------------------

    def algorithm_state(self) -> dict[str, Any]:
        state = super().algorithm_state()
        if self.rotation_stream is not None:
            state["rotation_stream"] = self.rotation_stream.state_dict()
        return state

    def load_algorithm_state(self, state: Mapping[str, Any]) -> None:
        super().load_algorithm_state(state)
        if self.rotation_stream is not None and "rotation_stream" in state:
            self.rotation_stream.load_state_dict(dict(state["rotation_stream"]))
