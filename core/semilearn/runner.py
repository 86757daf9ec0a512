"""From a resolved configuration to a finished run.

:func:`load_config` merges file, overrides and schema; :func:`run` builds the run
(resume point, run directory, device, data, network, algorithm) and trains it.
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import __version__
from .config import Config, Resolution, apply_overrides, read_config_file, resolve_config, split_commas
from .distributed import broadcast_object, global_rank, local_rank, process_group, world_size
from .errors import CheckpointError, ConfigError, DataError, PluginError
from .metrics import best_evaluation, format_duration, format_metric, last_evaluation, metric_label
from .plugins import install_hint
from .rundir import CONFIG_FILE, ResumePoint, claim_run_directory, default_save_name
from .usb import UsbTranslation
from .usb import translate as translate_usb

if TYPE_CHECKING:
    import torch

    from .algorithm import AlgorithmBase
    from .plugins import PluginManager
    from .view import RunView

__all__ = ["load_config", "run", "RunResult", "resolve_device", "build_algorithm", "TRAJECTORY_KEYS", "run_summary",
           "headline", "headline_of"]

# Keys a resumed run must share with its checkpoint: they decide the data and the model.
TRAJECTORY_KEYS = ("algorithm", "dataset", "net", "num_labels", "num_classes", "seed", "batch_size", "uratio")


def _logger() -> Any:
    import logging

    return logging.getLogger("semilearn")


def given_config(config_path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = (),
                 raw: Mapping[str, Any] | None = None) -> UsbTranslation:
    """The configuration as given, before it is resolved: ``raw``, the file's keys, the
    ``--set`` overrides, then USB's keys translated (with what that says)."""
    data: dict[str, Any] = dict(raw or {})
    if config_path is not None:
        data.update(read_config_file(config_path))
    return translate_usb(apply_overrides(data, overrides))


def load_config(
    manager: PluginManager,
    config_path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    raw: Mapping[str, Any] | None = None,
) -> Resolution:
    """Read, override and resolve a configuration, then let plugins check it.

    Applies the configuration's ``disable_plugins`` to ``manager`` and raises the error of
    any plugin that failed to load and is still active.
    """
    usb = given_config(config_path, overrides, raw)
    data = usb.config
    disabled = data.get("disable_plugins") or []
    if isinstance(disabled, str):
        disabled = split_commas(disabled)
    if not isinstance(disabled, list):
        raise ConfigError("configuration key 'disable_plugins' expects a list of plugin names")
    manager.check_names(("configuration key 'disable_plugins'", str(name), True) for name in disabled)
    manager.block([str(name) for name in disabled] + usb.disable_plugins)  # USB's use_* keys: never an error
    manager.raise_for_failures()
    for name in usb.enable_plugins:
        info = manager.infos.get(name)
        if info is None or not info.active:
            state = "disabled" if info is not None else "not installed"
            usb.warnings.append(f"use_{name}: the {name} plugin is {state} ({install_hint(name)})")

    algorithms = manager.registry("algorithm")
    resolution = resolve_config(
        data,
        algorithm_options={name: cls.config_options for name, cls in algorithms.items()},
        plugin_sections=manager.config_sections(),
    )
    config = resolution.config
    manager.bind_config({name: config.section(name) for name in config.sections})
    manager.hook.configure(config=config)
    if usb.resume and not manager.hook.find_resume_point.get_hookimpls():
        usb.warnings.append(f"resume: no plugin reads checkpoints ({install_hint('checkpoint')}); starting a new run")
        usb.resume = None
    resolution.warnings[:0] = usb.warnings
    resolution.resume = usb.resume
    return resolution


@dataclass
class RunResult:
    """What a finished run reports."""

    status: str
    exit_code: int
    run_dir: Path
    algorithm: AlgorithmBase
    seconds: float

    @property
    def final_metrics(self) -> dict[str, float] | None:
        history = self.algorithm.eval_history
        return history[-1] if history else None

    @property
    def best_metrics(self) -> dict[str, float] | None:
        """The best evaluation by the configuration's ``monitor`` and ``mode`` (see :func:`best_evaluation`)."""
        config = self.algorithm.config
        return best_evaluation(self.algorithm.eval_history, config.monitor, config.mode)


