"""MixMatch (Berthelot et al., 2019, arXiv:1905.02249): label guessing, sharpening and MixUp.

Each unlabelled image gets ``K`` weak views; their predicted distributions are averaged
and sharpened with temperature ``T`` (the ``"soft"`` pseudo-label policy) into one guess
shared by the ``K`` views. Labelled views (one-hot targets) and unlabelled views (the
guess) are then mixed with a random partner from the same pool: ``lambda' = max(lambda,
1 - lambda)``, ``lambda ~ Beta(mixup_alpha, mixup_alpha)``, so each mixed sample stays
closer to its own source. The labelled part is trained with cross-entropy, the
unlabelled part with a mean squared error whose weight ramps up over ``unsup_warm_up``.

As in USB, each guessing view has a pass of its own that does not move the batch-norm
running statistics, and the mixed batch goes through the network in chunks of the
labelled batch size: the first chunk moves the statistics, the others do not (USB's code
keeps MixMatch's interleaving commented out). The MixUp permutation comes from torch's
default generator, as USB's. ``joint_forward`` puts the guessing views, and the mixed
batch, through one pass each.

``mixup_manifold`` (USB's choice for text and audio, where mixing token ids or waveforms
means nothing) mixes the networks' features instead, as USB's branch of that name: the
guessing passes give the unlabelled views' features (without gradients), a pass of the
labelled view that leaves the batch-norm statistics alone gives its features, and the
mixed features go through the network's classifier alone (``classifier``, see
:mod:`semilearn.nets`) in chunks of the labelled batch size. On text the ``K`` views are
all the original text, as USB feeds its MixMatch (its ``x_ulb_s`` is the original too);
on audio they are ``K`` random crops.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..config import Config, Option
from ..data.modality import IMAGE
from ..nets.heads import feature_classifier, frozen_batch_norm_stats, unwrap
from .common import (
    SSLAlgorithm,
    chunk_view,
    cross_entropy,
    full_precision,
    joint_forward_option,
    mixup,
    mse_consistency,
    one_hot,
    sample_mixup_lambda,
    temperature_option,
    ulb_loss_ratio_option,
    unsup_warm_up_option,
)

if TYPE_CHECKING:
    from ..data.base import SSLData
    from ..plugins import PluginManager

__all__ = ["MixMatch", "mixup_alpha_option", "mixup_manifold_option", "manifold_classifier", "classify_in_chunks"]


def mixup_alpha_option(default: float) -> Option:
    return Option("mixup_alpha", float, default, "Beta(alpha, alpha) parameter of the MixUp coefficient.",
                  minimum=0, usb=True)


def mixup_manifold_option() -> Option:
    return Option("mixup_manifold", bool, False, "Mix the networks' features instead of the inputs, and classify "
                  "them with the classifier alone (USB's choice for text and audio).", usb=True)


MANIFOLD_REMEDY = "set mixup_manifold: true to mix features instead (USB's usb_nlp and usb_audio files do)"


def manifold_classifier(network: nn.Module, config: Config) -> nn.Module | None:
    """The classifier manifold MixUp feeds the mixed features to (see
    :func:`semilearn.nets.heads.feature_classifier`), or None without ``mixup_manifold``."""
    return feature_classifier(network, "mixup_manifold") if config.mixup_manifold else None


def classify_in_chunks(classifier: nn.Module, features: torch.Tensor, chunk: int) -> torch.Tensor:
    """``classifier`` on ``features`` in chunks of ``chunk`` rows, concatenated, as USB's
    ``only_fc`` passes over the mixed features (one call per chunk of the labelled batch size)."""
    return torch.cat([classifier(part) for part in torch.split(features, chunk)])


class MixMatch(SSLAlgorithm):
    """Sharpened K-view label guesses, MixUp across labelled and unlabelled data, MSE on the latter."""

    name = "mixmatch"
    modalities = (IMAGE,)
    modality_reason = "mixes its inputs pixel by pixel (MixUp)"
    description = "K-view label guessing with sharpening, then MixUp of labelled and unlabelled data"
    config_options: ClassVar[tuple[Option, ...]] = (
        temperature_option(0.5),
        mixup_alpha_option(0.5),
        ulb_loss_ratio_option(100.0),
        unsup_warm_up_option(0.4),
        Option("K", int, 2, "Weak views per unlabelled image averaged into the label guess (USB fixes 2).",
               minimum=1),
        mixup_manifold_option(),
        joint_forward_option(),
    )

    @classmethod
    def views_per_sample(cls, config: Config) -> tuple[int, int]:
        return int(config.get("K", 2)), 0  # K weak views of each unlabelled sample

    def __init__(self, config: Config, data: SSLData, model: nn.Module, manager: PluginManager, run_dir: Path,
                 device: torch.device) -> None:
        super().__init__(config, data, model, manager, run_dir, device)
        self.feature_classifier = manifold_classifier(self.module, config)

    @classmethod
    def supports_modality(cls, modality: str, config: Config) -> bool:
        return modality == IMAGE or bool(config.get("mixup_manifold"))

    @classmethod
    def modality_remedy(cls, modality: str, config: Config) -> str:
        return MANIFOLD_REMEDY

    def sample_batch(self) -> dict[str, Any]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        views = [self.augment.weak(unlabelled) for _ in range(self.config.K)]
        return {"x_lb": self.augment.weak(images), "y_lb": targets, "x_ulb_w": self.augment.join(views)}

    def guess_labels(self, x_ulb_w: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The sharpened mean prediction over the ``K`` views (stacked along the batch), and
        the views' features (stacked likewise; no gradients)."""
        with torch.no_grad():
            views = [x_ulb_w] if self.config.joint_forward else chunk_view(x_ulb_w, self.config.K)
            network = unwrap(self.model)
            with frozen_batch_norm_stats(network):
                outputs = [network(view) for view in views]
        logits = torch.cat([part["logits"] for part in outputs])
        probs = torch.softmax(full_precision(logits), dim=-1)
        mean = probs.view(self.config.K, -1, probs.shape[-1]).mean(dim=0)
        return self.pseudo_labels("soft", mean, temperature=self.config.T), torch.cat([part["feat"] for part in outputs])

    def train_step(  # type: ignore[override]
        self, x_lb: Any, y_lb: torch.Tensor, x_ulb_w: Any
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        num_lb = y_lb.shape[0]
        guess, feat_ulb = self.guess_labels(x_ulb_w)
        targets = torch.cat((one_hot(y_lb, guess.shape[-1]), guess.repeat(config.K, 1)))
        if self.feature_classifier is not None:  # USB: the labelled features from a pass with frozen statistics
            inputs = torch.cat((self.frozen_passes(x_lb)[0]["feat"], feat_ulb))
        else:
            inputs = torch.cat((x_lb, x_ulb_w))
        lam = sample_mixup_lambda(config.mixup_alpha)
        permutation = self.host_random("randperm", inputs.shape[0])
        mixed_inputs, mixed_targets = mixup(inputs, targets, lam, permutation)

        if self.feature_classifier is not None:
            logits = classify_in_chunks(self.feature_classifier, mixed_inputs, num_lb)
        else:
            logits = self.forward_in_chunks(mixed_inputs, num_lb)["logits"]
        sup_loss = cross_entropy(logits[:num_lb], mixed_targets[:num_lb]).mean()
        unsup_loss = mse_consistency(logits[num_lb:], mixed_targets[num_lb:]).mean()
        ramp = self.unsup_weight(config.unsup_warm_up)
        loss = sup_loss + config.ulb_loss_ratio * ramp * unsup_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss}
