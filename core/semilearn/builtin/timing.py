"""Throughput metrics: training steps and samples per second, evaluation time.

Adds to each ``log(split="train")`` the steps and samples per second since the previous
train log point, not counting time spent evaluating; adds ``seconds`` (how long the
evaluation took) to each ``log(split="eval")``. Times are taken at log points only (where
the engine has synchronised with the device anyway), so there is no per-step cost.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ..hook import Hook, hookimpl

if TYPE_CHECKING:
    from ..view import RunView

__all__ = ["TimingHook"]


class TimingHook(Hook):
    """Measures throughput between log points."""

    def __init__(self) -> None:
        super().__init__()
        self._last_time = 0.0
        self._last_step = 0
        self._eval_seconds_since_log = 0.0
        self._last_eval_seconds = 0.0

    @hookimpl
    def before_run(self, algorithm: RunView) -> None:
        self._last_time = time.perf_counter()

    @hookimpl
    def load_checkpoint(self, algorithm: RunView) -> None:
        self._last_step = algorithm.global_step
        self._last_time = time.perf_counter()

    @hookimpl(wrapper=True)
    def evaluate(self, algorithm: RunView, step: int) -> Generator[None, Any, Any]:
        start = time.perf_counter()
        try:
            return (yield)
        finally:
            self._last_eval_seconds = time.perf_counter() - start
            self._eval_seconds_since_log += self._last_eval_seconds

    @hookimpl
    def collect_metrics(self, algorithm: RunView, step: int, split: str) -> dict[str, float] | None:
        if split == "eval":
            return {"seconds": self._last_eval_seconds}
        now = time.perf_counter()
        seconds = max(now - self._last_time - self._eval_seconds_since_log, 1e-9)
        steps = step - self._last_step
        self._last_time, self._last_step, self._eval_seconds_since_log = now, step, 0.0
        if steps <= 0:
            return None
        config = algorithm.config
        per_step = config.batch_size * (1 + config.uratio if algorithm.uses_unlabelled else 1)
        return {"steps_per_sec": steps / seconds, "samples_per_sec": steps * per_step / seconds}
