"""Optimizer and learning-rate schedule, as USB builds them.

SGD with Nesterov momentum (or AdamW), no weight decay on biases and normalisation
parameters (nor on those a network names in ``no_weight_decay()``, such as a ViT's
position embeddings), and a cosine decay over 7/16 of a cycle after an optional linear
warm-up: ``lr(t) = lr * cos(7 pi t / (16 T))`` for ``t`` steps of ``T``.

Layer-wise learning-rate decay (``layer_decay`` below 1, BEiT's rule as USB applies it)
gives layer ``i`` of ``n`` the learning rate ``lr * layer_decay ** (n - 1 - i)``: the
classifier keeps ``lr``, each layer below gets ``layer_decay`` times the one above. A
network places its parameters with ``layer_key(name)``: equal keys share a layer, layers
are numbered in the keys' sorted order, and None (the classifier, the heads algorithms
add) is the top layer. A ViT's layers are the embeddings, each block (the final norm with
the last one) and the classifier; a wide ResNet's the first convolution, each residual
block and the rest. A network without ``layer_key`` is one layer, so ``layer_decay``
changes nothing there (as in USB). The schedule multiplies each group's own learning
rate, so the ratios between layers hold at every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from .config import Config

__all__ = ["build_optimizer", "parameter_groups", "layer_ids", "cosine_schedule_with_warmup", "COSINE_CYCLES"]

COSINE_CYCLES = 7.0 / 16.0


def layer_ids(model: nn.Module) -> dict[str, int]:
    """Parameter name -> its layer for layer-wise decay, 0 the lowest (see the module docstring)."""
    layer_key: Callable[[str], tuple[int, ...] | None] | None = getattr(model, "layer_key", None)
    keys = {name: layer_key(name) if layer_key is not None else None for name, _ in model.named_parameters()}
    ordered = sorted({key for key in keys.values() if key is not None})
    index = {key: position for position, key in enumerate(ordered)}
    return {name: index[key] if key is not None else len(ordered) for name, key in keys.items()}


def parameter_groups(model: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0
                     ) -> list[dict[str, Any]]:
    """The optimizer's parameter groups for ``model``, as USB's ``get_optimizer`` forms them.

    With ``layer_decay`` 1: one group with weight decay and one without, both at the
    optimizer's ``lr``. Below 1: one group per layer and kind, in the order the parameters
    come, each with its own ``lr``.
    """
    no_weight_decay: Callable[[], Iterable[str]] | None = getattr(model, "no_weight_decay", None)
    no_decay_names = set(no_weight_decay()) if no_weight_decay is not None else set()
    trainable = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]

    def decays(name: str, parameter: nn.Parameter) -> bool:
        return parameter.ndim > 1 and name not in no_decay_names

    if layer_decay == 1.0:
        return [
            {"params": [parameter for name, parameter in trainable if decays(name, parameter)],
             "weight_decay": weight_decay},
            {"params": [parameter for name, parameter in trainable if not decays(name, parameter)],
             "weight_decay": 0.0},
        ]
    layers = layer_ids(model)
    top = max(layers.values(), default=0)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, parameter in trainable:
        layer, decayed = layers[name], decays(name, parameter)
        group = groups.get((layer, decayed))
        if group is None:
            group = groups[(layer, decayed)] = {"params": [], "weight_decay": weight_decay if decayed else 0.0,
                                                "lr": lr * layer_decay ** (top - layer)}
        group["params"].append(parameter)
    return list(groups.values())


def build_optimizer(model: nn.Module, config: Config) -> torch.optim.Optimizer:
    """SGD or AdamW over :func:`parameter_groups` of ``model`` (the network, not a distributed wrapper)."""
    groups = parameter_groups(model, config.lr, config.weight_decay, config.layer_decay)
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
