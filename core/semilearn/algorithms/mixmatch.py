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
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..config import Option
from ..data.modality import IMAGE
from ..nets.heads import frozen_batch_norm_stats, unwrap
from .common import (
    SSLAlgorithm,
    cross_entropy,
    joint_forward_option,
    mixup,
    mse_consistency,
    one_hot,
    sample_mixup_lambda,
    temperature_option,
    ulb_loss_ratio_option,
    unsup_warm_up_option,
)

__all__ = ["MixMatch", "mixup_alpha_option"]


def mixup_alpha_option(default: float) -> Option:
    return Option("mixup_alpha", float, default, "Beta(alpha, alpha) parameter of the MixUp coefficient.",
                  minimum=0, usb=True)


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
        joint_forward_option(),
    )

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        views = [self.augment.weak(unlabelled) for _ in range(self.config.K)]
        return {"x_lb": self.augment.weak(images), "y_lb": targets, "x_ulb_w": torch.cat(views)}

    def guess_labels(self, x_ulb_w: torch.Tensor) -> torch.Tensor:
        """The sharpened mean prediction over the ``K`` views (stacked along the batch)."""
        with torch.no_grad():
            views = torch.chunk(x_ulb_w, self.config.K)
            if self.config.joint_forward:
                views = (x_ulb_w,)
            network = unwrap(self.model)
            with frozen_batch_norm_stats(network):
                logits = torch.cat([network(view)["logits"] for view in views])
        probs = torch.softmax(logits.float(), dim=-1)
        mean = probs.view(self.config.K, -1, probs.shape[-1]).mean(dim=0)
        return self.pseudo_labels("soft", mean, temperature=self.config.T)

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        num_lb = x_lb.shape[0]
        guess = self.guess_labels(x_ulb_w)
        inputs = torch.cat((x_lb, x_ulb_w))
        targets = torch.cat((one_hot(y_lb, guess.shape[-1]), guess.repeat(config.K, 1)))
        lam = sample_mixup_lambda(config.mixup_alpha)
        permutation = self.host_random("randperm", inputs.shape[0])
        mixed_inputs, mixed_targets = mixup(inputs, targets, lam, permutation)

        logits = self.forward_in_chunks(mixed_inputs, num_lb)["logits"]
        sup_loss = cross_entropy(logits[:num_lb], mixed_targets[:num_lb]).mean()
        unsup_loss = mse_consistency(logits[num_lb:], mixed_targets[num_lb:]).mean()
        ramp = self.unsup_weight(config.unsup_warm_up)
        loss = sup_loss + config.ulb_loss_ratio * ramp * unsup_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss}
