"""Optimizer and learning-rate schedule, as USB builds them.

SGD with Nesterov momentum (or AdamW), no weight decay on biases and normalisation
parameters, and a cosine decay over 7/16 of a cycle after an optional linear warm-up:
``lr(t) = lr * cos(7 pi t / (16 T))`` for ``t`` steps of ``T``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from .config import Config

__all__ = ["build_optimizer", "cosine_schedule_with_warmup", "COSINE_CYCLES"]

COSINE_CYCLES = 7.0 / 16.0


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if config.optim == "AdamW":
        return torch.optim.AdamW(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov
                           and config.momentum > 0)


def cosine_schedule_with_warmup(
    optimizer: torch.optim.Optimizer, num_training_steps: int, num_warmup_steps: int = 0
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to the peak, then cosine decay over 7/16 of a cycle."""

    def factor(step: int) -> float:
        if step < num_warmup_steps:
            return float(step) / float(max(1, num_warmup_steps))
        progress = float(step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
        return max(0.0, math.cos(math.pi * COSINE_CYCLES * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
