"""One error hierarchy for everything a user can get wrong.

The CLI turns a :class:`SemilearnError` into one line on stderr and a non-zero exit
code (``--debug`` shows the traceback). Anything else escaping is a bug.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

__all__ = [
    "SemilearnError",
    "ConfigError",
    "PluginError",
    "CheckpointError",
    "DataError",
    "TrainingError",
    "InputError",
    "PluginDeprecationWarning",
    "no_space",
    "format_bytes",
    "free_space",
]


class PluginDeprecationWarning(FutureWarning):
    """A plugin implements a part of the hook contract that is being retired.

    A :class:`FutureWarning`, so Python shows it by default: in a user's ``semilearn run``
    as well as in the plugin's own tests.
    """


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


class InputError(SemilearnError):
    """What a command is given to read (a checkpoint, a run directory, input files) is not
    what it needs; nothing was written."""

    exit_code = 2


class TrainingError(SemilearnError):
    """Training itself went wrong: the loss stopped being a finite number."""

    exit_code = 3


_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def no_space(error: BaseException | None) -> OSError | None:
    """The "no space left" (or "quota exceeded") OSError behind ``error``: itself or a cause."""
    seen = 0
    while error is not None and seen < 16:
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def format_bytes(count: int) -> str:
    """``834 bytes``, ``283.3 KiB``, ``1.2 GiB``."""
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def free_space(folder: str | Path) -> str:
    """``120.0 KiB free on FOLDER`` (or ``free space unknown``), for messages about a full disk."""
    try:
        return f"{format_bytes(shutil.disk_usage(folder).free)} free on {folder}"
    except OSError:
        return "free space unknown"
