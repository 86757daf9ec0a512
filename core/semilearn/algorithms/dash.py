"""Dash (Xu et al., 2021, arXiv:2109.00650): a dynamic, decreasing selection threshold.

A supervised warm-up comes first. Then an unlabelled sample is used when the loss of its
weak view against its own pseudo-label is below ``rho`` (the ``"dash"`` mask policy), and
``rho`` shrinks geometrically: ``rho = max(C * gamma^-k * rho_init, rho_min)`` after ``k``
decreases, one every ``rho_update_iter`` steps. Pseudo-labels are soft (the weak view's
prediction sharpened with ``T``) until ``rho`` reaches ``rho_min``, hard from then on.

As in USB:

* the warm-up precedes the ``num_train_iter`` steps of the run (the learning-rate schedule
  runs on through it) and takes ``num_wu_iter`` steps, one more when an epoch of
  ``num_train_iter // epoch`` steps is longer, as USB's loop does;
* ``rho_init`` is the mean cross-entropy, on the evaluation split, of the network's
  *initial* weights with the batch-norm statistics of the warm-up (USB's warm-up keeps an
  EMA of the weights that it never updates, and evaluates with it). It is large -- about
  ``ln C`` -- so Dash starts lenient and soft. ``rho_init_data: labelled`` measures it on
  the labelled set instead, which keeps the evaluation data out of training;
* the EMA model starts again from the warmed-up weights when the warm-up ends;
* ``rho`` decreases every ten epochs (``10 * (num_train_iter // epoch)`` steps) unless
  ``rho_update_iter`` says otherwise.

Reading ``rho_init`` back to the host happens once per run, when the warm-up ends; it is
kept in checkpoints, and so are the initial weights until then.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, Option
from .common import (
    SSLAlgorithm,
    full_precision,
    masked_loss,
    probabilities,
    supervised_loss,
    temperature_option,
    ulb_loss_ratio_option,
)

if TYPE_CHECKING:
    from ..data.base import SSLData
    from ..plugins import PluginManager

__all__ = ["Dash", "dash_threshold", "warmup_steps"]


def dash_threshold(steps_after_warmup: int, rho_init: float, gamma: float, c: float, rho_min: float,
                   interval: int) -> float:
    """``max(C * gamma^-k * rho_init, rho_min)`` with ``k = steps_after_warmup // interval``."""
    decreases = max(steps_after_warmup, 0) // max(interval, 1)
    return max(c * math.pow(gamma, -decreases) * rho_init, rho_min)


def warmup_steps(num_wu_iter: int, num_train_iter: int, epoch: int) -> int:
    """How many steps USB's warm-up takes: it stops after step ``num_wu_iter`` (counting from 0)
    or after ``max(1, num_wu_iter // E)`` epochs of ``E = num_train_iter // epoch`` steps."""
    if num_wu_iter <= 0:
        return 0
    per_epoch = max(1, num_train_iter // epoch)
    return min(num_wu_iter + 1, max(1, num_wu_iter // per_epoch) * per_epoch)


class Dash(SSLAlgorithm):
    """Unlabelled samples whose pseudo-label loss is below a geometrically decreasing threshold."""

    name = "dash"
    description = "dynamic threshold on the pseudo-label loss, decreasing geometrically after a warm-up"
    config_options: ClassVar[tuple[Option, ...]] = (
        temperature_option(0.5),
        Option("gamma", float, 1.27, "Factor by which the threshold decreases (rho ~ gamma^-k).", minimum=1,
               usb=True),
        Option("C", float, 1.0001, "Scale of the threshold relative to the warm-up loss.", minimum=0,
               exclusive_minimum=True, usb=True),
        Option("rho_min", float, 0.05, "Smallest threshold; from then on pseudo-labels are hard.", minimum=0,
               usb=True),
        Option("num_wu_iter", int, 2048, "Supervised warm-up steps before the num_train_iter steps of the run "
               "(0: none).", minimum=0, usb=True),
        Option("num_wu_eval_iter", int, 100, "USB's logging interval during the warm-up (no effect here: the "
               "warm-up steps log like the others).", minimum=1, usb=True),
        Option("rho_update_iter", int, None, "Steps between two decreases of the threshold; null: every 10 epochs "
               "(10 * (num_train_iter // epoch) steps), as USB.", nullable=True, minimum=1),
        Option("rho_init_data", str, "test", "Where rho_init, the initial weights' loss, is measured: the "
               "evaluation split (USB) or the labelled set.", choices=("test", "labelled")),
        ulb_loss_ratio_option(1.0),
    )

    def __init__(self, config: Config, data: SSLData, model: nn.Module, manager: PluginManager, run_dir: Path,
                 device: torch.device) -> None:
        super().__init__(config, data, model, manager, run_dir, device)
        self.warmup_steps = warmup_steps(config.num_wu_iter, config.num_train_iter, config.epoch)
        self.num_train_iter = config.num_train_iter + self.warmup_steps  # the schedule keeps num_train_iter
        if self.warmup_steps:
            self.buffers["initial_parameters"] = {name: parameter.detach().clone()
                                                  for name, parameter in self.module.named_parameters()}

    @property
    def warming_up(self) -> bool:
        return self.global_step < self.warmup_steps

    @property
    def update_interval(self) -> int:
        configured = self.config.rho_update_iter
        return int(configured) if configured else 10 * max(1, self.config.num_train_iter // self.config.epoch)

    def rho_init(self) -> float:
        """The initial weights' mean loss, measured when the warm-up ends (then saved)."""
        if self.buffers.get("rho_init") is None:
            self.buffers["rho_init"] = self._initial_loss()
            self.buffers.pop("initial_parameters", None)
            if self.ema_model is not None:  # USB's EMA starts again from the warmed-up weights
                with torch.no_grad():
                    for average, parameter in zip(self.ema_model.parameters(), self.module.parameters(),
                                                  strict=True):
                        average.copy_(parameter)
        return float(self.buffers["rho_init"])

    def _initial_loss(self) -> float:
        initial = self.buffers.get("initial_parameters")
        network = copy.deepcopy(self.module)
        if initial is not None:
            with torch.no_grad():
                for name, parameter in network.named_parameters():
                    parameter.copy_(initial[name])
        data = self.data
        images, targets = ((data.test_samples, data.test_targets) if self.config.rho_init_data == "test"
                           else (data.labelled_samples, data.labelled_targets))
        logits = self.predict(images, model=network)
        return float(F.cross_entropy(logits, targets.to(logits.device)).item())

    def threshold(self) -> tuple[float, bool]:
        """This step's ``rho`` and whether pseudo-labels are hard."""
        config = self.config
        rho = dash_threshold(self.global_step - self.warmup_steps, self.rho_init(), config.gamma, config.C,
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
            sup_loss = F.cross_entropy(full_precision(self.model(x_lb)["logits"]), y_lb)
            zero = torch.zeros((), device=sup_loss.device)
            return sup_loss, {"sup_loss": sup_loss, "unsup_loss": zero, "mask_ratio": zero}

        config = self.config
        rho, hard = self.threshold()
        logits_lb, logits_w, logits_s = self.forward_logits(x_lb, x_ulb_w, x_ulb_s)
        sup_loss = supervised_loss(logits_lb, y_lb)
        mask = self.mask("dash", probabilities(logits_w), rho=rho, hard=hard, temperature=config.T)
        unsup_loss = masked_loss(logits_s, self.targets_from_logits(logits_w, hard), mask)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "mask_ratio": mask.mean()}
