"""Where this process stands in a (possibly) distributed run, and the few collectives the engine uses.

Ranks are read from the environment torchrun sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``), so that plugins can be gated by rank before torch is even imported. A
single process is rank 0 of a world of 1, and every helper here is then a no-op.

The engine's collectives, beyond DistributedDataParallel's own gradient reduction:

* at log points, one all-reduce averaging the step's metrics over the ranks;
* after each evaluation, one all-reduce summing the shards' counts;
* every step, one asynchronous all-reduce of a one-element CPU tensor (on a gloo group)
  that carries "a signal arrived", waited one step later: all ranks stop after the same
  step without any rank waiting on it, and without a device synchronisation;
* once at start, the run directory chosen by rank 0 is broadcast.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "global_rank",
    "local_rank",
    "world_size",
    "is_global_zero",
    "is_distributed",
    "process_group",
    "broadcast_object",
    "all_reduce_sum",
    "StopVote",
]


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


def is_distributed() -> bool:
    """True when torchrun started several processes and the process group is up."""
    if world_size() <= 1:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


@contextlib.contextmanager
def process_group(device: torch.device, timeout_seconds: int = 600) -> Iterator[None]:
    """Join the process group torchrun describes (gloo on CPU, NCCL on CUDA) for the block.

    Does nothing for a single process. ``timeout_seconds`` bounds how long a collective
    waits for a missing rank before failing.
    """
    if world_size() <= 1:
        yield
        return
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds))
    try:
        yield
        # Leave together: no process closes its connections while another still works (rank 0
        # saves and closes trackers after the last step). A failed process skips this; the
        # others' barrier then fails at once on the closed connection.
        with contextlib.suppress(Exception):
            dist.barrier()
    finally:
        gc.collect()  # release work objects and reducers that still hold the group
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a small picklable object)."""
    if not is_distributed():
        return value
    import torch.distributed as dist

    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place; returns it."""
    if is_distributed():
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


class StopVote:
    """Agree across ranks to stop after the same step, without waiting on each other.

    Every step each rank contributes the number of the signal it received (0 for none)
    to an asynchronous all-reduce (maximum) on a CPU gloo group and reads the result of
    the previous step's exchange. A signal is thus acted on one step after it arrives, on
    every rank at the same step.
    """

    def __init__(self) -> None:
        import torch
        import torch.distributed as dist

        self._torch = torch
        self._dist = dist
        self._group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
        self._buffer = torch.zeros(1)
        self._pending: Any = None

    def exchange(self, local_signal: int) -> int:
        """Offer this rank's signal number; return the agreed one from the previous step (0: go on)."""
        agreed = 0
        if self._pending is not None:
            self._pending.wait()
            agreed = int(self._buffer.item())
        self._buffer = self._torch.tensor([float(local_signal)])
        self._pending = self._dist.all_reduce(
            self._buffer, op=self._dist.ReduceOp.MAX, group=self._group, async_op=True
        )
        return agreed

    def close(self) -> None:
        """Wait for the last exchange, so no collective is left in flight."""
        if self._pending is not None:
            with contextlib.suppress(Exception):
                self._pending.wait()
            self._pending = None
