"""Virtual Adversarial Training (Miyato et al., 2018, arXiv:1704.03976) with entropy minimisation.

For each unlabelled image ``x`` VAT finds the direction in which the prediction changes
most -- one power iteration: a random unit direction ``d`` scaled to ``vat_xi`` is added
to ``x``, and the gradient of ``KL(p(x) || p(x + d))`` with respect to ``d`` is the new
direction -- and perturbs the image by ``r_adv``, that direction scaled to L2 norm
``vat_eps`` per sample. The model is trained to predict the same distribution on
``x + r_adv`` as on ``x`` (the local distributional smoothness loss, weight ramped up
over ``unsup_warm_up``), and to be confident on unlabelled data (entropy minimisation,
weight ``ent_loss_ratio``, through the clean prediction).

As in USB the probe size ``vat_xi`` is 1e-6, the random direction is drawn from torch's
default (CPU) generator, and the labelled, clean, probe and adversarial passes are
separate: only the labelled one moves the batch-norm running statistics. A probe of 1e-6
on normalised images is mostly float32 rounding noise (its direction has a cosine of about
0.3 with the float64 one on ``small_cnn``; 1e-4 to 1e-2 give 0.99): ``vat_xi: 1e-3`` is
the better choice off USB's numbers. ``joint_forward`` puts the labelled, clean and
adversarial views through one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ..config import Option
from ..data.modality import IMAGE
from ..nets.heads import frozen_batch_norm_stats, unwrap
from .common import (
    SSLAlgorithm,
    joint_forward_option,
    split,
    supervised_loss,
    ulb_loss_ratio_option,
    unsup_warm_up_option,
)

__all__ = ["VAT", "vat_perturbation", "kl_divergence_with_logits", "entropy", "l2_normalize"]


def l2_normalize(tensor: torch.Tensor) -> torch.Tensor:
    """Scale each sample (first dimension) to unit L2 norm (``+ 1e-16``).

    On the CPU the norm is summed in NumPy, as USB does, so that the result is USB's to the
    last bit: VAT's probe direction is that sensitive to rounding at ``vat_xi: 1e-6``.
    """
    if tensor.device.type == "cpu" and tensor.dtype == torch.float32 and not tensor.requires_grad:
        array = tensor.numpy().copy()
        array /= np.sqrt(np.sum(array**2, axis=tuple(range(1, array.ndim)))).reshape((-1,) + (1,) * (array.ndim - 1)) \
            + 1e-16
        return torch.from_numpy(array)
    norm = tensor.flatten(1).norm(dim=1).view(-1, *([1] * (tensor.ndim - 1)))
    return tensor / (norm + 1e-16)


def kl_divergence_with_logits(q_logits: torch.Tensor, p_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(q) || softmax(p))`` averaged over the batch (USB's arithmetic: E[q log q] - E[q log p])."""
    q = F.softmax(q_logits.float(), dim=-1)
    q_log = F.log_softmax(q_logits.float(), dim=-1)
    p_log = F.log_softmax(p_logits.float(), dim=-1)
    return (q * q_log).sum(dim=-1).mean(dim=0) - (q * p_log).sum(dim=-1).mean(dim=0)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of ``softmax(logits)`` (USB's arithmetic, for its gradients' last bits too)."""
    probs = F.softmax(logits.float(), dim=-1)
    return -(probs * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean(dim=0)


def vat_perturbation(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    clean_logits: torch.Tensor,
    eps: float,
    xi: float,
    noise: torch.Tensor,
    iterations: int = 1,
) -> torch.Tensor:
    """The virtual adversarial perturbation ``r_adv`` of ``images``: L2 norm ``eps`` per sample.

    ``logits_fn`` maps images to logits (gradients flow to its input); ``clean_logits``
    are its logits for ``images``; ``noise`` (the shape of ``images``) is the random start.
    """
    images = images.detach()
    direction = noise.to(images.dtype)
    for _ in range(iterations):
        probe = (xi * l2_normalize(direction)).requires_grad_(True)
        with torch.enable_grad():
            divergence = kl_divergence_with_logits(clean_logits.detach(), logits_fn(images + probe))
            (direction,) = torch.autograd.grad(divergence, probe)
    return eps * l2_normalize(direction.detach())


class VAT(SSLAlgorithm):
    """Smoothness against the virtual adversarial direction, plus entropy minimisation."""

    name = "vat"
    modalities = (IMAGE,)
    modality_reason = "perturbs its inputs adversarially"
    description = "virtual adversarial perturbations (consistency against the worst direction) + entropy minimisation"
    config_options: ClassVar[tuple[Option, ...]] = (
        Option("vat_eps", float, 6.0, "L2 norm of the adversarial perturbation of each (normalised) image.",
               minimum=0, usb=True),
        Option("vat_xi", float, 1e-6, "L2 norm of the probe that finds the adversarial direction (USB's 1e-6 "
               "is below float32 resolution for normalised images; 1e-3 finds the direction better).", minimum=0,
               exclusive_minimum=True),
        Option("ent_loss_ratio", float, 0.06, "Weight of the entropy minimisation loss.", minimum=0, usb=True),
        ulb_loss_ratio_option(1.0),
        unsup_warm_up_option(0.4),
        joint_forward_option(),
    )

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        return {"x_lb": self.augment.weak(images), "y_lb": targets, "x_ulb_w": self.augment.weak(unlabelled)}

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        network = unwrap(self.model)

        def logits_fn(images: torch.Tensor) -> torch.Tensor:
            return network(images)["logits"]  # type: ignore[no-any-return]

        noise = self.host_random("randn", x_ulb_w.shape)
        if config.joint_forward:
            with frozen_batch_norm_stats(network):
                with torch.no_grad():
                    clean_logits = logits_fn(x_ulb_w)
                r_adv = vat_perturbation(logits_fn, x_ulb_w, clean_logits, config.vat_eps, config.vat_xi, noise)
            outputs, sizes = self.forward_views(x_lb, x_ulb_w, x_ulb_w + r_adv)
            logits_lb, logits_ulb, logits_adv = split(outputs["logits"], sizes)
        else:  # USB's passes
            logits_lb = self.model(x_lb)["logits"]
            with frozen_batch_norm_stats(network):
                logits_ulb = logits_fn(x_ulb_w)
                r_adv = vat_perturbation(logits_fn, x_ulb_w, logits_ulb, config.vat_eps, config.vat_xi, noise)
                logits_adv = logits_fn(x_ulb_w + r_adv)
        sup_loss = supervised_loss(logits_lb, y_lb)
        unsup_loss = kl_divergence_with_logits(logits_ulb.detach(), logits_adv)
        ent_loss = entropy(logits_ulb)
        ramp = self.unsup_weight(config.unsup_warm_up)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss * ramp + config.ent_loss_ratio * ent_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "ent_loss": ent_loss}
