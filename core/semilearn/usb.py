"""Configuration files written for USB (the original Unified SSL Benchmark code base) run as they are.

USB's classic-CV YAML files carry, beside the keys semilearn shares with them, keys for
things that torchrun, the engine or plugins now handle. :func:`translate` maps them:

* process and launcher keys (``world_size``, ``rank``, ``multiprocessing_distributed``,
  ``dist_url``, ``dist_backend``, ``gpu``), ``overwrite`` and
  ``use_tensorboard`` are accepted and dropped, with one warning saying what replaces them;
* ``use_wandb`` / ``use_aim`` turn the tracker plugins on (they must be installed) or off;
* ``resume`` / ``load_path`` become the checkpoint plugin's resume (``load_path`` when the
  file exists, else ``auto``);
* ``use_amp`` and ``clip`` are USB's other spellings of ``amp`` and ``clip_grad``;
* the text and audio keys USB's files set at the top level (``max_length``,
  ``max_length_seconds``, ``sample_rate``) go to the section of the plugin that reads them
  (``nlp.max_length`` ...);
* keys for behaviour semilearn has exactly one way of doing (``net_from_name: false``,
  ``train_sampler: RandomSampler`` ...) are accepted silently at that value, and refused with
  the reason at any other. (``use_cat`` is an option like USB's, in both values: see the
  core option's description.)

:func:`usb_parameter_name` and :func:`import_usb_checkpoint` carry USB's checkpoints over.
Nothing here imports torch at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .plugins import CORE_DISTRIBUTION, SHIPPED_PLUGINS
from .rundir import CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION

__all__ = ["UsbTranslation", "translate", "REPLACED", "FIXED", "SPELLINGS", "usb_parameter_name", "HEAD_NAMES",
           "import_usb_checkpoint"]

# use_wandb / use_aim -> the tracker plugin they turn on or off (the table is semilearn.plugins.SHIPPED_PLUGINS)
_TRACKERS = {plugin.usb_key: name for name, plugin in SHIPPED_PLUGINS.items() if plugin.usb_key}
# USB's top-level keys of text and audio (max_length ...) -> the section of the plugin that reads them
_SECTION_KEYS = {key: name for name, plugin in SHIPPED_PLUGINS.items() for key in plugin.usb_keys}

# USB key -> what does its job here
REPLACED: dict[str, str] = {
    "world_size": "torchrun / --nproc-per-node",
    "rank": "torchrun",
    "multiprocessing_distributed": "torchrun / --nproc-per-node",
    "dist_url": "torchrun's rendezvous",
    "dist_backend": "gloo on CPU, NCCL on GPUs, chosen by the engine",
    "gpu": "the device key and torchrun's LOCAL_RANK",
    "overwrite": "run directories are never overwritten; a new run gets a new name",
    "use_tensorboard": f"the tracker plugins ({', '.join(SHIPPED_PLUGINS[name].distribution for name in _TRACKERS.values())})",
}

# USB key -> (the only value semilearn implements, why)
FIXED: dict[str, tuple[Any, str]] = {
    "net_from_name": (False, "networks come from the network registry (semilearn nets)"),
    "train_sampler": ("RandomSampler", "batches are drawn from seeded permutations"),
    "include_lb_to_ulb": (True, "the unlabelled set always includes the labelled images"),
    "imb_algorithm": (None, "imbalanced-SSL algorithms are not implemented"),
    "lb_imb_ratio": (1, "imbalanced splits are not implemented"),
    "ulb_imb_ratio": (1, "imbalanced splits are not implemented"),
    "ulb_num_labels": (None, "imbalanced splits are not implemented"),
}

# USB spelling -> semilearn key
SPELLINGS: dict[str, str] = {"use_amp": "amp", "clip": "clip_grad"}

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
    moved: dict[str, dict[str, Any]] = {}
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
        elif key in _SECTION_KEYS:
            moved.setdefault(_SECTION_KEYS[key], {})[key] = value
        else:
            config[key] = value
    for section, values in moved.items():
        given = config.get(section)
        merged = dict(given) if isinstance(given, Mapping) else {}
        for key, value in values.items():
            if key in merged:
                raise ConfigError(f"configuration keys '{key}' and '{section}.{key}' set the same option")
            merged[key] = value
        config[section] = merged
    if replaced:
        result.warnings.append(
            "ignoring USB keys handled differently here: "
            + "; ".join(f"{key} ({REPLACED[key]})" for key in replaced)
        )
    if "resume" in raw and _truthy("resume", raw["resume"]):
        load_path = raw.get("load_path")
        result.resume = str(load_path) if load_path and Path(str(load_path)).exists() else "auto"
    return result


def import_usb_checkpoint(usb_state: Mapping[str, Any], network: Any, config: Any, source: str) -> dict[str, Any]:
    """A semilearn checkpoint holding the weights of a USB checkpoint (``latest_model.pth``, ``model_best.pth``).

    USB's ``model`` and ``ema_model`` state dicts (a ``module.`` prefix from a distributed
    run dropped) are mapped onto ``network`` -- the network ``config`` names, built here --
    by :func:`usb_parameter_name`; every tensor must find its place with its shape. The
    result holds those weights (the EMA ones as the ``ema`` plugin's), USB's step count and
    ``config``; it has no optimizer state, so it is for evaluating, exporting or inspecting,
    not for resuming. Raises :class:`~semilearn.errors.CheckpointError` naming what does not fit.
    """
    from . import __version__
    from .errors import CheckpointError

    if not isinstance(usb_state, Mapping) or not isinstance(usb_state.get("model"), Mapping):
        raise CheckpointError(f"{source} is not a USB checkpoint (it has no 'model' state dict)")
    ours = network.state_dict()
    by_usb_name = {usb_parameter_name(name): name for name in ours}

    def convert(weights: Mapping[str, Any], what: str) -> dict[str, Any]:
        converted: dict[str, Any] = {}
        for usb_name, tensor in weights.items():
            name = usb_name[len("module."):] if usb_name.startswith("module.") else usb_name
            target = by_usb_name.get(name)
            if target is None:
                raise CheckpointError(f"{source}: USB's {what} has '{name}', which network '{config.net}' does not "
                                      f"have: is it the network of that run (--set net=..., num_classes=...)?")
            if tuple(tensor.shape) != tuple(ours[target].shape):
                raise CheckpointError(f"{source}: USB's {what} '{name}' is {tuple(tensor.shape)}, network "
                                      f"'{config.net}' has {tuple(ours[target].shape)} there: is num_classes right?")
            converted[target] = tensor
        missing = sorted(set(ours) - set(converted))
        if missing:
            raise CheckpointError(f"{source}: USB's {what} lacks {len(missing)} of network '{config.net}''s tensors, "
                                  f"e.g. {usb_parameter_name(missing[0])}")
        return converted

    state: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "algorithm": config.algorithm,
        "step": int(usb_state.get("it", 0)),
        "epoch": int(usb_state.get("epoch", 0)),
        "num_train_iter": config.num_train_iter,
        "model": convert(usb_state["model"], "model"),
        "plugins": {},
        "eval_history": [],
        "world_size": 1,
        "config": config.to_dict(),
        "versions": {CORE_DISTRIBUTION: __version__},
        "imported_from": {"code": "USB", "file": source, "it": int(usb_state.get("it", 0)),
                          "best_it": usb_state.get("best_it"), "best_eval_acc": usb_state.get("best_eval_acc")},
    }
    if isinstance(usb_state.get("ema_model"), Mapping):
        state["plugins"]["ema"] = {"model": convert(usb_state["ema_model"], "ema_model")}
    return state
