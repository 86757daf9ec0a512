"""The EMA model: an exponential moving average of the weights, used for evaluation.

After every step (first among ``after_train_step`` implementations) each parameter of
the EMA model moves towards the model's: ``ema = (1 - d) * param + d * ema``, computed as
USB does (so that the values are USB's to the last bit), and buffers (batch-norm
statistics) are copied. The decay ``d`` is ``ema_m`` from the first step, as in USB; with
``ema_warmup`` it ramps up as ``min(ema_m, (1 + t) / (10 + t))`` at step ``t``, so that
short runs get a useful average. ``ema_m: 0`` turns the EMA model off.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from ..hook import Hook, hookimpl

if TYPE_CHECKING:
    from ..view import RunView

__all__ = ["EMAHook", "ema_decay"]


def ema_decay(ema_m: float, step: int) -> float:
    """The decay applied after step ``step`` (1-based) with ``ema_warmup``."""
    return min(ema_m, (1.0 + step) / (10.0 + step))


class EMAHook(Hook):
    """Keeps ``algorithm.ema_model`` up to date and in checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self._ema_parameters: list[Any] = []
        self._parameters: list[Any] = []
        self._ema_buffers: list[Any] = []
        self._buffers: list[Any] = []

    @hookimpl
    def before_run(self, algorithm: RunView) -> None:
        if algorithm.config.ema_m <= 0:
            return
        model = algorithm.module  # the network itself, never a DistributedDataParallel wrapper
        ema_model = copy.deepcopy(model)
        for parameter in ema_model.parameters():
            parameter.requires_grad_(False)
        algorithm.ema_model = ema_model
        self._ema_parameters = list(ema_model.parameters())
        self._parameters = list(model.parameters())
        self._ema_buffers = [buffer for buffer in ema_model.buffers() if buffer.dtype.is_floating_point]
        self._buffers = [buffer for buffer in model.buffers() if buffer.dtype.is_floating_point]

    @hookimpl(tryfirst=True)
    def after_train_step(self, algorithm: RunView, step: int) -> None:
        if algorithm.ema_model is None:
            return
        import torch

        config = algorithm.config
        decay = ema_decay(config.ema_m, step) if config.ema_warmup else config.ema_m
        with torch.no_grad():
            moved = torch._foreach_mul(self._parameters, 1.0 - decay)
            torch._foreach_mul_(self._ema_parameters, decay)
            torch._foreach_add_(self._ema_parameters, moved)
            if self._buffers:
                torch._foreach_copy_(self._ema_buffers, self._buffers)

    @hookimpl
    def save_checkpoint(self, algorithm: RunView, state: MutableMapping[str, Any]) -> None:
        if algorithm.ema_model is not None:
            self.plugin_state(state)["model"] = algorithm.ema_model.state_dict()

    @hookimpl
    def load_checkpoint(self, algorithm: RunView, state: Mapping[str, Any]) -> None:
        saved = self.plugin_state(state)
        if algorithm.ema_model is not None and "model" in saved:
            algorithm.ema_model.load_state_dict(saved["model"])
