"""semilearn-early-stopping: stop a run when the eval metric has stopped improving.

A complete third-party plugin, built step by step in the guide's "Write your own plugin".
It watches every evaluation (``after_evaluate``), counts the evaluations in a row without
an improvement of ``monitor``, and stops the run once there have been ``patience`` of
them. Its counters are saved in every checkpoint (``save_checkpoint``) and restored on
resume (``load_checkpoint``), so a resumed run stops exactly where the uninterrupted run
would have, and a run that stopped early stays stopped when it is resumed again.

Configuration (section ``early_stopping``)::

    early_stopping:
      patience: 5          # evaluations without improvement before stopping; null: never stop
      monitor: top1_acc    # the eval metric to watch
      mode: max            # max: larger is better; min: smaller is better
      min_delta: 0.0       # a change smaller than this is no improvement
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from semilearn import ConfigError, Hook, Option, hookimpl

if TYPE_CHECKING:
    from semilearn import RunView

__all__ = ["EarlyStopping", "__version__"]
__version__ = "0.1.0"

_log = logging.getLogger("semilearn")


# --8<-- [start:class]
class EarlyStopping(Hook):
    """Stop the run when ``monitor`` has not improved for ``patience`` evaluations.

    Runs on every process of a distributed run: evaluation metrics are the same on
    every rank, so every rank takes the same decision and stops after the same step.
    """

    # --8<-- [start:options]
    config_options = (
        Option("patience", int, 5, "Evaluations in a row without improvement before the run stops; "
               "null never stops.", minimum=1, nullable=True),
        Option("monitor", str, "top1_acc", "The eval metric to watch (see `after_evaluate`)."),
        Option("mode", str, "max", "Whether a larger (max) or a smaller (min) value is better.",
               choices=("max", "min")),
        Option("min_delta", float, 0.0, "A change of `monitor` smaller than this is no improvement.",
               minimum=0),
    )
    # --8<-- [end:options]

    # --8<-- [start:state]
    def __init__(self) -> None:
        super().__init__()
        self.best: float | None = None  # best value of `monitor` so far
        self.best_step: int | None = None  # the step it was reached at
        self.bad_evaluations = 0  # evaluations in a row without improvement
    # --8<-- [end:state]

    # --8<-- [start:after_evaluate]
    @hookimpl
    def after_evaluate(self, algorithm: RunView, step: int, metrics: Mapping[str, float]) -> None:
        """Count an evaluation without improvement; stop once there are ``patience`` in a row."""
        monitor = self.config.monitor
        if monitor not in metrics:
            known = ", ".join(sorted(metrics))
            raise ConfigError(f"early_stopping.monitor is '{monitor}', but the evaluation reports: {known}")
        value = float(metrics[monitor])
        if self.improves(value):
            self.best, self.best_step, self.bad_evaluations = value, step, 0
            return
        self.bad_evaluations += 1
        if self.should_stop():
            self.stop(algorithm)

    def improves(self, value: float) -> bool:
        """Whether ``value`` beats the best so far by at least ``min_delta``."""
        if self.best is None:
            return True
        if self.config.mode == "max":
            return value > self.best + self.config.min_delta
        return value < self.best - self.config.min_delta

    def should_stop(self) -> bool:
        """Whether ``patience`` evaluations in a row brought no improvement."""
        patience = self.config.patience
        return patience is not None and self.bad_evaluations >= patience
    # --8<-- [end:after_evaluate]

    # --8<-- [start:stop]
    def stop(self, algorithm: RunView) -> None:
        """Ask the engine to stop after the current step (it saves and ends the run)."""
        best = "none" if self.best is None else f"{self.best:.4g} at step {self.best_step}"
        reason = (
            f"early stopping: {self.config.monitor} has not improved for {self.bad_evaluations} "
            f"evaluations (best {best})"
        )
        algorithm.request_stop(reason)
        if self.is_global_zero:
            _log.info(f"{reason}; stopping after step {algorithm.global_step}")
    # --8<-- [end:stop]

    # --8<-- [start:checkpoint]
    @hookimpl
    def save_checkpoint(self, algorithm: RunView, state: MutableMapping[str, Any]) -> None:
        """Keep the counters in the checkpoint (``state["plugins"]["early_stopping"]``)."""
        self.plugin_state(state).update(
            {"best": self.best, "best_step": self.best_step, "bad_evaluations": self.bad_evaluations,
             "monitor": self.config.monitor, "mode": self.config.mode}
        )

    @hookimpl
    def load_checkpoint(self, algorithm: RunView, state: Mapping[str, Any]) -> None:
        """Restore the counters; a run that had stopped early stays stopped."""
        saved = self.plugin_state(state)
        if saved.get("monitor") != self.config.monitor or saved.get("mode") != self.config.mode:
            return  # watching something else now: start counting afresh
        self.best = saved.get("best")
        self.best_step = saved.get("best_step")
        self.bad_evaluations = int(saved.get("bad_evaluations", 0))
        if self.should_stop():
            self.stop(algorithm)
    # --8<-- [end:checkpoint]
