"""Virtual Adversarial Training (Miyato et al., 2018, arXiv:1704.03976) with entropy minimisation.

For each unlabelled image ``x`` VAT finds the direction in which the prediction changes
most -- one power iteration: a random unit direction ``d`` scaled to ``vat_xi`` is added
to ``x``, and the gradient of ``KL(p(x) || p(x + d))`` with respect to ``d`` is the new
direction -- and perturbs the image by ``r_adv``, that direction scaled to L2 norm
``vat_eps`` per sample. The probe size defaults to 1e-3 rather than the paper's 1e-6: in
float32, a 1e-6 probe on normalised images is mostly rounding noise (its direction has a
cosine of about 0.3 with the float64 one on ``small_cnn``; 1e-4 to 1e-2 give 0.99). The model is trained to predict the same distribution on
``x + r_adv`` as on ``x`` (the local distributional smoothness loss, weight ramped up
over ``unsup_warm_up``), and to be confident on unlabelled data (entropy minimisation,
weight ``ent_loss_ratio``).

The clean prediction and the gradient probe are auxiliary passes that do not move the
batch-norm statistics; labelled, clean and adversarial views then go through the network
in one forward pass, which carries every gradient to the weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..config import Option
from ..nets.heads import frozen_batch_norm_stats, unwrap
from .common import SSLAlgorithm, cross_entropy, split, ulb_loss_ratio_option, unsup_warm_up_option

__all__ = ["VAT", "vat_perturbation", "kl_divergence_with_logits", "entropy", "l2_normalize"]


def l2_normalize(tensor: torch.Tensor) -> torch.Tensor:
    """Scale each sample (first dimension) to unit L2 norm."""
    norm = tensor.flatten(1).norm(dim=1).view(-1, *([1] * (tensor.ndim - 1)))
    return tensor / (norm + 1e-16)


def kl_divergence_with_logits(q_logits: torch.Tensor, p_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(q) || softmax(p))`` averaged over the batch."""
    q_log = F.log_softmax(q_logits.float(), dim=-1)
    p_log = F.log_softmax(p_logits.float(), dim=-1)
    return (q_log.exp() * (q_log - p_log)).sum(dim=-1).mean()


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of ``softmax(logits)``."""
    log_probs = F.log_softmax(logits.float(), dim=-1)
    return -(log_probs.exp() * log_probs).sum(dim=-1).mean()


def vat_perturbation(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    clean_logits: torch.Tensor,
    eps: float,
    xi: float,
    generator: torch.Generator,
    iterations: int = 1,
) -> torch.Tensor:
    """The virtual adversarial perturbation ``r_adv`` of ``images``: L2 norm ``eps`` per sample.

    ``logits_fn`` maps images to logits (gradients flow to its input); ``clean_logits``
    are its logits for ``images``. The random start is drawn from ``generator``.
    """
    images = images.detach()
    direction = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    for _ in range(iterations):
        probe = (xi * l2_normalize(direction)).requires_grad_(True)
        with torch.enable_grad():
            divergence = kl_divergence_with_logits(clean_logits.detach(), logits_fn(images + probe))
            (direction,) = torch.autograd.grad(divergence, probe)
    return eps * l2_normalize(direction.detach())


class VAT(SSLAlgorithm):
    """Smoothness against the virtual adversarial direction, plus entropy minimisation."""

    name = "vat"
    description = "virtual adversarial perturbations (consistency against the worst direction) + entropy minimisation"
    config_options = (
        Option("vat_eps", float, 6.0, "L2 norm of the adversarial perturbation of each (normalised) image.",
               minimum=0, usb=True),
        Option("vat_xi", float, 1e-3, "L2 norm of the probe that finds the adversarial direction (the paper "
               "and USB use 1e-6, below float32 resolution for normalised images).", minimum=0,
               exclusive_minimum=True),
        Option("ent_loss_ratio", float, 0.06, "Weight of the entropy minimisation loss.", minimum=0, usb=True),
        ulb_loss_ratio_option(1.0),
        unsup_warm_up_option(0.4),
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

        with frozen_batch_norm_stats(network):
            with torch.no_grad():
                clean_logits = logits_fn(x_ulb_w)
            r_adv = vat_perturbation(logits_fn, x_ulb_w, clean_logits, config.vat_eps, config.vat_xi,
                                     self.augment_generator)

        outputs, sizes = self.forward_views(x_lb, x_ulb_w, x_ulb_w + r_adv)
        logits_lb, logits_ulb, logits_adv = split(outputs["logits"], sizes)
        sup_loss = cross_entropy(logits_lb, y_lb).mean()
        unsup_loss = kl_divergence_with_logits(logits_ulb.detach(), logits_adv)
        ent_loss = entropy(logits_ulb)
        ramp = self.unsup_weight(config.unsup_warm_up)
        loss = sup_loss + config.ulb_loss_ratio * ramp * unsup_loss + config.ent_loss_ratio * ent_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "ent_loss": ent_loss}
