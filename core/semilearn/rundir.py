"""Run directories and resume points.

A run lives in ``<save_dir>/<save_name>``. A new run never reuses a directory that
already holds a run: the first free name among ``save_name``, ``save_name-2``,
``save_name-3`` ... is taken, so nothing is ever overwritten. ``--resume auto`` looks at
the same family of directories for the newest intact checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config

__all__ = ["ResumePoint", "default_save_name", "run_directories", "new_run_directory", "CONFIG_FILE"]

CONFIG_FILE = "config.yaml"


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


def new_run_directory(config: Config) -> Path:
    """The first free directory for a new run of this configuration (not created)."""
    base = Path(config.save_dir) / default_save_name(config)
    candidate, number = base, 1
    while _holds_run(candidate):
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate
