"""Checkpoint files: atomic writes, safe reads, finding the newest intact one."""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from semilearn import CheckpointError

__all__ = [
    "atomic_save",
    "atomic_link",
    "load_checkpoint_file",
    "checkpoint_files",
    "PERIODIC_PATTERN",
    "TEMPORARY_PREFIX",
    "periodic_name",
    "LAST",
    "BEST",
]

LAST = "last.pt"
BEST = "best.pt"
PERIODIC_PATTERN = re.compile(r"^step_(\d+)\.pt$")
TEMPORARY_PREFIX = ".tmp-"


def periodic_name(step: int) -> str:
    return f"step_{step:07d}.pt"


def _fsync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(descriptor)


def atomic_save(state: Mapping[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` so that ``path`` is always either the old or the new file.

    The bytes go to a temporary file in the same folder, are flushed and fsynced, and the
    file is renamed over ``path`` with ``os.replace``; the folder is fsynced so the rename
    survives a power cut too. A process killed at any instant leaves the previous file.
    """
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=TEMPORARY_PREFIX + path.name + ".")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            torch.save(dict(state), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_link(source: Path, target: Path) -> None:
    """Make ``target`` the same file as ``source`` (hard link, else copy), atomically."""
    temporary = target.with_name(f"{TEMPORARY_PREFIX}{target.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    try:
        try:
            os.link(source, temporary)
        except OSError:
            import shutil

            shutil.copyfile(source, temporary)
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Only tensors and plain data can come out: a file carrying pickled code is refused
    before anything in it runs. Raises :class:`CheckpointError` with the reason.
    """
    import torch

    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
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
    if not isinstance(state, dict) or state.get("format") != "semilearn-checkpoint":
        raise CheckpointError(f"{path} is not a semilearn checkpoint")
    return state


def _unpickler_reason(error: BaseException) -> str:
    """The informative line of torch's weights-only refusal (what global was asked for)."""
    text = str(error)
    match = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if match:
        return f"it asks for {match.group(1)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return re.sub(r"\x1b\[[0-9;]*m", "", lines[-1] if lines else type(error).__name__)


def checkpoint_files(folder: Path) -> list[Path]:
    """Checkpoint files of a folder, newest first (modification time; ``last`` wins ties)."""
    if not folder.is_dir():
        return []
    files = [
        path
        for path in folder.iterdir()
        if path.is_file() and (path.name in (LAST, BEST) or PERIODIC_PATTERN.match(path.name))
    ]

    def key(path: Path) -> tuple[int, int, int]:
        stat = path.stat()
        return (stat.st_mtime_ns, 1 if path.name == LAST else 0, 0 if path.name == BEST else 1)

    return sorted(files, key=key, reverse=True)


def stale_temporaries(folder: Path) -> Iterable[Path]:
    """Temporary files a killed process left behind."""
    if not folder.is_dir():
        return []
    return [path for path in folder.iterdir() if path.name.startswith(TEMPORARY_PREFIX)]
