"""The base of experiment-tracker plugins: one run per training run, kept across resumes,
and a failure policy that never lets a tracker kill training by accident.

A tracker plugin (``semilearn-wandb``, ``semilearn-aim``, or your own) subclasses
:class:`TrackerHook` and writes four methods, each a thin call into its library:

* :meth:`~TrackerHook.start_run` -- open a new tracker run, or continue the one whose id
  a checkpoint saved; return the run's id;
* :meth:`~TrackerHook.record` -- send one ``log`` call's metrics;
* :meth:`~TrackerHook.finish_run` -- close the run with an exit code (0 only for a
  completed run);
* :meth:`~TrackerHook.describe_run` -- the run and where it is, said when it starts; and
  optionally :meth:`~TrackerHook.viewing_hint` -- how to look at it, said when it ends.

The base class does the rest, the same way for every tracker:

* **Lifecycle.** A new run starts in ``before_run``; a resumed run waits for
  ``load_checkpoint`` and continues the tracker run whose id the checkpoint holds (a
  checkpoint without one starts a new run). Where the run is tracked is said once, after
  the run's banner. The id is written into every checkpoint
  through ``save_checkpoint``. ``after_run`` finishes the run on every status (the
  checkpoint plugin's ``after_run`` is ``tryfirst``, so the final state is saved before,
  and the logging plugin's ``trylast``, so its summary comes after).
* **Failure policy.** When the library raises, training goes on: the first failure is
  one warning, every failed call is counted, and the count is reported when the run
  ends. With the section's ``strict: true`` the first failure is a
  :class:`~semilearn.PluginError` that stops the run instead.
* **What is recorded as configuration.** :meth:`~TrackerHook.run_config`: the resolved
  configuration with every key that looks like a secret removed, plus the versions of
  the core, the active plugins and the tracker library.

Trackers act on global rank 0 only (``rank_zero_only``). Nothing here imports torch or
a tracker library: a plugin imports its library inside :meth:`start_run`, so
``semilearn --help`` and ``semilearn plugins`` stay fast.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from .config import Option
from .errors import CheckpointError, ConfigError, PluginError
from .hook import Hook, hookimpl
from .paths import check_name

if TYPE_CHECKING:
    from .view import RunView

__all__ = [
    "TrackerHook",
    "STRICT_OPTION",
    "SECRET_WORDS",
    "looks_secret",
    "without_secrets",
    "tracker_exit_code",
    "import_tracker_library",
]

_log = logging.getLogger("semilearn")

STRICT_OPTION = Option(
    "strict", bool, False,
    "Make a failure of the tracker library fatal; by default training goes on, the failure is warned about "
    "once and the dropped calls are counted and reported at the end.",
)
"""The option every tracker section has (add it to ``config_options``)."""

SECRET_WORDS = frozenset({"token", "secret", "password", "passwd", "passphrase", "credential", "credentials",
                          "apikey"})
"""A configuration key holding one of these words (``hub_token``, ``dbPassword``) is never sent to a tracker."""

_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")})


def looks_secret(key: str) -> bool:
    """Whether a configuration key names a secret: ``api_key``, ``hub_token``, ``AccessKey`` ...

    The key is split into words (at ``_``, ``-``, ``.`` and camelCase humps), so ``tokenizer``
    or ``num_tokens`` are not taken for secrets.
    """
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key)
    words = [word for word in re.split(r"[^a-z0-9]+", spaced.lower()) if word]
    pairs = zip(words, words[1:], strict=False)  # each word with the next one
    return any(word in SECRET_WORDS for word in words) or any(pair in _SECRET_PAIRS for pair in pairs)


def without_secrets(value: Any) -> Any:
    """A copy of ``value`` where every mapping key that :func:`looks_secret` is left out.

    Trackers store the configuration on remote servers and show it in web pages, so a key
    such as ``api_key`` or ``hub_token`` in a plugin's section must not travel with it.
    """
    if isinstance(value, Mapping):
        return {
            key: without_secrets(item)
            for key, item in value.items()
            if not (isinstance(key, str) and looks_secret(key))
        }
    if isinstance(value, (list, tuple)):
        return [without_secrets(item) for item in value]
    return value


def tracker_exit_code(status: str, algorithm_exit_code: int) -> int:
    """The exit code a tracker run is finished with: 0 only for a completed run.

    An interrupt keeps the process's code (130 after SIGINT, 143 after SIGTERM); a failure,
    and a stop at ``stop_step`` (exit code 0 for the process, but the run is not done), is 1.
    """
    if status == "completed":
        return 0
    return algorithm_exit_code if algorithm_exit_code > 0 else 1


def import_tracker_library(module: str, distribution: str, plugin: str) -> ModuleType:
    """Import a tracker library when a run starts, with an error that says what to do.

    Plugins call this from :meth:`TrackerHook.start_run`, never at import time, so that
    discovering plugins (``semilearn --help``, ``semilearn plugins``) stays fast.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise PluginError(
            f"plugin '{plugin}' ({distribution}) needs the '{module}' library, which cannot be imported ({error}); "
            f"reinstall it with `pip install {distribution}`, or turn the plugin off with -p no:{plugin}"
        ) from error


