"""semilearn: a semi-supervised learning training engine for PyTorch, with plugins.

The names a plugin author needs are importable from here without importing torch:
:class:`Hook`, :data:`hookimpl`, :data:`hookspec`, :class:`Option`, :class:`Policy`,
:class:`RunView` (what a hook implementation sees of a run) and the errors.
:class:`AlgorithmBase` and :func:`load` (a trained model; see :mod:`semilearn.inference`),
which need torch, and :func:`train` (train from Python, see :mod:`semilearn.api`), are
imported on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .config import Config, Option  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    PluginError,
    SemilearnError,
    TrainingError,
)
from .hook import Hook, hookimpl, on_all_ranks, on_rank_zero  # noqa: E402
from .hookspecs import hookspec  # noqa: E402
from .policy import Policy  # noqa: E402
from .view import RunView  # noqa: E402

if TYPE_CHECKING:
    from .algorithm import AlgorithmBase
    from .api import TrainResult, train
    from .inference import load

__all__ = [
    "__version__",
    "AlgorithmBase",
    "train",
    "TrainResult",
    "load",
    "Config",
    "Option",
    "Policy",
    "RunView",
    "Hook",
    "hookimpl",
    "hookspec",
    "on_all_ranks",
    "on_rank_zero",
    "SemilearnError",
    "ConfigError",
    "PluginError",
    "CheckpointError",
    "DataError",
    "TrainingError",
]


def __getattr__(name: str) -> Any:
    if name == "AlgorithmBase":
        from .algorithm import AlgorithmBase

        return AlgorithmBase
    if name == "load":
        from .inference import load

        return load
    if name in ("train", "TrainResult"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'semilearn' has no attribute {name!r}")
