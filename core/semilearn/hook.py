"""The base class of plugins that observe or persist a run.

A plugin distribution points its entry point at a :class:`Hook` subclass::

    from semilearn import Hook, Option, hookimpl

    class EarlyStopping(Hook):
        \"\"\"Stop when eval accuracy has not improved for ``patience`` evaluations.\"\"\"

        config_options = (Option("patience", int, 5, "Evaluations without improvement."),)

        @hookimpl
        def after_evaluate(self, algorithm, step, metrics):
            ...

The engine instantiates the class with no arguments, validates its section of the
configuration against ``config_options`` and binds it as ``self.config`` before
``configure`` fires. Methods marked with :data:`hookimpl` and named after a hook point of
:mod:`semilearn.hookspecs` are called by the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, ClassVar, TypeVar

import pluggy

from .config import Option, Section
from .distributed import global_rank
from .view import TrainingProgress

__all__ = ["Hook", "hookimpl", "on_all_ranks", "on_rank_zero", "runs_on_rank", "TrainingProgress"]

hookimpl = pluggy.HookimplMarker("semilearn")
"""Marks a method (or module function) as the implementation of a hook point."""

_RANK_ATTRIBUTE = "_semilearn_rank_zero_only"
_F = TypeVar("_F", bound=Callable[..., Any])


def on_all_ranks(function: _F) -> _F:
    """Run this hook implementation on every process, even in a ``rank_zero_only`` hook.

    For example a checkpoint writer restores state on every rank (``load_checkpoint``)
    while it writes files on rank 0 only.
    """
    setattr(function, _RANK_ATTRIBUTE, False)
    return function


def on_rank_zero(function: _F) -> _F:
    """Run this hook implementation on global rank 0 only, whatever the class says."""
    setattr(function, _RANK_ATTRIBUTE, True)
    return function


def runs_on_rank(plugin: object, attribute: str, rank: int) -> bool:
    """Whether the implementation ``attribute`` of ``plugin`` is called on ``rank``.

    A method marked :func:`on_all_ranks` or :func:`on_rank_zero` decides for itself;
    otherwise the class attribute ``rank_zero_only`` decides (False for plain modules).
    """
    if rank == 0:
        return True
    method = getattr(type(plugin), attribute, None) if not isinstance(plugin, type) else None
    if method is None:
        method = getattr(plugin, attribute, None)
    marked = getattr(method, _RANK_ATTRIBUTE, None)
    if marked is not None:
        return not marked
    return not bool(getattr(plugin, "rank_zero_only", False))


class Hook:
    """Base class for plugins.

    Class attributes a subclass sets:

    * ``name`` -- the plugin's name (defaults to the entry point's name); also the name of
      its configuration section and of its entry in checkpoints.
    * ``config_options`` -- the keys of its section, each an :class:`~semilearn.Option`
      with a type and a default. Unknown keys in the section are errors.
    * ``rank_zero_only`` -- when true, every hook implementation of the plugin runs on
      global rank 0 only (loggers, trackers, checkpoint writers); mark single methods
      with :func:`on_all_ranks` to run them everywhere.

    The conditional helpers read the algorithm's progress: ``global_step`` is the number
    of finished steps (1 in the ``after_train_step`` of the first step), ``epoch`` the
    index of the current epoch from 0.
    """

    name: str = ""
    config_options: ClassVar[tuple[Option, ...]] = ()
    rank_zero_only: ClassVar[bool] = False

    def __init__(self) -> None:
        self.config: Section = Section(
            {option.name: option.default for option in self.config_options}, self.name
        )

    def bind_config(self, section: Section) -> None:
        """Receive the validated section (called by the engine before ``configure``)."""
        self.config = section

    # -- rank -----------------------------------------------------------------

    @property
    def is_global_zero(self) -> bool:
        """True on the one process of a run that writes files and talks to trackers."""
        return global_rank() == 0

    # -- conditional execution ------------------------------------------------

    @staticmethod
    def every_n_steps(algorithm: TrainingProgress, n: int) -> bool:
        """True when the finished step count is a positive multiple of ``n``.

        ``n <= 0`` means never. Meant for ``after_train_step`` and ``on_step_end``.
        """
        return n > 0 and algorithm.global_step > 0 and algorithm.global_step % n == 0

    @staticmethod
    def every_n_epochs(algorithm: TrainingProgress, n: int) -> bool:
        """True when the current epoch is the n-th, 2n-th ... (epochs counted from 1).

        ``n <= 0`` means never. Meant for ``after_train_epoch``.
        """
        return n > 0 and (algorithm.epoch + 1) % n == 0

    @staticmethod
    def is_last_step(algorithm: TrainingProgress) -> bool:
        """True once the last step of the run (``num_train_iter``) has finished."""
        return algorithm.global_step >= algorithm.num_train_iter

    @staticmethod
    def end_of_epoch(algorithm: TrainingProgress) -> bool:
        """True when the step just finished is the last of its epoch.

        Epochs have ``iters_per_epoch`` steps; the last epoch ends at ``num_train_iter``
        and may be shorter.
        """
        step = algorithm.global_step
        if step <= 0:
            return False
        return step % algorithm.iters_per_epoch == 0 or step >= algorithm.num_train_iter

    # -- checkpoint state -----------------------------------------------------

    def plugin_state(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """This plugin's entry in a checkpoint's ``state["plugins"]``.

        In ``save_checkpoint`` the entry is created (write into the returned dict); in
        ``load_checkpoint`` it is what was saved, or ``{}`` when the checkpoint has none.
        """
        plugins = state.get("plugins")
        if isinstance(state, MutableMapping):
            if plugins is None:
                plugins = state["plugins"] = {}
            if isinstance(plugins, MutableMapping):
                return plugins.setdefault(self.name, {})  # type: ignore[no-any-return]
        if isinstance(plugins, Mapping):
            return dict(plugins.get(self.name, {}))
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} plugin {self.name!r}>"