class TrackerHook(Hook):
    """Base class of experiment-tracker plugins (see the module documentation).

    Class attributes a subclass sets:

    * ``library`` -- the import name of the tracker library (``"wandb"``); its version is
      recorded with the configuration;
    * ``config_options`` -- its section, which must include :data:`STRICT_OPTION`.

    Attributes a subclass can read: ``run_id`` (the tracker run's id once started, or the
    id a checkpoint saved) and ``started`` (whether a tracker run is open); ``dropped`` and
    ``attempted`` count the calls into the library by action (``start``, ``log``, ``finish``
    and what a subclass passes to :meth:`call`).
    """

    rank_zero_only = True
    library: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.run_id: str | None = None
        self.started = False
        self.dropped: Counter[str] = Counter()
        self.attempted: Counter[str] = Counter()
        self._first_failure: str | None = None
        self._announcement: str | None = None

    # -- what a tracker implements ------------------------------------------------

    def start_run(self, algorithm: RunView, resume_id: str | None) -> str:
        """Open a tracker run and return its id.

        :param resume_id: the id a checkpoint saved: continue that run. ``None``: a new run.
        """
        raise NotImplementedError

    def record(self, algorithm: RunView, step: int, split: str, metrics: Mapping[str, float]) -> None:
        """Send the metrics of one ``log`` call (``split`` is ``"train"`` or ``"eval"``)."""
        raise NotImplementedError

    def finish_run(self, algorithm: RunView, status: str, exit_code: int) -> None:
        """Close the tracker run; ``exit_code`` is 0 only for a completed run."""
        raise NotImplementedError

    def describe_run(self) -> str:
        """The run's id and where it is, for the console (``offline run 1a2b in DIR``)."""
        return f"run {self.run_id}"

    def viewing_hint(self) -> str:
        """How to look at the finished run (``see it with `aim up --repo DIR` ``), or ``""``."""
        return ""

    # -- helpers for subclasses ---------------------------------------------------

    def run_config(self, algorithm: RunView) -> dict[str, Any]:
        """The resolved configuration (without secrets) and the versions, to store with the run."""
        payload: dict[str, Any] = without_secrets(algorithm.config.to_dict())
        versions: dict[str, Any] = dict(algorithm.versions())
        if self.library:
            try:
                versions[self.library] = importlib.metadata.version(self.library)
            except importlib.metadata.PackageNotFoundError:
                pass
        payload["versions"] = versions
        return payload

    @staticmethod
    def run_name(algorithm: RunView, configured: str | None) -> str:
        """The tracker run's display name: the configured one, else the run directory's name."""
        return configured or Path(algorithm.run_dir).name

    def call(self, action: str, step: int, function: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Call into the tracker library under the failure policy; True when it succeeded.

        An exception (not ``KeyboardInterrupt`` or ``SystemExit``) is counted as a dropped
        ``action``; the first one is a warning, or with ``strict`` a :class:`PluginError`.
        """
        self.attempted[action] += 1
        try:
            function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any failure of the library is the tracker's
            self._failed(action, step, error)
            return False
        return True

    # -- hook points --------------------------------------------------------------

    @hookimpl
    def before_run(self, algorithm: RunView) -> None:
        self.run_id, self.started = None, False
        self._announcement = None
        self.dropped.clear()
        self.attempted.clear()
        self._first_failure = None
        if not algorithm.resuming:
            self._start(algorithm, None)

    @hookimpl
    def load_checkpoint(self, algorithm: RunView, state: Mapping[str, Any]) -> None:
        saved = self.plugin_state(state).get("run_id")
        resume_id = saved if isinstance(saved, str) and saved else None
        if resume_id is not None:  # trackers name their run's folder after it (wandb: run-<time>-<id>)
            check_name(resume_id, f"{self.name}: the run id in the checkpoint", CheckpointError)
        if resume_id is None:
            _log.info(f"{self.name}: the checkpoint holds no {self.name} run (the plugin was not active when it "
                      "was saved); starting a new one")
        self.run_id = resume_id  # kept in later checkpoints even if the tracker cannot start now
        self._start(algorithm, resume_id)

    @hookimpl
    def save_checkpoint(self, algorithm: RunView, state: MutableMapping[str, Any]) -> None:
        if self.run_id is not None:
            self.plugin_state(state)["run_id"] = self.run_id

    @hookimpl
    def before_train_epoch(self, algorithm: RunView, epoch: int) -> None:
        self._announce()

    @hookimpl
    def log(self, algorithm: RunView, step: int, split: str, metrics: Mapping[str, float]) -> None:
        if not self.started:
            self.attempted["log"] += 1
            self.dropped["log"] += 1  # the run never started: its failure was already reported
            return
        self.call("log", step, self.record, algorithm, step, split, metrics)

    @hookimpl
    def after_run(self, algorithm: RunView, status: str, error: BaseException | None) -> None:
        try:
            self._announce()
            if self.started:
                self.started = False
                code = tracker_exit_code(status, algorithm.exit_code)
                if self.call("finish", algorithm.global_step, self.finish_run, algorithm, status, code):
                    hint = self.viewing_hint()
                    _log.info(f"{self.name}: run {self.run_id} finished ({status}, exit code {code})"
                              + (f"; {hint}" if hint else ""))
        finally:
            self._report()

    # -- internals ----------------------------------------------------------------

    def _start(self, algorithm: RunView, resume_id: str | None) -> None:
        self.attempted["start"] += 1
        try:
            run_id = self.start_run(algorithm, resume_id)
        except (ConfigError, PluginError):
            raise  # a wrong setting or a missing library is the user's to fix, not a tracker outage
        except Exception as error:  # noqa: BLE001
            self._failed("start", algorithm.global_step, error)
            return
        self.run_id, self.started = run_id, True
        verb = "continuing" if resume_id is not None else "tracking to"
        self._announcement = f"{self.name}: {verb} {self.describe_run()}"

    def _announce(self) -> None:
        """Say where the run is tracked, once, after the run's banner (at the first epoch)."""
        if self._announcement is not None:
            _log.info(self._announcement)
            self._announcement = None

    def _failed(self, action: str, step: int, error: Exception) -> None:
        description = f"{type(error).__name__}: {error}"
        if self.config.get("strict", False):
            raise PluginError(
                f"{self.name}: the tracker failed in {action} at step {step} ({description}); "
                f"{self.name}.strict is on, so the run stops"
            ) from error
        self.dropped[action] += 1
        if self._first_failure is None:
            self._first_failure = f"{description} (in {action} at step {step})"
            consequence = (
                "training goes on without tracking" if action == "start"
                else "training goes on; further failures are counted and reported at the end"
            )
            _log.warning(
                f"{self.name}: the tracker failed in {action} at step {step} ({description}); {consequence} "
                f"(set {self.name}.strict=true to stop the run instead)"
            )

    def _report(self) -> None:
        total = sum(self.dropped.values())
        if not total:
            return
        parts = ", ".join(f"{action} {count} of {self.attempted[action]}" for action, count in sorted(self.dropped.items()))
        _log.warning(
            f"{self.name}: {total} tracker call{'s' if total != 1 else ''} failed and {'were' if total != 1 else 'was'} "
            f"dropped ({parts}); first failure: {self._first_failure}"
        )
