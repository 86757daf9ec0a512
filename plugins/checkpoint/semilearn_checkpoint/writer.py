"""Asynchronous checkpoint writing: the loop copies the state, a thread writes it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from semilearn import CheckpointError
from semilearn.tree import map_tree

__all__ = ["BackgroundWriter", "snapshot"]


def snapshot(value: Any) -> Any:
    """A deep copy of a checkpoint state whose tensors no longer share memory with the run."""
    import torch

    def copy(leaf: Any) -> Any:
        return leaf.detach().to("cpu", copy=True) if isinstance(leaf, torch.Tensor) else leaf

    return map_tree(value, copy)


class BackgroundWriter:
    """One writer thread; at most one job waits while another is written (back-pressure).

    A failed write is raised (as :class:`CheckpointError`) by the next ``submit`` or by
    ``wait``, so an error is never lost.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="semilearn-checkpoint-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                job()
            except BaseException as error:  # noqa: BLE001 - handed to the training thread
                self._error = error
            finally:
                self._jobs.task_done()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, CheckpointError):  # already says what happened
                raise error
            raise CheckpointError(f"writing a checkpoint failed: {type(error).__name__}: {error}") from error

    def submit(self, job: Callable[[], object]) -> None:
        self._raise_if_failed()
        self._jobs.put(job)

    def wait(self) -> None:
        """Block until every submitted checkpoint is on disk."""
        self._jobs.join()
        self._raise_if_failed()

    def close(self) -> None:
        self._jobs.join()
        self._jobs.put(None)
        self._thread.join(timeout=60)
