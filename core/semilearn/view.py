"""What a hook implementation sees of a run: :class:`RunView`.

The hook points of :mod:`semilearn.hookspecs` that concern a run pass it as ``algorithm``.
At run time that is the :class:`~semilearn.AlgorithmBase` driving the run; its type in the
contract is this Protocol, which names what a plugin may read, the two attributes a
plugin may write, and the methods it may call. Whatever else the object has is the
engine's and may change without notice. mypy holds a plugin to it: annotate
``algorithm: RunView`` and check the implementations against :mod:`semilearn.protocols`.

Read (properties, and so read-only to mypy):

* what the run is: ``name`` (the algorithm), ``config``, ``data``, ``net_name``,
  ``run_dir``, ``device``, ``rank``, ``world_size``, ``uses_unlabelled``;
* what it trains: ``module`` (the network), ``model`` (what training calls: the network,
  or its DistributedDataParallel wrapper under torchrun), ``eval_model`` (the EMA model
  when there is one, else ``module``), ``optimizer``, ``scheduler``, ``scaler``;
* where it is: ``global_step`` (finished steps), ``epoch``, ``num_train_iter``, ``started``,
  ``iters_per_epoch``, ``resuming``, ``eval_history`` (every evaluation's metrics with its
  ``step``), ``status`` (``None`` until ``after_run``), ``stop_reason``,
  ``stopped_by_plugin``, ``exit_code``.

Written by plugins:

* ``ema_model`` -- the averaged network evaluation uses (the built-in ``ema`` plugin sets
  it at ``before_run``; ``None`` without it);
* ``last_checkpoint`` -- ``(path, step)`` of the newest complete checkpoint, set by the
  plugin that writes them, read by the run's summary.

Called: :meth:`RunView.predict` (logits for uint8 images, in eval mode),
:meth:`RunView.request_stop` (end the run after this step), :meth:`RunView.checkpoint_state`
(everything a checkpoint holds, with every plugin's ``save_checkpoint`` contribution),
:meth:`RunView.check_finite` (before writing weights: never save spoilt ones),
:meth:`RunView.versions` (of the core and the active plugins).

Nothing here imports torch: the types are only named in annotations.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .config import Config
    from .data.base import SSLData

__all__ = ["RunView", "TrainingProgress"]


class TrainingProgress(Protocol):
    """Where a run is: what the conditional helpers of :class:`semilearn.Hook` read."""

    @property
    def global_step(self) -> int: ...

    @property
    def epoch(self) -> int: ...

    @property
    def num_train_iter(self) -> int: ...

    @property
    def iters_per_epoch(self) -> int: ...


class RunView(TrainingProgress, Protocol):
    """A run as a hook implementation sees it (see the module docstring)."""

    # -- written by plugins -------------------------------------------------------

    ema_model: nn.Module | None
    last_checkpoint: tuple[str, int] | None

    # -- what the run is ----------------------------------------------------------

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> Config: ...

    @property
    def data(self) -> SSLData: ...

    @property
    def net_name(self) -> str: ...

    @property
    def run_dir(self) -> Path: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def rank(self) -> int: ...

    @property
    def world_size(self) -> int: ...

    @property
    def uses_unlabelled(self) -> bool: ...

    # -- what it trains -----------------------------------------------------------

    @property
    def module(self) -> nn.Module: ...

    @property
    def model(self) -> nn.Module: ...

    @property
    def eval_model(self) -> nn.Module: ...

    @property
    def optimizer(self) -> torch.optim.Optimizer: ...

    @property
    def scheduler(self) -> torch.optim.lr_scheduler.LRScheduler: ...

    @property
    def scaler(self) -> torch.amp.GradScaler: ...

    # -- where it is --------------------------------------------------------------

    @property
    def started(self) -> float:
        """``time.monotonic()`` when this process built the run: the summary's clock."""
        ...

    @property
    def resuming(self) -> bool: ...

    @property
    def eval_history(self) -> list[dict[str, float]]: ...

    @property
    def status(self) -> str | None: ...

    @property
    def stop_reason(self) -> str | None: ...

    @property
    def stopped_by_plugin(self) -> bool: ...

    @property
    def exit_code(self) -> int: ...

    # -- what a plugin may call ---------------------------------------------------

    def predict(self, images: Any, model: nn.Module | None = None) -> torch.Tensor:
        """Logits of ``model`` (default: :attr:`eval_model`) for samples of the data set's
        modality (uint8 images), in eval mode."""
        ...

    def request_stop(self, reason: str) -> None:
        """Stop after the current step; ``after_run`` then fires with ``"interrupted"``."""
        ...

    def checkpoint_state(self) -> dict[str, Any]:
        """Everything a checkpoint holds, ``save_checkpoint`` contributions included."""
        ...

    def check_finite(self, weights: bool = False) -> None:
        """Stop (or warn, per ``nonfinite_loss``) if the loss has been NaN or infinite; with
        ``weights=True`` (before writing a checkpoint) also if any parameter is."""
        ...

    def versions(self) -> dict[str, Any]:
        """The versions of the core and of every active plugin (as ``config.yaml`` records them)."""
        ...
