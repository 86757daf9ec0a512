"""Mean Teacher (Tarvainen and Valpola, 2017, arXiv:1703.01780): consistency with an EMA teacher.

The teacher is the exponential moving average of the student's weights -- the engine's
EMA model (``algorithm.ema_model``, kept by the built-in ``ema`` plugin with momentum
``ema_m``). The student's prediction on one weak view of an unlabelled image is pulled
by a mean squared error towards the teacher's prediction on another weak view; the loss
weight ramps up over the first ``unsup_warm_up`` fraction of the run. As in USB the
student's labelled and unlabelled views have a forward pass each and only the labelled one
moves the batch-norm running statistics (``joint_forward`` shares one pass). With ``ema_m:
0`` (USB's text files) the average is the student itself, so, as in USB, the teacher is the
student's own weights in a pass without gradients; with the ``ema`` plugin disabled there
is no teacher: a ConfigError.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from ..config import Config, Option
from ..errors import ConfigError
from ..nets.heads import frozen_batch_norm_stats, unwrap
from .common import (
    SSLAlgorithm,
    full_precision,
    joint_forward_option,
    mse_consistency,
    supervised_loss,
    ulb_loss_ratio_option,
    unsup_warm_up_option,
)

if TYPE_CHECKING:
    from ..data.base import SSLData
    from ..plugins import PluginManager

__all__ = ["MeanTeacher"]


class MeanTeacher(SSLAlgorithm):
    """MSE consistency between the student and its EMA teacher on two weak views."""

    name = "meanteacher"
    description = "mean-squared consistency with an EMA-of-weights teacher (the EMA model)"
    config_options: ClassVar[tuple[Option, ...]] = (ulb_loss_ratio_option(50.0), unsup_warm_up_option(0.4), joint_forward_option())

    @classmethod
    def views_per_sample(cls, config: Config) -> tuple[int, int]:
        return 2, 0  # the student's and the teacher's weak views

    def __init__(self, config: Config, data: SSLData, model: nn.Module, manager: PluginManager, run_dir: Path,
                 device: torch.device) -> None:
        super().__init__(config, data, model, manager, run_dir, device)
        if self.config.ema_m <= 0:
            self.log.warning("meanteacher with ema_m 0: the teacher is the student itself (its weights in a pass "
                             "without gradients, as USB's), not an average")

    def teacher(self) -> nn.Module:
        """The EMA model (the student's own network with ``ema_m: 0``), or a ConfigError naming why
        it is missing."""
        if self.config.ema_m <= 0:
            return unwrap(self.model)
        if self.ema_model is None:
            raise ConfigError("algorithm 'meanteacher' uses the EMA model as its teacher, and there is none: "
                              "enable the built-in 'ema' plugin (it is disabled) and keep ema_m above 0")
        return self.ema_model

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        return {
            "x_lb": self.augment.weak(images), "y_lb": targets,
            "x_ulb_w": self.augment.weak(unlabelled), "x_ulb_w2": self.augment.weak(unlabelled),
        }

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_w2: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        teacher = self.teacher()
        # The teacher stays in training mode (batch statistics, as the student sees them) but
        # leaves its running statistics alone; the ema plugin sets them after the step.
        with torch.no_grad(), frozen_batch_norm_stats(teacher):
            targets = torch.softmax(full_precision(teacher(x_ulb_w)["logits"]), dim=-1)
        logits_lb, logits_student = (outputs["logits"] for outputs in self.forward_each(x_lb, x_ulb_w2))
        sup_loss = supervised_loss(logits_lb, y_lb)
        unsup_loss = mse_consistency(logits_student, targets).mean()
        ramp = self.unsup_weight(config.unsup_warm_up)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss * ramp
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss}
