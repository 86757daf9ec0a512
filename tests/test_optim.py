"""Optimizer groups against USB's ``get_optimizer`` (fixture: tests/parity/fixtures/vit.pt).

For each case the fixture holds, per USB parameter name, the learning rate and weight decay
of the group USB put it in; the same network built here must get the same numbers.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from test_vit import FIXTURES
from torch import nn

from semilearn.data import InputSpec
from semilearn.nets.cnn import small_cnn
from semilearn.nets.heads import NetWithHeads, ProjectionHead
from semilearn.nets.vit import VisionTransformer
from semilearn.nets.wrn import wrn_28_2
from semilearn.optim import build_optimizer, cosine_schedule_with_warmup, layer_ids
from semilearn.usb import usb_parameter_name


@functools.cache
def _usb_tables() -> dict[str, dict[str, list[float]]]:
    return torch.load(FIXTURES / "vit.pt", weights_only=True)["optimizers"]  # type: ignore[no-any-return]


def _tiny_vit() -> VisionTransformer:
    return VisionTransformer(10, img_size=32, patch_size=4, embed_dim=24, depth=2, num_heads=2)


def _table(model: nn.Module, **config: Any) -> dict[str, list[float]]:
    optimizer = build_optimizer(model, SimpleNamespace(momentum=0.9, nesterov=True, **config))  # type: ignore[arg-type]
    by_id = {id(parameter): name for name, parameter in model.named_parameters()}
    return {usb_parameter_name(by_id[id(parameter)]): [group["lr"], group["weight_decay"]]
            for group in optimizer.param_groups for parameter in group["params"]}


@pytest.mark.parametrize(("case", "build", "config"), [
    ("vit_adamw_0.65", _tiny_vit, {"optim": "AdamW", "lr": 5e-4, "weight_decay": 0.05, "layer_decay": 0.65}),
    ("vit_adamw_1.0", _tiny_vit, {"optim": "AdamW", "lr": 5e-4, "weight_decay": 0.05, "layer_decay": 1.0}),
    ("comatch_vit_adamw_0.65", lambda: NetWithHeads(_tiny_vit(), {"proj": ProjectionHead(24, 8)}),
     {"optim": "AdamW", "lr": 5e-4, "weight_decay": 0.05, "layer_decay": 0.65}),
    ("comatch_vit_adamw_1.0", lambda: NetWithHeads(_tiny_vit(), {"proj": ProjectionHead(24, 8)}),
     {"optim": "AdamW", "lr": 5e-4, "weight_decay": 0.05, "layer_decay": 1.0}),
    ("wrn_28_2_sgd_0.5", lambda: wrn_28_2(10, InputSpec("image", (3, 32, 32))),
     {"optim": "SGD", "lr": 0.03, "weight_decay": 5e-4, "layer_decay": 0.5}),
])
def test_each_parameter_gets_usbs_learning_rate_and_weight_decay(case: str, build: Any,
                                                                 config: dict[str, Any]) -> None:
    ours = _table(build(), **config)
    usb = _usb_tables()[case]
    assert ours.keys() == usb.keys()
    for name, (lr, weight_decay) in usb.items():
        assert ours[name][0] == pytest.approx(lr, rel=1e-12), name
        assert ours[name][1] == weight_decay, name


def test_the_vit_rule_by_hand() -> None:
    layers = layer_ids(_tiny_vit())  # embeddings, block 0, block 1 with the final norm, classifier
    assert layers["cls_token"] == layers["pos_embed"] == layers["patch_embed.proj.weight"] == 0
    assert layers["blocks.0.attn.qkv.weight"] == 1
    assert layers["blocks.1.mlp.fc2.bias"] == layers["norm.weight"] == 2
    assert layers["head.weight"] == 3
    table = _table(_tiny_vit(), optim="AdamW", lr=1.0, weight_decay=0.1, layer_decay=0.5)
    assert table["pos_embed"] == [0.125, 0.0] and table["patch_embed.proj.weight"] == [0.125, 0.1]
    assert table["blocks.0.attn.proj.weight"] == [0.25, 0.1] and table["norm.bias"] == [0.5, 0.0]
    assert table["head.weight"] == [1.0, 0.1] and table["head.bias"] == [1.0, 0.0]


def test_a_network_without_layers_is_one_layer_as_in_usb() -> None:
    model = small_cnn(10, InputSpec("image", (1, 8, 8)))
    assert set(layer_ids(model).values()) == {0}
    table = _table(model, optim="SGD", lr=0.03, weight_decay=5e-4, layer_decay=0.5)
    assert {lr for lr, _ in table.values()} == {0.03}


def test_layer_decay_one_keeps_two_groups() -> None:
    optimizer = build_optimizer(wrn_28_2(10, InputSpec("image", (3, 32, 32))), SimpleNamespace(  # type: ignore[arg-type]
        optim="SGD", lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4, layer_decay=1.0))
    assert [group["weight_decay"] for group in optimizer.param_groups] == [5e-4, 0.0]
    assert all(group["lr"] == 0.03 for group in optimizer.param_groups)


def test_the_schedule_scales_each_groups_own_rate() -> None:
    optimizer = build_optimizer(_tiny_vit(), SimpleNamespace(  # type: ignore[arg-type]
        optim="AdamW", lr=1.0, momentum=0.9, nesterov=True, weight_decay=0.0, layer_decay=0.5))
    peaks = [group["lr"] for group in optimizer.param_groups]
    scheduler = cosine_schedule_with_warmup(optimizer, num_training_steps=10, num_warmup_steps=2)
    for step in range(1, 6):
        optimizer.step()
        scheduler.step()
        factor = min(step / 2, 1.0) if step < 2 else torch.cos(torch.tensor(torch.pi * 7 / 16 * (step - 2) / 8)).item()
        for group, peak in zip(optimizer.param_groups, peaks, strict=True):
            assert group["lr"] == pytest.approx(peak * factor, rel=1e-6)


def test_layer_decay_above_one_is_refused(cli) -> None:
    result = cli("config", "show", "--set", "layer_decay=1.5")
    assert result.code == 2 and "configuration key 'layer_decay' must be" in result.err
