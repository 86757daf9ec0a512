"""One error hierarchy for everything a user can get wrong.

The CLI turns a :class:`SemilearnError` into one line on stderr and a non-zero exit
code (``--debug`` shows the traceback). Anything else escaping is a bug.
"""

from __future__ import annotations

__all__ = [
    "SemilearnError",
    "ConfigError",
    "PluginError",
    "CheckpointError",
    "DataError",
    "TrainingError",
]


class SemilearnError(Exception):
    """Base of every error caused by input, environment or installed plugins."""

    exit_code: int = 1


class ConfigError(SemilearnError):
    """A configuration file, key, value or override is wrong."""

    exit_code = 2


class PluginError(SemilearnError):
    """A plugin cannot be loaded, validated or run."""


class CheckpointError(SemilearnError):
    """A checkpoint cannot be found, read, trusted or applied."""


class DataError(SemilearnError):
    """A data set cannot be built from what is on disk or in the configuration."""


class TrainingError(SemilearnError):
    """Training itself went wrong: the loss stopped being a finite number."""

    exit_code = 3
