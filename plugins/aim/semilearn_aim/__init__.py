"""semilearn-aim: track runs in an Aim repository, local by default.

* one Aim run per training run, in the repository at ``repo`` (default: the ``save_dir``
  that holds the run directories, so ``aim up --repo saved_models`` shows every run);
* ``run["hparams"]``: the resolved configuration (secrets removed) and the versions of the
  core, the plugins and Aim;
* every metric tracked under its own name with the global step, the epoch and the context
  ``{"subset": "train"}`` or ``{"subset": "eval"}``;
* the run hash is saved in every checkpoint, so ``semilearn run --resume`` continues the
  same Aim run;
* ``after_run`` closes the run on every status (recording ``run["end"]``: status, exit
  code, step) and indexes it, so ``aim.Repo`` queries and ``aim up`` see it at once;
* system metrics (``system_tracking_interval``) and terminal-log capture are off unless
  asked for;
* a failure of Aim never stops training unless ``strict`` is on (see
  :mod:`semilearn.tracking`).

Aim is imported when a run starts, never at plugin discovery.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semilearn import Option
from semilearn.tracking import STRICT_OPTION, TrackerHook, import_tracker_library

if TYPE_CHECKING:
    from semilearn import RunView

__all__ = ["AimHook", "AimRunLocked", "__version__", "REMOTE_PREFIX"]
__version__ = "0.1.0"

REMOTE_PREFIX = "aim://"
"""A ``repo`` starting with this is an Aim tracking server, not a folder."""

_log = logging.getLogger("semilearn")


class AimRunLocked(RuntimeError):
    """The Aim run a checkpoint names is locked by another process."""


def _clean_up_in_the_exiting_thread() -> None:
    """Have Aim's clean-up at exit run in the exiting thread.

    Aim registers it at exit to run in a new thread, which Python 3.12 and newer refuse while
    the interpreter shuts down: every run would end with "can't create new thread at
    interpreter shutdown" and a traceback. Registering the same clean-up first, to run
    where it is called, keeps Aim's data consistent without a thread.
    """
    from aim.ext.cleanup import AutoClean

    if not AutoClean._registered_with_atexit:
        atexit.register(AutoClean._cleanup)
        AutoClean._registered_with_atexit = True


class AimHook(TrackerHook):
    """Aim tracking of every run (global rank 0 only).

    Configuration (section ``aim``):

    * ``repo`` (default: ``save_dir``): the folder holding the Aim repository (``.aim``),
      created when missing, or ``aim://HOST:PORT`` for an Aim tracking server;
    * ``experiment`` (default: Aim's ``default``), ``name`` (default: the run directory's
      name);
    * ``system_tracking_interval`` (seconds, default null = off): CPU, memory and GPU usage;
    * ``capture_terminal_logs`` (default false): keep the console output in the Aim run;
    * ``strict`` (default false): an Aim failure stops the run instead of being counted.
    """

    library = "aim"
    config_options = (
        Option("repo", str, None, "Folder of the Aim repository (or aim://HOST:PORT); null: save_dir.",
               nullable=True),
        Option("experiment", str, None, "Aim experiment of the run; null: Aim's 'default'.", nullable=True),
        Option("name", str, None, "Run name shown by Aim; null: the run directory's name.", nullable=True),
        Option("system_tracking_interval", float, None, "Track CPU, memory and GPU usage every this many seconds; "
               "null: off.", nullable=True, minimum=0.1, maximum=86400),
        Option("capture_terminal_logs", bool, False, "Keep the console output of the run in Aim."),
        STRICT_OPTION,
    )

    def __init__(self) -> None:
        super().__init__()
        self._run: Any = None
        self._repo_location = ""

    def repo_location(self, algorithm: RunView) -> str:
        """Where the Aim repository is: the configured ``repo``, else ``save_dir``."""
        return str(self.config.repo or algorithm.config.save_dir)

    # -- the tracker ---------------------------------------------------------------

    def start_run(self, algorithm: RunView, resume_id: str | None) -> str:
        aim: Any = import_tracker_library("aim", "semilearn-aim", self.name)
        from aim.sdk.errors import MissingRunError

        _clean_up_in_the_exiting_thread()

        section = self.config
        location = self.repo_location(algorithm)
        if not location.startswith(REMOTE_PREFIX):
            Path(location).mkdir(parents=True, exist_ok=True)
        self._repo_location = location
        options: dict[str, Any] = {
            "repo": location,
            "experiment": section.experiment,
            "system_tracking_interval": section.system_tracking_interval,
            "log_system_params": False,  # it records environment variables, which may hold secrets
            "capture_terminal_logs": section.capture_terminal_logs,
        }
        try:
            run = aim.Run(resume_id, **options)
        except MissingRunError:
            _log.warning(f"aim: the checkpoint's run {resume_id} is not in the repository {location}; "
                         "starting a new Aim run")
            run = aim.Run(**options)
        except Exception as error:
            if not _is_lock_error(error):
                raise
            # Aim itself releases a lock whose process died on this host; a lock held by a live
            # process, or left on another host, is never broken here: two writers corrupt a run.
            raise AimRunLocked(
                f"the Aim run {resume_id} in {location} is locked by another process (still running, or one "
                f"that ran on another host); if none uses it any more, release it with "
                f"`aim runs --repo {location} close {resume_id}` and resume again"
            ) from error
        try:
            run.name = self.run_name(algorithm, section.name)
            run["hparams"] = self.run_config(algorithm)
        except BaseException:
            run.close()  # not started: nothing else would close it
            raise
        self._run = run
        return str(run.hash)

    def record(self, algorithm: RunView, step: int, split: str, metrics: Mapping[str, float]) -> None:
        context = {"subset": split}
        for name, value in metrics.items():
            self._run.track(float(value), name=name, step=step, epoch=algorithm.epoch, context=context)

    def finish_run(self, algorithm: RunView, status: str, exit_code: int) -> None:
        run, self._run = self._run, None  # the Run object holds the run's database open: let it go
        repo, run_hash = run.repo, run.hash
        try:
            run["end"] = {"status": status, "exit_code": exit_code, "step": algorithm.global_step}
        finally:
            run.close()
            del run
        if not repo.is_remote_repo:  # a tracking server indexes its runs itself
            from aim.sdk.index_manager import RepoIndexManager

            RepoIndexManager.get_index_manager(repo).index(run_hash)

    def describe_run(self) -> str:
        where = "on" if self._repo_location.startswith(REMOTE_PREFIX) else "in the repository"
        return f"run {self.run_id} {where} {self._repo_location}"

    def viewing_hint(self) -> str:
        if self._repo_location.startswith(REMOTE_PREFIX):
            return ""
        return f"see it with `aim up --repo {self._repo_location}`"


def _is_lock_error(error: BaseException) -> bool:
    """Whether Aim refused to open a run because another process holds it.

    Depending on where it notices, Aim raises its ``RunLockingError``, ``filelock``'s
    ``Timeout`` (after waiting for the run's lock file) or RocksDB's I/O error about the
    database's ``LOCK`` file.
    """
    from aim.sdk.errors import RunLockingError
    from filelock import Timeout

    if isinstance(error, (RunLockingError, Timeout)):
        return True
    return type(error).__name__ == "RocksIOError" and "lock file" in str(error).lower()
