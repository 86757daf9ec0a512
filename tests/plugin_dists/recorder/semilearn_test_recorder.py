"""Test plugins: write one JSON line per hook call, so tests can check order and arguments.

Recording is off unless ``recorder.path`` is set (or ``SEMILEARN_RECORDER_FILE``), so
having this distribution installed changes nothing for other tests. ``LateRecorder``
implements the same hook points with ``trylast=True``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import click

from semilearn import Hook, Option, hookimpl


def _summary(arguments: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key, value in arguments.items():
        if key == "algorithm":
            summary["global_step"] = value.global_step
            summary["algorithm_name"] = value.name
        elif key in ("step", "epoch", "split", "status"):
            summary[key] = value
        elif key in ("metrics", "outputs"):
            summary[key] = sorted(value)
        elif key == "error":
            summary[key] = None if value is None else type(value).__name__
        elif key == "state":
            summary["state_keys"] = sorted(value)
    return summary


class Recorder(Hook):
    """Records every lifecycle hook call with a summary of its arguments."""

    config_options = (
        Option("path", str, None, "JSON-lines file to append calls to; null: SEMILEARN_RECORDER_FILE or off.",
               nullable=True),
        Option("fail_at", str, None, "Raise RuntimeError in this hook point (tests of failure handling).",
               nullable=True),
        Option("fail_rank", int, None, "Only fail on this global rank (null: on every rank).", nullable=True),
        Option("fail_step", int, None, "Only fail at this step (null: at the first call).", nullable=True),
    )
    def _record(self, hook: str, **arguments: Any) -> None:
        path = self.config.path or os.environ.get("SEMILEARN_RECORDER_FILE")
        if path:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({"plugin": self.name, "hook": hook, **_summary(arguments)}) + "\n")
        if self.config.fail_at == hook and self._should_fail(arguments):
            raise RuntimeError(f"{self.name} failing in {hook} as asked")

    def _should_fail(self, arguments: dict[str, Any]) -> bool:
        rank = int(os.environ.get("RANK", "0"))
        if self.config.fail_rank is not None and rank != self.config.fail_rank:
            return False
        return self.config.fail_step is None or arguments.get("step") == self.config.fail_step

    @hookimpl
    def configure(self, config: Any) -> None:
        self._record("configure")

    @hookimpl
    def before_run(self, algorithm: Any) -> None:
        self._record("before_run", algorithm=algorithm)

    @hookimpl
    def load_checkpoint(self, algorithm: Any, state: Any) -> None:
        self._record("load_checkpoint", algorithm=algorithm, state=state)

    @hookimpl
    def before_train_epoch(self, algorithm: Any, epoch: int) -> None:
        self._record("before_train_epoch", algorithm=algorithm, epoch=epoch)

    @hookimpl
    def before_train_step(self, algorithm: Any, step: int) -> None:
        self._record("before_train_step", algorithm=algorithm, step=step)

    @hookimpl
    def after_train_step(self, algorithm: Any, step: int, outputs: Any) -> None:
        self._record("after_train_step", algorithm=algorithm, step=step, outputs=outputs)

    @hookimpl
    def log(self, algorithm: Any, step: int, split: str, metrics: Any) -> None:
        self._record("log", algorithm=algorithm, step=step, split=split, metrics=metrics)

    @hookimpl
    def after_evaluate(self, algorithm: Any, step: int, metrics: Any) -> None:
        self._record("after_evaluate", algorithm=algorithm, step=step, metrics=metrics)

    @hookimpl
    def on_step_end(self, algorithm: Any, step: int) -> None:
        self._record("on_step_end", algorithm=algorithm, step=step)

    @hookimpl
    def after_train_epoch(self, algorithm: Any, epoch: int) -> None:
        self._record("after_train_epoch", algorithm=algorithm, epoch=epoch)

    @hookimpl
    def after_run(self, algorithm: Any, status: str, error: Any) -> None:
        self._record("after_run", algorithm=algorithm, status=status, error=error)

    @hookimpl
    def save_checkpoint(self, algorithm: Any, state: Any) -> None:
        self.plugin_state(state)["calls"] = 1
        self._record("save_checkpoint", algorithm=algorithm)

    @hookimpl
    def register_algorithms(self, register: Any) -> None:
        from semilearn.algorithms.supervised import Supervised

        class Recorded(Supervised):
            name = "recorded_supervised"
            description = "supervised, registered by a test plugin"

        register("recorded_supervised", Recorded)

    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        @cli.command("recorder-hello")
        def hello() -> None:
            """Say hello (a command added by a plugin)."""
            click.echo("hello from the recorder plugin")


class LateRecorder(Hook):
    """Records a few hook points after every other implementation (``trylast``)."""

    config_options = Recorder.config_options
    _record = Recorder._record

    @hookimpl(trylast=True)
    def before_run(self, algorithm: Any) -> None:
        self._record("before_run", algorithm=algorithm)

    @hookimpl(trylast=True)
    def after_train_step(self, algorithm: Any, step: int) -> None:
        self._record("after_train_step", algorithm=algorithm, step=step)

    @hookimpl(trylast=True)
    def on_step_end(self, algorithm: Any, step: int) -> None:
        self._record("on_step_end", algorithm=algorithm, step=step)

    @hookimpl(trylast=True)
    def after_run(self, algorithm: Any, status: str) -> None:
        self._record("after_run", algorithm=algorithm, status=status)
