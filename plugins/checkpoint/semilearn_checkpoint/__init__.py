"""semilearn-checkpoint: save, keep the best and the last, resume exactly.

Files in ``<run_dir>/checkpoints/``:

* ``step_0000500.pt`` ... every ``interval`` steps, the newest ``keep`` kept;
* ``last.pt``: the newest checkpoint, always (also after an interrupt);
* ``best.pt``: the checkpoint of the best evaluation, by the engine keys ``monitor`` and
  ``mode`` (:func:`semilearn.metrics.best_evaluation`, as every summary line).

Retention only ever deletes periodic files; ``last`` and ``best`` are hard links (or
copies) and survive. Every write is atomic (temporary file in the same folder, fsync,
``os.replace``), so a process killed at any instant leaves the previous checkpoint
intact. Files load with ``torch.load(weights_only=True)``: a file carrying pickled code
is refused before anything runs.

``semilearn run --resume auto|PATH`` continues bit for bit (see ``find_resume_point``).
``semilearn checkpoint inspect PATH`` prints what a checkpoint holds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from semilearn import CheckpointError, Hook, Option, hookimpl, on_all_ranks
from semilearn.metrics import best_evaluation, format_metric, metric_label
from semilearn.rundir import ResumePoint, run_directories

from .files import (
    BEST,
    LAST,
    PERIODIC_PATTERN,
    DiskFullError,
    atomic_link,
    atomic_save,
    checkpoint_files,
    load_checkpoint_file,
    periodic_name,
    stale_temporaries,
)
from .writer import BackgroundWriter, snapshot

if TYPE_CHECKING:
    from semilearn import RunView
    from semilearn.config import Config

__all__ = ["CheckpointHook", "__version__"]
__version__ = "0.1.0"

_log = logging.getLogger("semilearn")


class CheckpointHook(Hook):
    """Writes checkpoints, restores them on resume.

    Configuration (section ``checkpoint``):

    * ``interval`` (default 500): save ``step_N.pt`` every this many steps; 0 saves only
      ``last`` (at the end and on interrupts) and ``best``.
    * ``keep`` (default 3): periodic checkpoints kept, newest first; null keeps all.
    * ``save_best`` (default true): keep ``best.pt``, the checkpoint of the best evaluation
      by the engine keys ``monitor`` and ``mode`` (formerly ``checkpoint.monitor`` and
      ``checkpoint.mode``, still accepted with a warning).
    * ``async_save`` (default false): write in a background thread; the loop waits only
      for an in-memory copy of the state.
    * ``dir`` (default ``checkpoints``): folder inside the run directory (one folder name,
      no ``/`` or ``..``).
    * ``on_disk_full`` (``fail`` | ``warn``): when the disk is full (or the quota reached)
      while a checkpoint is written, stop the run or train on and try again at the next
      checkpoint; either way the message names the file, the space it needs and the space
      free, and the intact checkpoint a resume would use. Nothing half-written is left.

    Writes on global rank 0 only; every rank reads the checkpoint it resumes from.
    """

    rank_zero_only = True
    config_options = (
        Option("interval", int, 500, "Save a periodic checkpoint every this many steps; 0: only last and best.",
               minimum=0),
        Option("keep", int, 3, "Periodic checkpoints to keep (the newest); null keeps all.", nullable=True,
               minimum=0),
        Option("save_best", bool, True, "Keep best.pt, the checkpoint of the best evaluation by the engine keys "
               "`monitor` and `mode`."),
        Option("async_save", bool, False, "Write checkpoints in a background thread."),
        Option("dir", str, "checkpoints", "Folder for checkpoint files inside the run directory: one folder name.",
               file_name=True),
        Option("on_disk_full", str, "fail", "When the disk is full while a checkpoint is written: `fail` the run, "
               "or `warn` and train on, trying again at the next checkpoint (no half-written file is left).",
               choices=("fail", "warn")),
    )

    def __init__(self) -> None:
        super().__init__()
        self.best_value: float | None = None
        self.best_step: int | None = None
        self._best_pending = False
        self._saved_step: int | None = None  # the step of the last checkpoint written or tried
        self._written: tuple[Path, int] | None = None  # the last checkpoint on disk: (last.pt, step)
        self._best_written: tuple[int, float] | None = None  # best.pt on disk: (step, monitored value)
        self._not_written: list[int] = []  # steps whose checkpoint a full disk refused (on_disk_full: warn)
        self._ranked_after: int | None = None  # resumed here without a best of this monitor: rank what follows
        self._writer: BackgroundWriter | None = None
        self._folder: Path | None = None

    # -- resume -------------------------------------------------------------------

    @on_all_ranks
    @hookimpl
    def find_resume_point(self, config: Config, resume: str) -> ResumePoint:
        if resume == "auto":
            folders = [run_dir / self.config.dir for run_dir in run_directories(config)]
            found = self._newest_intact(folders)
            if found is None:
                self._info(f"--resume auto: no checkpoint of {Path(config.save_dir) / _name(config)}; "
                           "starting a new run")
                return ResumePoint.fresh()
            path, state = found
        else:
            path = Path(resume)
            if path.is_dir():
                folder = path / self.config.dir if (path / self.config.dir).is_dir() else path
                found = self._newest_intact([folder])
                if found is None:
                    raise CheckpointError(f"no intact checkpoint in {path}")
                path, state = found
            else:
                state = load_checkpoint_file(path)
        run_dir = path.parent.parent if path.parent.name == self.config.dir else None
        self._info(f"resuming from {path} (step {state.get('step')})")
        return ResumePoint(path, run_dir, state)

    def _newest_intact(self, folders: list[Path]) -> tuple[Path, dict[str, Any]] | None:
        candidates = [path for folder in folders for path in checkpoint_files(folder)]
        candidates.sort(key=lambda path: (path.stat().st_mtime_ns, path.name == LAST), reverse=True)
        for path in candidates:
            try:
                return path, load_checkpoint_file(path)
            except CheckpointError as error:
                self._warning(f"skipping checkpoint {path}: {error}")
        return None

    @hookimpl
    def load_checkpoint(self, algorithm: RunView, state: Mapping[str, Any]) -> None:
        saved = self.plugin_state(state)
        monitor, mode = algorithm.config.monitor, algorithm.config.mode
        same = saved.get("monitor", monitor) == monitor and saved.get("mode", mode) == mode
        if same and saved.get("best_step") is not None:
            self.best_value = saved.get("best_value")
            self.best_step = saved.get("best_step")
        else:  # no best.pt yet, or one chosen by another metric: rank the evaluations from here on
            self._ranked_after = algorithm.global_step
            if not same and saved.get("best_step") is not None and self.config.save_best:
                self._warning(f"best.pt (step {saved['best_step']}) was chosen by {saved.get('monitor')} "
                              f"({saved.get('mode')}); this run monitors {monitor} ({mode}): best.pt is now the best "
                              f"of the evaluations after step {algorithm.global_step}")
        self._saved_step = algorithm.global_step

    # -- saving -------------------------------------------------------------------

    @hookimpl
    def before_run(self, algorithm: RunView) -> None:
        self._folder = Path(algorithm.run_dir) / self.config.dir
        self._folder.mkdir(parents=True, exist_ok=True)
        for leftover in stale_temporaries(self._folder):
            leftover.unlink(missing_ok=True)
        if self.config.async_save:
            self._writer = BackgroundWriter()

    @hookimpl
    def after_evaluate(self, algorithm: RunView, step: int, metrics: Mapping[str, float]) -> None:
        if not self.config.save_best:
            return
        monitor = algorithm.config.monitor
        history = algorithm.eval_history
        if self._ranked_after is not None:
            history = [entry for entry in history if entry["step"] > self._ranked_after]
        best = best_evaluation(history, monitor, algorithm.config.mode)  # (a missing monitor: the engine warns)
        if best is not None and int(best["step"]) == step:  # this evaluation is the best so far
            self.best_value, self.best_step = float(best[monitor]), step
            self._best_pending = True

    @hookimpl
    def save_checkpoint(self, algorithm: RunView, state: MutableMapping[str, Any]) -> None:
        self.plugin_state(state).update(
            {"best_value": self.best_value, "best_step": self.best_step, "monitor": algorithm.config.monitor,
             "mode": algorithm.config.mode}
        )

    @hookimpl
    def on_step_end(self, algorithm: RunView, step: int) -> None:
        periodic = self.every_n_steps(algorithm, self.config.interval)
        if periodic or self._best_pending or self.is_last_step(algorithm):
            self.save(algorithm, periodic=periodic)

    @hookimpl(tryfirst=True)  # save before trackers finish and before the logging summary
    def after_run(self, algorithm: RunView, status: str, error: BaseException | None) -> None:
        try:
            consistent = status == "completed" or (status == "interrupted" and error is None)
            if consistent and self._saved_step != algorithm.global_step and algorithm.global_step > 0:
                self.save(algorithm, periodic=False)
            if self._writer is not None:
                self._writer.wait()
            if consistent and self._folder is not None and algorithm.global_step > 0:
                (self._warning if self._not_written else self._info)(self._describe_files(algorithm))
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def save(self, algorithm: RunView, periodic: bool) -> None:
        """Save the run's state now (``step_N.pt`` when periodic, always ``last``, ``best`` if due)."""
        assert self._folder is not None, "before_run has not run"
        algorithm.check_finite(weights=True)  # never overwrite finite weights with spoilt ones
        step = algorithm.global_step
        best = (step, float(self.best_value)) if self._best_pending and self.best_value is not None else None
        self._best_pending = False
        state = algorithm.checkpoint_state()
        if self._writer is not None:
            copied = snapshot(state)
            self._writer.submit(lambda: self._write_or_report(algorithm, copied, step, periodic, best))
        else:
            self._write_or_report(algorithm, state, step, periodic, best)
        self._saved_step = step  # a step the disk refused is not tried twice

    def _write_or_report(self, algorithm: RunView, state: Mapping[str, Any], step: int, periodic: bool,
                         best: tuple[int, float] | None) -> bool:
        """Write; on a full disk, fail or warn (``on_disk_full``). Whether the checkpoint was written."""
        try:
            self._write(algorithm, state, step, periodic, best)
        except DiskFullError as full:
            if self._written is not None:  # written atomically by this process: intact
                resume = f"a resume would use {self._written[0]} (step {self._written[1]}), which is intact"
            else:
                found = self._newest_intact([full.path.parent])
                resume = (f"a resume would use {found[0]} (step {found[1].get('step')}), which is intact" if found
                          else "no intact checkpoint is there yet")
            if self.config.on_disk_full == "warn":
                if self._not_written:
                    _log.warning(f"checkpoint of step {step} not saved either: {full}")
                else:
                    _log.warning(f"checkpoint of step {step} not saved: {full}; {resume}; training goes on "
                                 "(checkpoint.on_disk_full: warn) and the next checkpoint tries again")
                self._not_written.append(step)
                return False
            then = "start again" if resume.startswith("no intact") else "resume"
            raise CheckpointError(f"{full}; nothing of it was kept and {resume}; free some space and {then}, or set "
                                  "checkpoint.on_disk_full=warn to train on without it") from full
        return True

    def _write(self, algorithm: RunView, state: Mapping[str, Any], step: int, periodic: bool,
               best: tuple[int, float] | None) -> None:
        folder = self._folder
        assert folder is not None
        primary = folder / (periodic_name(step) if periodic else LAST)
        atomic_save(state, primary)
        if primary.name != LAST:
            atomic_link(primary, folder / LAST)
        algorithm.last_checkpoint = (str(folder / LAST), step)
        self._written = (folder / LAST, step)
        if best is not None:
            atomic_link(primary, folder / BEST)
            self._best_written = best
        if periodic and self.config.keep is not None:
            periodic_files = sorted(
                (path for path in folder.iterdir() if PERIODIC_PATTERN.match(path.name)),
                key=lambda path: int(PERIODIC_PATTERN.match(path.name).group(1)),  # type: ignore[union-attr]
            )
            for old in periodic_files[: max(0, len(periodic_files) - self.config.keep)]:
                old.unlink(missing_ok=True)

    def _describe_files(self, algorithm: RunView) -> str:
        assert self._folder is not None
        last, step = self._written or (self._folder / LAST, algorithm.global_step)  # else: a resume's own
        text = f"checkpoints: {last} (step {step})"
        monitor = algorithm.config.monitor
        if self._best_written is not None:
            best_step, best_value = self._best_written
            text += f", best.pt (step {best_step}, eval {metric_label(monitor)} {format_metric(monitor, best_value)})"
        elif self.best_step is not None and self.best_value is not None and (self._folder / BEST).exists():
            # written by the process resumed
            text += (f", best.pt (step {self.best_step}, eval {metric_label(monitor)} "
                     f"{format_metric(monitor, self.best_value)})")
        periodic = [path for path in self._folder.iterdir() if PERIODIC_PATTERN.match(path.name)]
        if periodic:
            text += f", {len(periodic)} periodic"
        if self._not_written:
            steps = ", ".join(map(str, self._not_written))
            text += f"; not written, the disk being full: step{'s' if len(self._not_written) > 1 else ''} {steps}"
        return text

    # -- messages -----------------------------------------------------------------

    def _info(self, message: str) -> None:
        if self.is_global_zero:
            _log.info(message)

    def _warning(self, message: str) -> None:
        if self.is_global_zero:
            _log.warning(message)

    # -- command ------------------------------------------------------------------

    @on_all_ranks
    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from .inspect import checkpoint_group

        cli.add_command(checkpoint_group)


def _name(config: Config) -> str:
    from semilearn.rundir import default_save_name

    return default_save_name(config)
