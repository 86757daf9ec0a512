"""Where this process stands in a (possibly) distributed run.

Read from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), so
that plugins can be gated by rank before torch is even imported. A single process is
rank 0 of a world of 1.
"""

from __future__ import annotations

import os

__all__ = ["global_rank", "local_rank", "world_size", "is_global_zero"]


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def global_rank() -> int:
    """Rank of this process among all processes of the run (0 when not distributed)."""
    return _env_int("RANK", 0)


def local_rank() -> int:
    """Rank of this process on its machine (selects its GPU)."""
    return _env_int("LOCAL_RANK", 0)


def world_size() -> int:
    """Number of processes in the run (1 when not distributed)."""
    return _env_int("WORLD_SIZE", 1)


def is_global_zero() -> bool:
    """True on the one process that writes logs, checkpoints and tracker data."""
    return global_rank() == 0