def resolve_device(name: str) -> torch.device:
    """The device of ``device: NAME``; under torchrun, CUDA means this process's GPU (LOCAL_RANK)."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and world_size() > 1:
        name = f"cuda:{local_rank()}"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device '{name}' was asked for, but CUDA is not available (torch {torch.__version__}); "
                "use --set device=cpu"
            )
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError(f"device '{name}' does not exist: {torch.cuda.device_count()} CUDA device(s) visible")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for, but it is not available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def build_algorithm(
    config: Config, manager: PluginManager, run_dir: Path, device: torch.device | None = None
) -> AlgorithmBase:
    """Device, data, network and algorithm for ``config`` (nothing trained, no hook fired)."""
    import torch

    device = device if device is not None else resolve_device(config.device)
    seed_everything(config.seed)
    algorithm_cls = manager.registry("algorithm").get(config.algorithm)
    from .data.torchdata import builder_for
    dataset_builder = builder_for(manager, config.dataset)
    data = dataset_builder(config, torch.device("cpu"))
    algorithm_cls.check_modality(data, config)
    if algorithm_cls.labels_every_image and data.unlabelled_targets is not None:
        data = dataclasses.replace(data, labelled_samples=data.unlabelled_samples,
                                   labelled_targets=data.unlabelled_targets)
    if _keep_on_device(config.data_device, data, device):
        data = data.to(device)
    from .algorithm import resolved_net_name

    net_name = resolved_net_name(config, data)
    net_builder = manager.registry("net").get(net_name)
    try:
        model = net_builder(data.num_classes, data.input_spec)
    except DataError as error:  # a network of images given text, for instance
        raise DataError(f"network '{net_name}' on data set '{data.name}': {error}") from error
    if config.use_pretrain:  # before the algorithm wraps it, as USB's network builders load
        from .nets.pretrained import load_for_run

        _logger().info(load_for_run(model, config.pretrain_path, net_name, report=_logger().info))
    algorithm: AlgorithmBase = algorithm_cls(config, data, model, manager, run_dir, device)
    return algorithm


def _keep_on_device(choice: str, data: Any, device: torch.device) -> bool:
    """Whether the images live on the training device (else in host memory)."""
    import torch

    if choice != "auto" or device.type != "cuda":
        return choice != "host" or device.type == "cpu"
    from .data.transfer import data_bytes

    free, _ = torch.cuda.mem_get_info(device)
    needed = data_bytes(data.labelled_samples, data.unlabelled_samples, data.test_samples)
    return needed < free // 2


def _check_resume_config(config: Config, state: Mapping[str, Any]) -> None:
    if "imported_from" in state:
        raise CheckpointError(
            f"the checkpoint was imported from {state['imported_from'].get('code', 'elsewhere')}: it holds weights, "
            "not a training state (optimizer, sample streams, random generators), and cannot be resumed"
        )
    saved = state.get("config", {})
    different = [key for key in TRAJECTORY_KEYS if key in saved and saved[key] != config.get(key)]
    if different:
        details = ", ".join(f"{key}: {saved[key]!r} in the checkpoint, {config.get(key)!r} now" for key in different)
        raise CheckpointError(f"cannot resume with a different setup ({details})")
    changed = [
        f"{key} {saved[key]!r} -> {config.get(key)!r}"
        for key in config
        if key in saved and not isinstance(saved[key], dict) and saved[key] != config.get(key)
    ]
    if changed:
        _logger().warning("resuming with changed settings: " + ", ".join(changed))


def write_config_file(run_dir: Path, config: Config, versions: Mapping[str, Any]) -> Path:
    """Write the resolved configuration and versions to ``run_dir/config.yaml`` atomically."""
    run_dir.mkdir(parents=True, exist_ok=True)
    payload = {**config.to_dict(), "versions": dict(versions)}
    target = run_dir / CONFIG_FILE
    descriptor, temporary = tempfile.mkstemp(dir=run_dir, prefix=".config-", suffix=".yaml")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yaml.safe_dump(payload, handle, sort_keys=False)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _plugins_line(manager: PluginManager) -> str:
    external = manager.active_external()
    if not external:
        return (
            f"plugins: none active ({install_hint('logging', 'checkpoint')} for progress, "
            "logs and checkpoints)"
        )
    return "plugins: " + ", ".join(f"{info.name}-{info.version}" if info.version != "-" else f"{info.name} (in code)"
                                   for info in external)


def run(
    config: Config, manager: PluginManager, resume: str | None = None, warnings: Sequence[str] = (),
    announced: str | None = None,
) -> RunResult:
    """Train ``config`` with the active plugins; resume when ``resume`` is given.

    ``warnings`` (from resolving the configuration) are logged with the run's banner. Under
    torchrun, every process calls this; they join the process group for the run.
    ``announced``: the headline the console showed already (:func:`headline_of`); the
    banner then writes it to the run's files only.
    """
    device = resolve_device(config.device)
    with process_group(device, config.dist_timeout):
        return _run(config, manager, device, resume, warnings, announced)


def _run(
    config: Config, manager: PluginManager, device: torch.device, resume: str | None, warnings: Sequence[str],
    announced: str | None = None,
) -> RunResult:
    log = _logger()
    point: ResumePoint | None = None
    if resume:
        point = manager.hook.find_resume_point(config=config, resume=resume)
        if point is None:
            raise PluginError(
                f"--resume needs a plugin that reads checkpoints: {install_hint('checkpoint')} "
                "(or enable it if it is disabled)"
            )
        if point.is_fresh:
            point = None
    if point is not None:
        assert point.state is not None
        _check_resume_config(config, point.state)
    if point is not None and point.run_dir is not None:
        run_dir = point.run_dir
    else:  # rank 0 takes the first free name; every rank uses it
        run_dir = Path(broadcast_object(str(claim_run_directory(config)) if global_rank() == 0 else None))

    algorithm = build_algorithm(config, manager, run_dir, device)
    from .data.lazy import storage

    processes = f" x {world_size()} processes" if world_size() > 1 else ""
    banner: list[tuple[str, str]] = [("warning", warning) for warning in warnings]
    first = headline(config)
    banner += [
        ("file" if first == announced else "info", first),
        ("info", _plugins_line(manager)),
        ("info", f"data: {algorithm.data.summary()} · {storage(algorithm.data, config)}"),
        ("info", f"net: {algorithm.net_name} ({_count_parameters(algorithm)} parameters) · "
                 f"device: {algorithm.device}{processes} · {config.num_train_iter} steps"),
        ("info", f"run directory: {run_dir}"),
    ]
    if point is None and default_save_name(config) != run_dir.name:
        banner.append(("info", f"(the name {default_save_name(config)} was taken: this run is {run_dir.name})"))
    is_zero = global_rank() == 0
    if is_zero:
        write_config_file(run_dir, config, manager.versions())
    first_step = int(point.state.get("step", 0)) if point is not None and point.state else 0

    def summary(status: str) -> str:
        seconds = time.monotonic() - algorithm.started
        return run_summary(algorithm, status, seconds, algorithm.global_step - first_step, run_dir, algorithm.error)

    try:
        status = algorithm.fit(point.state if point is not None else None, banner)
    except BaseException:
        if is_zero and algorithm.status is not None:  # the run ended (after_run ran): say how, then the error
            log.info(summary(algorithm.status))
        raise
    result = RunResult(status, algorithm.exit_code, run_dir, algorithm, time.monotonic() - algorithm.started)
    if is_zero:
        log.info(summary(status))
    return result


def headline(config: Mapping[str, Any]) -> str:
    """The run's first line: ``semilearn 0.1.0 · flexmatch on digits (40 labels, seed 0)``."""
    return (f"semilearn {__version__} · {config['algorithm']} on {config['dataset']} "
            f"({config['num_labels']} labels, seed {config['seed']})")


