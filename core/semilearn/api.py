"""Train from Python: :func:`train`, what ``semilearn run`` does, for notebooks and scripts.

::

    import semilearn

    result = semilearn.train({"algorithm": "fixmatch", "num_train_iter": 2000},
                             data={"train": train_set, "test": test_set})
    print(result.status, result.best)            # "completed", {"step": ..., "top1_acc": ...}
    predictor = result.predictor()               # semilearn.load's Predictor, from memory
    predictor.predict(images).labels

The configuration is a dict, a YAML file (USB's included) or nothing (the default run), then
keyword arguments (Python values; a section as a dict: ``checkpoint={"interval": 500}``), then
``overrides`` (``"key=value"`` strings, as ``--set``). Data is the configuration's ``dataset``
unless ``data`` gives it: a registered name or ``module:function``; a dict of arrays under the
npz file's names (``labelled_images``, ``labelled_targets``, ``test_images``, ``test_targets``,
optionally ``unlabelled_images``; see docs/custom-data.md); map-style ``torch.utils.data.Dataset``
objects as ``{"train": ..., "test": ..., "unlabelled": ..., "classes": [...]}`` or a tuple
``(train, test[, unlabelled])``; or a built :class:`~semilearn.data.base.SSLData`. The installed
plugins take part as on the command line, less those named in ``disable``, plus the hook
objects in ``plugins`` (as ``pytest.main(plugins=[...])``).

Every call makes its own plugin manager, and what a run opens (console handler, worker
processes, tracker runs) is closed when it returns: runs in a loop leave the process as the
first left it. SIGINT (Ctrl-C, a notebook's interrupt) finishes the step, saves a checkpoint
when the checkpoint plugin is active, and returns with ``status == "interrupted"``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, DataError
from .hook import Hook, hookimpl

if TYPE_CHECKING:
    import torch

    from .algorithm import AlgorithmBase
    from .config import Config
    from .data.base import SSLData
    from .inference.predictor import Predictor
    from .plugins import PluginManager

__all__ = ["train", "TrainResult"]

ARRAY_KEYS = ("labelled_images", "labelled_targets", "test_images", "test_targets", "unlabelled_images",
              "unlabelled_targets")


@dataclass
class TrainResult:
    """What :func:`train` returns: how the run ended, where it wrote, what it measured, and the
    trained engine (``algorithm``: its ``model``, ``ema_model`` ...)."""

    status: str
    """``completed``, ``interrupted`` (SIGINT, SIGTERM, ``stop_step``), ``stopped`` (a plugin
    asked) or ``diverged``; a run that fails raises instead."""
    exit_code: int
    """What ``semilearn run`` would have exited with (0, 130 after SIGINT, 3 when it diverged ...)."""
    run_dir: Path
    seconds: float
    algorithm: AlgorithmBase
    manager: PluginManager

    @property
    def config(self) -> Config:
        """The resolved configuration (what the run's ``config.yaml`` holds)."""
        return self.algorithm.config

    @property
    def eval_history(self) -> list[dict[str, Any]]:
        """Every evaluation: ``{"step": ..., "top1_acc": ..., "loss": ...}``, in order."""
        return [dict(entry) for entry in self.algorithm.eval_history]

    @property
    def final(self) -> dict[str, Any] | None:
        """The last evaluation (None: the run evaluated nothing)."""
        history = self.algorithm.eval_history
        return dict(history[-1]) if history else None

    @property
    def best(self) -> dict[str, Any] | None:
        """The best evaluation by the configuration's ``monitor`` and ``mode``."""
        from .metrics import best_evaluation

        best = best_evaluation(self.algorithm.eval_history, self.config.monitor, self.config.mode)
        return dict(best) if best is not None else None

    def predictor(self, weights: str = "auto", device: str = "cpu") -> Predictor:
        """The trained network as :func:`semilearn.load` gives it (``weights``: ``auto``, the EMA
        weights where the run kept them, else ``ema`` or ``model``), made from the run in memory:
        no checkpoint needs to be written."""
        from .inference.predictor import predictor_of

        return predictor_of(self.algorithm.checkpoint_state(), self.manager, weights, device)


def train(
    config: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    data: Any = None,
    overrides: Sequence[str] = (),
    plugins: Sequence[object] = (),
    disable: Sequence[str] = (),
    resume: str | os.PathLike[str] | None = None,
    console: bool = True,
    **keys: Any,
) -> TrainResult:
    """Train as ``semilearn run`` does and return the run's :class:`TrainResult`.

    :param config: a dict of configuration keys, a YAML file, or None (the default run).
    :param data: the data set (see the module docstring); None: the configuration's ``dataset``.
    :param overrides: ``"key=value"`` strings applied last, as ``--set`` (dotted keys reach sections).
    :param plugins: hook objects to register beside the installed plugins, for this run.
    :param disable: names of installed plugins to leave out (as ``-p no:NAME``).
    :param resume: ``"auto"``, a checkpoint file or a run directory (needs semilearn-checkpoint).
    :param console: print the run's lines (banner, progress, summary) to stdout.
    :param keys: configuration keys as Python values, applied after ``config``
        (``data_name``: the name of the data set given as ``data``, ``"data"`` unless set).

    Bad input raises a :class:`~semilearn.errors.SemilearnError` (a ``ConfigError``, a
    ``DataError`` ...) whose message is the line ``semilearn run`` would print; a failing run
    raises its error.
    """
    from .plugins import PluginManager
    from .runner import load_config, run

    raw = _raw_config(config, keys)
    manager = PluginManager().load(blocked=[str(name) for name in disable])
    manager.check_names(("disable", str(name), True) for name in disable)
    for plugin in plugins:
        manager.add(plugin)
    if isinstance(data, (str, os.PathLike)):
        raw["dataset"] = str(data)
    elif data is not None:
        given = _given_data(data, str(raw.pop("data_name", None) or "data"))
        manager.add(given)
        raw["dataset"] = given.dataset
    handler = _console() if console else None
    try:
        resolution = load_config(manager, None, list(overrides), raw=raw)
        result = run(resolution.config, manager, resume=str(resume) if resume is not None else resolution.resume,
                     warnings=resolution.warnings)
    finally:
        if handler is not None:
            logging.getLogger("semilearn").removeHandler(handler)
            handler.close()
    return TrainResult(result.status, result.exit_code, result.run_dir, result.seconds, result.algorithm, manager)


def _raw_config(config: Mapping[str, Any] | str | os.PathLike[str] | None, keys: Mapping[str, Any]) -> dict[str, Any]:
    from .config import read_config_file

    if config is None:
        raw: dict[str, Any] = {}
    elif isinstance(config, Mapping):
        raw = {str(key): value for key, value in config.items()}
    elif isinstance(config, (str, os.PathLike)):
        raw = read_config_file(Path(config))
    else:
        raise ConfigError(f"config is a dict, a YAML file's path or None, not {type(config).__name__}")
    for key, value in keys.items():  # a section given as a dict adds to the section
        if isinstance(value, Mapping) and isinstance(raw.get(key), Mapping):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


class _GivenData(Hook):
    """The data handed to :func:`train`, registered as a data set of this run only."""

    name = "given-data"

    def __init__(self, dataset: str, build: Any) -> None:
        super().__init__()
        self.dataset, self._build = dataset, build

    @hookimpl
    def register_datasets(self, register: Any) -> None:
        register(self.dataset, self._build, "the data given to semilearn.train")


def _given_data(data: Any, dataset: str) -> _GivenData:
    """A plugin registering ``data`` as data set ``dataset`` (an SSLData keeps its own name)."""
    from .data.base import SSLData

    if isinstance(data, SSLData):
        built = data

        def from_data(config: Config, device: torch.device) -> SSLData:
            return built.to(device)

        return _GivenData(built.name, from_data)
    if isinstance(data, Mapping) and any(key in data for key in ARRAY_KEYS):
        arrays = dict(data)
        classes = arrays.pop("classes", None)

        def from_arrays(config: Config, device: torch.device) -> SSLData:
            from .data.custom import build_from_arrays

            return build_from_arrays(config, arrays, name=dataset, classes=classes).to(device)

        return _GivenData(dataset, from_arrays)
    if isinstance(data, (Mapping, tuple, list)):
        from .data.torchdata import _parts, build_from_datasets

        parts = _parts(data, dataset)

        def from_datasets(config: Config, device: torch.device) -> SSLData:
            return build_from_datasets(config, parts["train"], parts["test"], parts.get("unlabelled"),
                                       name=dataset, classes=parts.get("classes"),
                                       transforms=parts.get("transforms")).to(device)

        return _GivenData(dataset, from_datasets)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        raise DataError(f"data is one {type(data).__name__}; give the training and the test sets: "
                        "data={'train': ..., 'test': ...} (and optionally 'unlabelled', 'classes')")
    raise DataError(f"data is a {type(data).__name__}; expected a data set's name, a dict of arrays "
                    f"({', '.join(ARRAY_KEYS[:4])} ...), Dataset objects {{'train': ..., 'test': ...}} or an SSLData")


def _console() -> logging.Handler | None:
    """The ``semilearn`` logger's lines on stdout for this run (None: a console handler is there
    already, the command line's, and its stream is open; one whose stream was closed is replaced)."""
    from .cli import CONSOLE_HANDLER_NAME, setup_console

    logger = logging.getLogger("semilearn")
    for handler in logger.handlers:
        stream = getattr(handler, "stream", None)
        if handler.get_name() == CONSOLE_HANDLER_NAME and stream is not None and not getattr(stream, "closed", False):
            return None
    return setup_console()  # it takes the place of a console handler whose stream is closed
