"""Dash (Xu et al., 2021, arXiv:2109.00650): a dynamic, decreasing selection threshold.

After ``num_wu_iter`` supervised warm-up steps, an unlabelled sample is used when the loss
of its weak view against its own pseudo-label is below ``rho`` (the ``"dash"`` mask
policy), and ``rho`` shrinks geometrically: ``rho = max(C * gamma^-k * rho_init,
rho_min)`` after ``k`` decreases, one every ``rho_update_iter`` steps. ``rho_init`` is the
model's mean cross-entropy on the labelled set at the end of the warm-up (USB takes the
test loss instead; the labelled set keeps the test data out of training). Pseudo-labels are
soft (sharpened with ``T``) until ``rho`` reaches ``rho_min``, hard from then on. The
warm-up steps belong to ``num_train_iter`` and draw no unlabelled data.

Reading ``rho_init`` back to the host happens once per run, at the end of the warm-up;
it is kept in checkpoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import Option
from ..nets.heads import unwrap
from .common import SSLAlgorithm, cross_entropy, split, temperature_option, ulb_loss_ratio_option

__all__ = ["Dash", "dash_threshold"]


def dash_threshold(steps_after_warmup: int, rho_init: float, gamma: float, c: float, rho_min: float,
                   interval: int) -> float:
    """``max(C * gamma^-k * rho_init, rho_min)`` with ``k = steps_after_warmup // interval``."""
    decreases = max(steps_after_warmup, 0) // max(interval, 1)
    return max(c * math.pow(gamma, -decreases) * rho_init, rho_min)


class Dash(SSLAlgorithm):
    """Unlabelled samples whose pseudo-label loss is below a geometrically decreasing threshold."""

    name = "dash"
    description = "dynamic threshold on the pseudo-label loss, decreasing geometrically after a warm-up"
    config_options = (
        temperature_option(0.5),
        Option("gamma", float, 1.27, "Factor by which the threshold decreases (rho ~ gamma^-k).", minimum=1,
               usb=True),
        Option("C", float, 1.0001, "Scale of the threshold relative to the warm-up loss.", minimum=0,
               exclusive_minimum=True, usb=True),
        Option("rho_min", float, 0.05, "Smallest threshold; from then on pseudo-labels are hard.", minimum=0,
               usb=True),
        Option("num_wu_iter", int, 2048, "Supervised warm-up steps (part of num_train_iter).", minimum=0,
               usb=True),
        Option("rho_update_iter", int, None, "Steps between two decreases of the threshold; null: 10/1024 of "
               "num_train_iter (USB: every 10 of its 1024 epochs).", nullable=True, minimum=1),
        ulb_loss_ratio_option(1.0),
    )

    @property
    def warming_up(self) -> bool:
        return self.global_step < self.config.num_wu_iter

    @property
    def update_interval(self) -> int:
        configured = self.config.rho_update_iter
        return int(configured) if configured else max(1, round(self.num_train_iter * 10 / 1024))

    def rho_init(self) -> float:
        """The labelled set's mean loss when the warm-up ends (computed once, then saved)."""
        if self.buffers.get("rho_init") is None:
            logits = self.predict(self.data.labelled_images, model=unwrap(self.model))
            self.buffers["rho_init"] = float(F.cross_entropy(logits, self.data.labelled_targets).item())
        return float(self.buffers["rho_init"])

    def threshold(self) -> tuple[float, bool]:
        """This step's ``rho`` and whether pseudo-labels are hard."""
        config = self.config
        rho = dash_threshold(self.global_step - config.num_wu_iter, self.rho_init(), config.gamma, config.C,
                             config.rho_min, self.update_interval)
        return rho, rho <= config.rho_min

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        batch = {"x_lb": self.augment.weak(images), "y_lb": targets}
        if not self.warming_up:
            _, unlabelled = self.draw_unlabelled()
            batch["x_ulb_w"] = self.augment.weak(unlabelled)
            batch["x_ulb_s"] = self.augment.strong(unlabelled)
        return batch

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor | None = None,
        x_ulb_s: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if x_ulb_w is None or x_ulb_s is None:  # supervised warm-up
            sup_loss = cross_entropy(self.model(x_lb)["logits"], y_lb).mean()
            zero = torch.zeros((), device=sup_loss.device)
            return sup_loss, {"sup_loss": sup_loss, "unsup_loss": zero, "mask_ratio": zero}

        config = self.config
        rho, hard = self.threshold()
        state = self.state_for("mask")
        state["rho"], state["hard_label"] = rho, hard

        outputs, sizes = self.forward_views(x_lb, x_ulb_w, x_ulb_s)
        logits_lb, logits_w, logits_s = split(outputs["logits"], sizes)
        sup_loss = cross_entropy(logits_lb, y_lb).mean()
        probs = torch.softmax(logits_w.detach().float(), dim=-1)
        mask = self.mask("dash", probs)
        targets = self.pseudo_labels("hard" if hard else "soft", probs, config.T)
        unsup_loss = (cross_entropy(logits_s, targets) * mask).mean()
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "mask_ratio": mask.mean()}