def headline_of(config_path: str | os.PathLike[str] | None, overrides: Sequence[str] = (),
                raw: Mapping[str, Any] | None = None) -> str | None:
    """:func:`headline` from the configuration file and overrides as given, before they are
    resolved (resolving imports torch and the algorithms); ``None`` when they cannot be read
    (resolving says why)."""
    from .config import CORE_OPTIONS
    from .errors import SemilearnError

    try:
        data = given_config(config_path, overrides, raw).config
        values = {option.name: option.coerce(data.get(option.name, option.default))
                  for option in CORE_OPTIONS if option.name in ("algorithm", "dataset", "num_labels", "seed")}
    except (SemilearnError, TypeError, ValueError):
        return None
    return headline(values)


def _count_parameters(algorithm: AlgorithmBase) -> str:
    count = sum(parameter.numel() for parameter in algorithm.module.parameters())
    return f"{count / 1e6:.2f}M" if count >= 1e6 else f"{count / 1e3:.1f}k"


def run_summary(algorithm: RunView, status: str, seconds: float, steps: int, run_dir: Path,
                error: BaseException | None = None) -> str:
    """The one line that sums a run up, on the console and in its log file:

    ``completed at step 3000/3000 in 1:12 (42.4 steps/s) · final eval accuracy 99.56% (step 3000) · best 99.56% (step 2000)``

    ``seconds`` and ``steps``: this process's. The best is by the engine's ``monitor`` and
    ``mode``; an interrupted run says why and how to continue it.
    """
    text = f"{status} at step {algorithm.global_step}/{algorithm.num_train_iter} in {format_duration(seconds)}"
    if steps > 0 and seconds > 0:
        text += f" ({steps / seconds:.1f} steps/s)"
    monitor, mode = algorithm.config.monitor, algorithm.config.mode
    final = last_evaluation(algorithm.eval_history, monitor)
    best = best_evaluation(algorithm.eval_history, monitor, mode)
    if final is not None and best is not None:
        text += (
            f" · final eval {metric_label(monitor)} {format_metric(monitor, final[monitor])}"
            f" (step {int(final['step'])}) · best {format_metric(monitor, best[monitor])} (step {int(best['step'])})"
        )
    if status == "failed" and error is not None and not isinstance(error, KeyboardInterrupt):
        text += f" · {type(error).__name__}"
    if status == "interrupted":
        if algorithm.stopped_by_plugin:
            text += f" · stopped: {algorithm.stop_reason}"
        else:
            if algorithm.stop_reason and algorithm.stop_reason != "stop_step":
                text += f" · {algorithm.stop_reason}"
            text += f" · resume with: semilearn run --resume {run_dir}"
    return text
