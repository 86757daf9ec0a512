"""Run directories and resume points.

A run lives in ``<save_dir>/<save_name>``. A new run never reuses a directory that
already holds a run: the first free name among ``save_name``, ``save_name-2``,
``save_name-3`` ... is taken, so nothing is ever overwritten. Taking a name is atomic:
the run creates ``CLAIM_FILE`` in the directory with exclusive creation, so of several
runs started at the same moment (a job array) each gets a directory of its own.
``--resume auto`` looks at the same family of directories for the newest intact checkpoint.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config

__all__ = ["ResumePoint", "default_save_name", "run_directories", "claim_run_directory", "CONFIG_FILE",
           "CLAIM_FILE", "CHECKPOINT_FORMAT", "CHECKPOINT_FORMAT_VERSION"]

CONFIG_FILE = "config.yaml"
CLAIM_FILE = ".semilearn-run"  # created exclusively by the run that takes the directory

# The "format" and "format_version" entries of every checkpoint state (the engine writes
# them, the checkpoint plugin and USB's importer check or copy them).
CHECKPOINT_FORMAT = "semilearn-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run continues from.

    Attributes:
        path: the checkpoint file read.
        run_dir: the run directory the run continues in (``None``: a new one, for a
            checkpoint that is not inside a run directory).
        state: the checkpoint's contents (see :meth:`AlgorithmBase.checkpoint_state`).
    A *fresh* point (all ``None``) means "nothing to resume: start a new run".
    """

    path: Path | None
    run_dir: Path | None
    state: Mapping[str, Any] | None

    @classmethod
    def fresh(cls) -> ResumePoint:
        return cls(None, None, None)

    @property
    def is_fresh(self) -> bool:
        return self.state is None


def default_save_name(config: Config) -> str:
    """``save_name`` or ``<algorithm>_<dataset>_<num_labels>_<seed>``."""
    if config.save_name:
        return str(config.save_name)
    return f"{config.algorithm}_{config.dataset}_{config.num_labels}_{config.seed}"


def run_directories(config: Config) -> list[Path]:
    """Existing run directories of this configuration's name, oldest name first."""
    save_dir = Path(config.save_dir)
    name = default_save_name(config)
    if not save_dir.is_dir():
        return []
    pattern = re.compile(re.escape(name) + r"(?:-(\d+))?$")
    found = []
    for child in save_dir.iterdir():
        match = pattern.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1) or 1), child))
    return [path for _, path in sorted(found)]


def _holds_run(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def claim_run_directory(config: Config) -> Path:
    """Create and take the first free directory for a new run of this configuration.

    A directory is free when it does not exist or is empty. It is taken by creating
    ``CLAIM_FILE`` in it with ``O_CREAT | O_EXCL``, which exactly one process can do; a
    process that loses the race moves on to the next ``-N`` name.
    """
    base = Path(config.save_dir) / default_save_name(config)
    base.parent.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        candidate = base if number == 1 else base.with_name(f"{base.name}-{number}")
        number += 1
        if _holds_run(candidate):
            continue
        try:
            candidate.mkdir(exist_ok=True)
            descriptor = os.open(candidate / CLAIM_FILE, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except (FileExistsError, NotADirectoryError):
            continue  # another run took it first (or a file has this name)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        return candidate
