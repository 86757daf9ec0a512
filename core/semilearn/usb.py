"""Configuration files written for USB (the original Unified SSL Benchmark code base) run as they are.

USB's classic-CV YAML files carry, beside the keys semilearn shares with them, keys for
things that torchrun, the engine or plugins now handle. :func:`translate` maps them:

* process and launcher keys (``world_size``, ``rank``, ``multiprocessing_distributed``,
  ``dist_url``, ``dist_backend``, ``gpu``), ``num_workers``, ``overwrite`` and
  ``use_tensorboard`` are accepted and dropped, with one warning saying what replaces them;
* ``use_wandb`` / ``use_aim`` turn the tracker plugins on (they must be installed) or off;
* ``resume`` / ``load_path`` become the checkpoint plugin's resume (``load_path`` when the
  file exists, else ``auto``);
* ``use_amp`` and ``clip`` are USB's other spellings of ``amp`` and ``clip_grad``;
* keys for behaviour semilearn has exactly one way of doing (``use_cat: true``,
  ``layer_decay: 1.0``, ``train_sampler: RandomSampler`` ...) are accepted silently at that
  value, and refused with the reason at any other.

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["UsbTranslation", "translate", "REPLACED", "FIXED", "SPELLINGS", "usb_parameter_name", "HEAD_NAMES"]

# USB key -> what does its job here
REPLACED: dict[str, str] = {
    "world_size": "torchrun / --nproc-per-node",
    "rank": "torchrun",
    "multiprocessing_distributed": "torchrun / --nproc-per-node",
    "dist_url": "torchrun's rendezvous",
    "dist_backend": "gloo on CPU, NCCL on GPUs, chosen by the engine",
    "gpu": "the device key and torchrun's LOCAL_RANK",
    "num_workers": "batches are drawn and augmented on the device",
    "overwrite": "run directories are never overwritten; a new run gets a new name",
    "use_tensorboard": "the tracker plugins (semilearn-wandb, semilearn-aim)",
}

# USB key -> (the only value semilearn implements, why)
FIXED: dict[str, tuple[Any, str]] = {
    "use_cat": (True, "labelled and unlabelled views always go through the network in one pass"),
    "layer_decay": (1.0, "layer-wise learning-rate decay is not implemented"),
    "net_from_name": (False, "networks come from the network registry (semilearn nets)"),
    "train_sampler": ("RandomSampler", "batches are drawn from seeded permutations"),
    "include_lb_to_ulb": (True, "the unlabelled set always includes the labelled images"),
    "use_pretrain": (False, "pretrained weights are not loaded"),
    "pretrain_path": ("", "pretrained weights are not loaded"),
    "imb_algorithm": (None, "imbalanced-SSL algorithms are not implemented"),
    "lb_imb_ratio": (1, "imbalanced splits are not implemented"),
    "ulb_imb_ratio": (1, "imbalanced splits are not implemented"),
    "ulb_num_labels": (None, "imbalanced splits are not implemented"),
}

# USB spelling -> semilearn key
SPELLINGS: dict[str, str] = {"use_amp": "amp", "clip": "clip_grad"}

_TRACKERS = {"use_wandb": "wandb", "use_aim": "aim"}

# The networks' parameter names are USB's; the heads algorithms add around them
# (semilearn.nets.heads) live under heads.<output>, where USB names the module itself.
HEAD_NAMES: dict[str, str] = {
    "heads.proj.mlp.": "mlp_proj.",  # CoMatch, SimMatch
    "heads.proj.mlp_2.": "mlp_proj_2.",  # their EPASS heads (use_epass)
    "heads.proj.mlp_3.": "mlp_proj_3.",
    "heads.logits_rot.net.": "rot_classifier.",  # ReMixMatch, CRMatch
    "heads.logits_ds.": "ds_classifier.",  # CRMatch
}


def usb_parameter_name(name: str) -> str:
    """The name USB gives the parameter or buffer called ``name`` here."""
    for ours, theirs in HEAD_NAMES.items():
        if name.startswith(ours):
            return theirs + name[len(ours):]
    return name


@dataclass
class UsbTranslation:
    """What a USB-style configuration asked for, in semilearn's terms."""

    config: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    enable_plugins: list[str] = field(default_factory=list)
    disable_plugins: list[str] = field(default_factory=list)
    resume: str | None = None


def _same(value: Any, expected: Any) -> bool:
    if expected is None:
        return value is None or (isinstance(value, str) and value.lower() in {"none", "null", ""})
    if isinstance(expected, bool):
        return value is expected or (isinstance(value, str) and value.lower() == str(expected).lower())
    if isinstance(expected, (int, float)) and not isinstance(value, bool) and isinstance(value, (int, float)):
        return float(value) == float(expected)
    return bool(value == expected)


def _truthy(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise ConfigError(f"configuration key '{key}' expects a boolean, got {value!r}")


def translate(raw: Mapping[str, Any]) -> UsbTranslation:
    """Map USB-only keys of ``raw`` (see the module docstring); other keys pass through."""
    config: dict[str, Any] = {}
    result = UsbTranslation(config)
    replaced: list[str] = []
    for key, value in raw.items():
        if key in REPLACED:
            replaced.append(key)
        elif key in FIXED:
            expected, reason = FIXED[key]
            if not _same(value, expected):
                raise ConfigError(f"configuration key '{key}' can only be {expected!r} here ({reason}); got {value!r}")
        elif key in SPELLINGS:
            target = SPELLINGS[key]
            if target in raw:
                raise ConfigError(f"configuration keys '{key}' and '{target}' set the same option")
            config[target] = value
        elif key in _TRACKERS:
            plugin = _TRACKERS[key]
            (result.enable_plugins if _truthy(key, value) else result.disable_plugins).append(plugin)
        elif key in ("resume", "load_path"):
            continue
        else:
            config[key] = value
    if replaced:
        result.warnings.append(
            "ignoring USB keys handled differently here: "
            + "; ".join(f"{key} ({REPLACED[key]})" for key in replaced)
        )
    if "resume" in raw and _truthy("resume", raw["resume"]):
        load_path = raw.get("load_path")
        result.resume = str(load_path) if load_path and Path(str(load_path)).exists() else "auto"
    return result
