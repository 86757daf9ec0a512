"""ReMixMatch (Berthelot et al., 2020, arXiv:1911.09785): distribution alignment, augmentation
anchoring and a rotation loss on top of MixMatch.

The weak view of each unlabelled image is the anchor: its prediction is aligned to the
class distribution of the labelled set (``"ema"`` distribution alignment: multiplied by
``p_labelled / p_model`` with ``p_model`` a running mean of predictions) and sharpened with
``T``. That guess is the target of two strong views (augmentation anchoring), which are
mixed with the labelled and weak views as in MixMatch (cross-entropy on both parts,
``mixup_alpha`` 0.75). Two extra terms: the first strong view, unmixed, is trained on the
guess (``kl_loss_ratio``), and a rotation head learns which of four rotations was applied
to a rotated copy of it (``rot_loss_ratio``; 0 turns it off). The unlabelled weights ramp
up over ``unsup_warm_up`` (1/64 of the run). USB runs it with ``uratio: 1``.

As in USB, the anchor, the unmixed strong view and the rotated view each have a pass of
their own that does not move the batch-norm running statistics, and the mixed batch goes
through the network in chunks of the labelled batch size, the first moving them. USB
computes the class distribution of the labelled set in float64 (from NumPy), which makes
the aligned guess, the targets and the losses float64; so does this engine.
``joint_forward`` puts the mixed, unmixed strong and rotated views through one pass.

``mixup_manifold`` (USB's choice for text and audio) mixes features instead of inputs, as
USB's branch of that name: the anchor's features come from its guessing pass (without
gradients); the labelled view and both strong views each have a pass with gradients that
leaves the batch-norm statistics alone, giving their features (the first strong view's
logits are the unmixed term's); the mixed features go through the network's classifier
alone in chunks of the labelled batch size. Text and audio need ``rot_loss_ratio: 0`` too
(USB's files set it). On text the two strong views are the two stored back-translations,
in an order drawn per sample, as USB's data set gives them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, Option
from ..data.modality import IMAGE, strong_views
from ..nets.heads import RotationHead, frozen_batch_norm_stats, unwrap
from .common import (
    SSLAlgorithm,
    cross_entropy,
    full_precision,
    joint_forward_option,
    mixup,
    one_hot,
    rotate_batch,
    sample_mixup_lambda,
    split,
    temperature_option,
    ulb_loss_ratio_option,
    unsup_warm_up_option,
)
from .mixmatch import (
    MANIFOLD_REMEDY,
    classify_in_chunks,
    manifold_classifier,
    mixup_alpha_option,
    mixup_manifold_option,
)

if TYPE_CHECKING:
    from ..data.base import SSLData
    from ..plugins import PluginManager

__all__ = ["ReMixMatch"]

DIST_ALIGN_MOMENTUM = 0.999  # USB fixes the momentum of ReMixMatch's alignment estimate (no key)


class ReMixMatch(SSLAlgorithm):
    """Aligned, sharpened weak-view guesses anchor two strong views; MixUp; rotation prediction."""

    name = "remixmatch"
    modalities = (IMAGE,)
    modality_reason = "rotates its inputs and mixes them pixel by pixel (MixUp)"
    description = "distribution alignment + augmentation anchoring (strong views) + MixUp + rotation loss"
    config_options: ClassVar[tuple[Option, ...]] = (
        temperature_option(0.5),
        mixup_alpha_option(0.75),
        Option("kl_loss_ratio", float, 0.5, "Weight of the loss of the unmixed strong view on the guess.",
               minimum=0, usb=True),
        Option("rot_loss_ratio", float, 0.5, "Weight of the rotation prediction loss; 0 turns it off.", minimum=0,
               usb=True),
        ulb_loss_ratio_option(1.5),
        unsup_warm_up_option(1 / 64),
        mixup_manifold_option(),
        joint_forward_option(),
    )

    @classmethod
    def views_per_sample(cls, config: Config) -> tuple[int, int]:
        return 1, 2  # a weak view and two strong ones

    def __init__(self, config: Config, data: SSLData, model: nn.Module, manager: PluginManager, run_dir: Path,
                 device: torch.device) -> None:
        super().__init__(config, data, model, manager, run_dir, device)
        self.feature_classifier = manifold_classifier(self.module, config)

    @classmethod
    def supports_modality(cls, modality: str, config: Config) -> bool:
        return modality == IMAGE or (bool(config.get("mixup_manifold")) and not config.get("rot_loss_ratio", 0.5) > 0)

    @classmethod
    def modality_remedy(cls, modality: str, config: Config) -> str:
        remedies = [] if config.get("mixup_manifold") else [MANIFOLD_REMEDY]
        if config.get("rot_loss_ratio", 0.5) > 0:
            remedies.append("set rot_loss_ratio: 0 to drop the rotation loss (USB's usb_nlp and usb_audio files do)")
        return "; ".join(remedies)

    def heads(self, config: Config, num_features: int) -> dict[str, nn.Module]:
        return {"logits_rot": RotationHead(num_features)} if config.rot_loss_ratio > 0 else {}

    @property
    def use_rotation(self) -> bool:
        return bool(self.config.rot_loss_ratio > 0)

    def sample_batch(self) -> dict[str, Any]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        strong_0, strong_1 = strong_views(self.augment, unlabelled, 2)
        batch = {
            "x_lb": self.augment.weak(images), "y_lb": targets, "x_ulb_w": self.augment.weak(unlabelled),
            "x_ulb_s_0": strong_0, "x_ulb_s_1": strong_1,
        }
        if self.use_rotation:
            turns = torch.randint(0, 4, (strong_0.shape[0],), generator=self.augment_generator,
                                  device=strong_0.device)
            batch["x_ulb_s_0_rot"] = rotate_batch(strong_0, turns)
            batch["rot_v"] = turns
        return batch

    def guess_labels(self, x_ulb_w: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The weak view's prediction, aligned to the labelled class distribution and sharpened,
        and its features (no gradients)."""
        network = unwrap(self.model)
        with torch.no_grad(), frozen_batch_norm_stats(network):
            outputs = network(x_ulb_w)
        probs = torch.softmax(full_precision(outputs["logits"]), dim=-1)
        aligned = self.align("ema", probs, "labelled", momentum=DIST_ALIGN_MOMENTUM)
        return self.pseudo_labels("soft", aligned, temperature=self.config.T), outputs["feat"]

    def train_step(  # type: ignore[override]
        self,
        x_lb: Any,
        y_lb: torch.Tensor,
        x_ulb_w: Any,
        x_ulb_s_0: Any,
        x_ulb_s_1: Any,
        x_ulb_s_0_rot: torch.Tensor | None = None,
        rot_v: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        num_lb = y_lb.shape[0]
        guess, feat_w = self.guess_labels(x_ulb_w)
        targets = torch.cat((one_hot(y_lb, guess.shape[-1]), guess, guess, guess))
        if self.feature_classifier is not None:  # USB: three passes with frozen statistics give the features
            passes = self.frozen_passes(x_lb, x_ulb_s_0, x_ulb_s_1)
            inputs = torch.cat([part["feat"] for part in passes] + [feat_w])
        else:
            inputs = torch.cat((x_lb, x_ulb_s_0, x_ulb_s_1, x_ulb_w))
        lam = sample_mixup_lambda(config.mixup_alpha)
        permutation = self.host_random("randperm", inputs.shape[0])
        mixed_inputs, mixed_targets = mixup(inputs, targets, lam, permutation)

        rotated = x_ulb_s_0_rot if rot_v is not None else None
        logits_rot: torch.Tensor | None = None
        if self.feature_classifier is not None:
            logits_s_0 = passes[1]["logits"]
            logits_mixed = classify_in_chunks(self.feature_classifier, mixed_inputs, num_lb)
            if rotated is not None:
                network = unwrap(self.model)
                with frozen_batch_norm_stats(network):
                    logits_rot = network(rotated)["logits_rot"]
        elif config.joint_forward:
            views = [mixed_inputs, x_ulb_s_0] + ([rotated] if rotated is not None else [])
            outputs, sizes = self.forward_views(*views)
            logits_mixed, logits_s_0 = split(outputs["logits"], sizes)[:2]
            if rotated is not None:
                logits_rot = split(outputs["logits_rot"], sizes)[2]
        else:  # USB's passes, in USB's order (it decides the order gradients are summed in)
            network = unwrap(self.model)
            with frozen_batch_norm_stats(network):
                logits_s_0 = network(x_ulb_s_0)["logits"]
            logits_mixed = self.forward_in_chunks(mixed_inputs, num_lb)["logits"]
            if rotated is not None:
                with frozen_batch_norm_stats(network):
                    logits_rot = network(rotated)["logits_rot"]
        sup_loss = cross_entropy(logits_mixed[:num_lb], mixed_targets[:num_lb]).mean()
        unsup_loss = cross_entropy(logits_mixed[num_lb:], mixed_targets[num_lb:]).mean()
        anchor_loss = cross_entropy(logits_s_0, guess).mean()
        ramp = self.unsup_weight(config.unsup_warm_up)
        loss = sup_loss + config.kl_loss_ratio * ramp * anchor_loss + config.ulb_loss_ratio * ramp * unsup_loss
        metrics = {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "kl_loss": anchor_loss}
        if logits_rot is not None and rot_v is not None:
            rot_loss = F.cross_entropy(logits_rot, rot_v)
            loss = loss + config.rot_loss_ratio * rot_loss
            metrics["rot_loss"] = rot_loss
        return loss, metrics
