"""Run directories and resume points.

A run lives in ``<save_dir>/<save_name>``. A new run never reuses a directory that
already holds a run: the first free name among ``save_name``, ``save_name-2``,
``save_name-3`` ... is taken, so nothing is ever overwritten. Taking a name is atomic:
the run creates ``CLAIM_FILE`` in the directory with exclusive creation, so of several
runs started at the same moment (a job array) each gets a directory of its own.
``--resume auto`` looks at the same family of directories for the newest intact checkpoint.

The run directory is always inside ``save_dir``: ``save_name`` and every ``-N`` name are one
folder name (:func:`semilearn.paths.check_name`), checked before anything is created.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import stat
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, ConfigError, InputError
from .paths import check_name, file_kind, portable_name, regular_file

if TYPE_CHECKING:
    from .config import Config

__all__ = ["ResumePoint", "default_save_name", "run_directories", "claim_run_directory", "CONFIG_FILE",
           "CLAIM_FILE", "CHECKPOINT_FORMAT", "CHECKPOINT_FORMAT_VERSION", "LAST_CHECKPOINT", "BEST_CHECKPOINT",
           "read_checkpoint", "run_checkpoint", "check_target"]

CONFIG_FILE = "config.yaml"
CLAIM_FILE = ".semilearn-run"  # created exclusively by the run that takes the directory

# The "format" and "format_version" entries of every checkpoint state (the engine writes
# them, the checkpoint plugin and USB's importer check or copy them).
CHECKPOINT_FORMAT = "semilearn-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

# The checkpoint plugin's file names inside its folder (``checkpoint.dir``, "checkpoints").
LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
_DEFAULT_CHECKPOINT_DIR = "checkpoints"


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
    """``save_name`` or ``<algorithm>_<dataset>_<num_labels>_<seed>``: one folder name.

    A ``save_name`` that is not one (``../x``, ``/srv/x``) is a :class:`ConfigError`; in the
    derived name a character a name may not hold (the ``:`` of a data set given as
    ``module:function``) becomes ``_`` (:func:`semilearn.paths.portable_name`).
    """
    if config.save_name is not None:
        return check_name(config.save_name, "configuration key 'save_name'")
    return portable_name(f"{config.algorithm}_{config.dataset}_{config.num_labels}_{config.seed}")


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
    base = Path(config.save_dir) / default_save_name(config)  # checked before anything is created
    base.parent.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        name = base.name if number == 1 else check_name(f"{base.name}-{number}", "the run directory's name")
        candidate = base.with_name(name)
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


# ---------------------------------------------------------------------------
# Reading checkpoints.
# ---------------------------------------------------------------------------

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's archive
_PICKLE_MAGIC = b"\x80"  # torch's legacy format starts with a pickle protocol opcode


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a semilearn checkpoint with ``torch.load(weights_only=True)``.

    Only tensors and plain data can come out: a file carrying pickled code is refused
    before anything in it runs. Raises :class:`~semilearn.errors.CheckpointError` with the
    reason in one line: not found, not a PyTorch file at all, pickled code, truncated,
    another program's checkpoint, or a format version this version cannot read.
    """
    import torch

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint not found: {path} (a directory)")
    regular_file(path, "checkpoint", error=CheckpointError)  # a pipe or a device is refused unopened
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC)):
        raise CheckpointError(f"{path} is not a PyTorch checkpoint" + (" (an empty file)" if not head else ""))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects other than tensors and plain data, which could run "
            f"code when unpickled ({_unpickler_reason(error)})"
        ) from error
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} is truncated or corrupt: {message}") from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is a PyTorch file but not a semilearn checkpoint")
    version = state.get("format_version")
    if version != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version}; this semilearn-core reads version "
            f"{CHECKPOINT_FORMAT_VERSION}"
        )
    return state


def _unpickler_reason(error: BaseException) -> str:
    """The informative line of torch's weights-only refusal (what global was asked for)."""
    text = str(error)
    match = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if match:
        return f"it asks for {match.group(1)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return re.sub(r"\x1b\[[0-9;]*m", "", lines[-1] if lines else type(error).__name__)


def run_checkpoint(target: Path, which: str = "best") -> Path:
    """The checkpoint file ``target`` names: itself when it is a file; for a run directory
    (or its checkpoint folder) its ``best.pt`` or ``last.pt`` (``which``), falling back to
    ``last.pt`` when a run kept no best. One-line :class:`CheckpointError` otherwise."""
    target = Path(target)
    if which not in ("best", "last"):
        raise CheckpointError(f"--checkpoint is 'best' or 'last', not '{which}'")
    check_target(target, "", CheckpointError)
    if target.is_file():
        return target
    folder = target
    if (target / CONFIG_FILE).is_file() or not (target / LAST_CHECKPOINT).exists():
        folder = target / _checkpoint_dir(target)
    wanted = folder / (BEST_CHECKPOINT if which == "best" else LAST_CHECKPOINT)
    if wanted.is_file():
        return wanted
    if which == "best" and (folder / LAST_CHECKPOINT).is_file():
        return folder / LAST_CHECKPOINT
    raise CheckpointError(f"{target} holds no checkpoint ({wanted} not found; was the checkpoint plugin installed?)")


def check_target(target: Path, what: str = "", error: type[CheckpointError | InputError] = InputError) -> Path:
    """``target`` when it is a run directory (any folder) or a regular file; else ``error`` in
    one line, before anything is opened: a path that does not exist, a named pipe, a device.
    ``what`` (``--resume``) starts the message."""
    lead = f"{what} " if what else ""
    try:
        mode = target.stat().st_mode
    except OSError:
        raise error(f"{lead}{target} does not exist (give a run directory or a checkpoint file)") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise error(f"{lead}{target} is {file_kind(mode)}, not a run directory or a checkpoint file")
    return target


def _checkpoint_dir(run_dir: Path) -> str:
    """The checkpoint folder a run directory's ``config.yaml`` names (``checkpoint.dir``): one
    folder name inside the run directory, else a one-line :class:`CheckpointError`."""
    from .config import read_config_file

    path = run_dir / CONFIG_FILE
    try:
        saved = read_config_file(path)
    except ConfigError:
        return _DEFAULT_CHECKPOINT_DIR
    section = saved.get("checkpoint")
    folder = section.get("dir") if isinstance(section, dict) else None
    if not folder:
        return _DEFAULT_CHECKPOINT_DIR
    return check_name(str(folder), f"{path}: checkpoint.dir", CheckpointError)
