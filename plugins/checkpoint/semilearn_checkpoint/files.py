"""Checkpoint files: atomic writes, safe reads, finding the newest intact one."""

from __future__ import annotations

import errno
import itertools
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any, cast

from semilearn import CheckpointError
from semilearn.errors import format_bytes, free_space, no_space
from semilearn.rundir import BEST_CHECKPOINT, LAST_CHECKPOINT
from semilearn.rundir import read_checkpoint as load_checkpoint_file

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
    "TEST_PAUSE_VARIABLE",
    "DiskFullError",
]

LAST = LAST_CHECKPOINT
BEST = BEST_CHECKPOINT
PERIODIC_PATTERN = re.compile(r"^step_(\d+)\.pt$")
TEMPORARY_PREFIX = ".tmp-"

# A switch for tests of crash safety: ``PHASE@N`` makes the N-th write of this process
# (``atomic_save`` for ``write`` and ``rename``, ``atomic_link`` for ``link``) stop for good
# at that phase, after printing one line to stderr that starts with TEST_PAUSE_MARKER and
# names the temporary file, so that a test can kill the process exactly there:
#   write   part of the temporary file is on disk (flushed and fsynced), the rest is not;
#   rename  the temporary file is complete and fsynced, the rename over the target is not done;
#   link    the temporary hard link (or copy) of a link exists, the rename over the target is not done.
TEST_PAUSE_VARIABLE = "SEMILEARN_CHECKPOINT_TEST_PAUSE"
TEST_PAUSE_MARKER = "checkpoint test pause:"
_PAUSE_AFTER_BYTES = 4096  # a checkpoint is far larger: the pause in `write` always leaves a partial file
_calls = {"write": itertools.count(1), "link": itertools.count(1)}


def _test_pause(kind: str) -> str | None:
    """The phase at which this call must pause (see TEST_PAUSE_VARIABLE), or None."""
    spec = os.environ.get(TEST_PAUSE_VARIABLE)
    if not spec:
        return None
    phase, _, nth = spec.partition("@")
    if (kind == "link") != (phase == "link"):
        return None
    return phase if next(_calls[kind]) == int(nth or 1) else None


def _hold(phase: str, temporary: str | Path, target: Path) -> None:
    """Say where this process stopped, then wait to be killed."""
    size = os.path.getsize(temporary)
    sys.stderr.write(f"{TEST_PAUSE_MARKER} {phase} {temporary} ({size} bytes) for {target}\n")
    sys.stderr.flush()
    threading.Event().wait()


class _WatchedFile:
    """The temporary file as torch writes it: keeps the OSError of a failed write.

    torch reports a failed write of its zip container as ``RuntimeError: ... unexpected
    pos``; the OSError underneath (no space left, quota) is what a user needs to hear.
    With ``pause`` (tests only), once ``_PAUSE_AFTER_BYTES`` are written it puts them on
    disk and holds.
    """

    def __init__(self, handle: Any, temporary: str, target: Path, pause: bool) -> None:
        self._handle, self._temporary, self._target, self._pause = handle, temporary, target, pause
        self.written = 0
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            written = self._handle.write(data)
        except OSError as error:
            self.error = error
            raise
        self.written += len(data)
        if self._pause and self.written >= _PAUSE_AFTER_BYTES:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            _hold("write", self._temporary, self._target)
        return int(written)

    def flush(self) -> None:
        try:
            self._handle.flush()
        except OSError as error:
            self.error = error
            raise


class DiskFullError(CheckpointError):
    """No space left (or the disk quota reached) while writing a checkpoint file.

    Nothing of the file is left behind; ``path`` keeps its previous content.
    """

    def __init__(self, path: Path, needed: int, cause: OSError) -> None:
        self.path, self.needed = path, needed
        reason = "no space left on the device" if cause.errno == errno.ENOSPC else "the disk quota is exceeded"
        super().__init__(f"{reason} while writing {path}: it needs about {format_bytes(needed)}, "
                         f"{free_space(path.parent)}")


def _no_space(error: BaseException, watched: _WatchedFile | None = None) -> OSError | None:
    """The no-space OSError behind ``error`` or the watched write (torch hides it), if any."""
    return no_space(error) or (no_space(watched.error) if watched is not None else None)


def _state_bytes(state: Any) -> int:
    """About the size of ``torch.save(state)``: the bytes of every distinct tensor storage."""
    import torch

    storages: dict[tuple[int, int], int] = {}
    pending = [state]
    other = 0
    while pending:
        value = pending.pop()
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            storages[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        elif isinstance(value, Mapping):
            pending.extend(value.values())
        elif isinstance(value, (list, tuple)):
            pending.extend(value)
        else:
            other += 64
    return sum(storages.values()) + other + 1024


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

    pause = _test_pause("write")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=TEMPORARY_PREFIX + path.name + ".")
    watched: _WatchedFile | None = None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            watched = _WatchedFile(handle, temporary, path, pause == "write")
            torch.save(dict(state), cast("IO[bytes]", watched))
            handle.flush()
            os.fsync(handle.fileno())
        if pause == "rename":
            _hold("rename", temporary, path)
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        full = _no_space(error, watched) if isinstance(error, Exception) else None
        if full is not None:
            raise DiskFullError(path, _state_bytes(state), full) from error
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
            shutil.copyfile(source, temporary)
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
        if _test_pause("link"):
            _hold("link", temporary, target)
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        full = _no_space(error) if isinstance(error, Exception) else None
        if full is not None:
            raise DiskFullError(target, source.stat().st_size, full) from error
        raise
    _fsync_directory(target.parent)


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
