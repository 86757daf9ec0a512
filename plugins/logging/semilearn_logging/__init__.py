"""semilearn-logging: see every run.

* a live progress bar on a terminal (step/total, it/s, ETA, loss, mask ratio, the last
  eval's ``monitor`` metric); plain periodic lines everywhere else (CI, files, pipes), no
  control characters;
* ``log.txt`` in the run directory: everything the run printed, with timestamps, and the
  traceback of a failure;
* ``metrics.jsonl``: one JSON object per log point (step, epoch, split, every metric, lr,
  elapsed seconds), flushed at each write; on resume, lines after the resumed step are
  dropped so the file reads like an uninterrupted run;
* a summary at the end, also after a failure or an interrupt (the best evaluation by the
  engine keys ``monitor`` and ``mode``, and the final one);
* ``semilearn plot RUN_DIR``: curves from ``metrics.jsonl`` into a PNG.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from semilearn import Hook, Option, SemilearnError, hookimpl, on_all_ranks
from semilearn.cli import CONSOLE_EXTRA, CONSOLE_HANDLER_NAME
from semilearn.errors import free_space, no_space
from semilearn.metrics import best_evaluation, format_duration
from semilearn.runner import run_summary

from .progress import BarAwareStream, ProgressBar, format_metrics, format_value, short_name

if TYPE_CHECKING:
    from semilearn import RunView

__all__ = ["LoggingHook", "__version__"]
__version__ = "0.1.0"

_FILE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _LogFile(logging.FileHandler):
    """``log.txt``: a failed write (a full disk) is kept for the plugin to report once.

    Python's logging would print a traceback to stderr for every record instead.
    """

    failure: OSError | None = None

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            self.failure = self.failure or error
            return
        super().handleError(record)


def _unwritable(path: Path, error: OSError) -> SemilearnError:
    """One line for a run file that cannot be written: which file, why, and the space left."""
    full = no_space(error)
    if full is not None:
        reason = "no space left on the device" if full.errno == errno.ENOSPC else "the disk quota is exceeded"
        reason += f" ({free_space(path.parent)})"
    else:
        reason = error.strerror or str(error)
    return SemilearnError(f"cannot write {path}: {reason}; the run stops rather than lose its log")


def _console_handler() -> logging.StreamHandler[Any] | None:
    for handler in logging.getLogger("semilearn").handlers:
        if handler.get_name() == CONSOLE_HANDLER_NAME and isinstance(handler, logging.StreamHandler):
            return handler
    return None


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


class LoggingHook(Hook):
    """Console progress, ``log.txt``, ``metrics.jsonl`` and the end-of-run summary.

    Configuration (section ``logging``):

    * ``interval`` (int or null, default null): without a progress bar, print a train line
      every this many steps; null prints one at every train log point (``num_log_iter``).
      Eval lines are always printed.
    * ``progress`` (``auto`` | ``on`` | ``off``, default ``auto``): the live bar; ``auto``
      shows it when the console is a terminal.
    * ``log_file`` (default ``log.txt``), ``metrics_file`` (default ``metrics.jsonl``):
      file names inside the run directory (one name each, no ``/`` or ``..``).

    Acts on global rank 0 only.
    """

    rank_zero_only = True
    config_options = (
        Option("interval", int, None, "Without a progress bar, print a train line every this many steps "
               "(null: at every train log point).", nullable=True, minimum=1),
        Option("progress", str, "auto", "Live progress bar: auto (on a terminal), on, off.",
               choices=("auto", "on", "off")),
        Option("log_file", str, "log.txt", "Log file name in the run directory (one file name).", file_name=True),
        Option("metrics_file", str, "metrics.jsonl", "Metrics file name (JSON lines) in the run directory (one file "
               "name).", file_name=True),
    )

    def __init__(self) -> None:
        super().__init__()
        self._log_file: _LogFile | None = None
        self._metrics: IO[str] | None = None
        self._metrics_path: Path | None = None
        self._bar: ProgressBar | None = None
        self._streams: tuple[Any, Any] | None = None  # sys.stdout and sys.stderr while the bar is shown
        self._capturing_warnings = False
        self._console: logging.StreamHandler[Any] | None = None
        self._console_stream: Any = None
        self._started = time.monotonic()
        self._elapsed_before = 0.0
        self._first_step = 0
        self._last_printed_step = 0
        self._last_train: dict[str, float] = {}

    # -- set-up -----------------------------------------------------------------

    @hookimpl(tryfirst=True)  # log.txt is open before any other plugin logs at before_run
    def before_run(self, algorithm: RunView) -> None:
        run_dir = Path(algorithm.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._started = time.monotonic()
        handler = _LogFile(run_dir / self.config.log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter(_FILE_FORMAT, _DATE_FORMAT))
        handler.set_name("semilearn-logging-file")
        logging.getLogger("semilearn").addHandler(handler)
        self._log_file = handler
        self._metrics_path = run_dir / self.config.metrics_file

        console = _console_handler()
        mode = self.config.progress
        stream = console.stream if console is not None else sys.stdout
        if mode == "on" or (mode == "auto" and _is_terminal(stream)):
            self._bar = ProgressBar(stream, algorithm.num_train_iter)
            if console is not None:
                self._console, self._console_stream = console, console.stream
                console.setStream(BarAwareStream(stream, self._bar))  # type: ignore[arg-type]
            # print(), other writes and Python warnings keep clear of the bar while it is shown
            self._streams = (sys.stdout, sys.stderr)
            sys.stdout = BarAwareStream(sys.stdout, self._bar)  # type: ignore[assignment]
            sys.stderr = BarAwareStream(sys.stderr, self._bar)  # type: ignore[assignment]
            self._capturing_warnings = True
            logging.captureWarnings(True)

    @hookimpl
    def load_checkpoint(self, algorithm: RunView, state: Mapping[str, Any]) -> None:
        saved = self.plugin_state(state)
        self._elapsed_before = float(saved.get("elapsed", 0.0))
        self._first_step = self._last_printed_step = algorithm.global_step
        if self._bar is not None:
            self._bar.start_step = self._bar.step = algorithm.global_step
        dropped = self._truncate_metrics(algorithm.global_step)
        self._write_file(
            f"resumed from step {algorithm.global_step}"
            + (f" ({dropped} metric lines after it dropped)" if dropped else "")
        )

    @hookimpl
    def save_checkpoint(self, algorithm: RunView, state: MutableMapping[str, Any]) -> None:
        self.plugin_state(state)["elapsed"] = self._elapsed()

    # -- during the run -----------------------------------------------------------

    @hookimpl
    def after_train_step(self, algorithm: RunView, step: int) -> None:
        if self._bar is not None:
            self._bar.update(step)

    @hookimpl
    def log(self, algorithm: RunView, step: int, split: str, metrics: Mapping[str, float]) -> None:
        record = {
            "step": step,
            "epoch": algorithm.epoch,
            "split": split,
            **{name: float(value) for name, value in metrics.items()},
            "elapsed": round(self._elapsed(), 3),
            "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        self._append_metrics(record)
        total = algorithm.num_train_iter
        if split == "train":
            self._last_train = dict(metrics)
            line = f"step {step}/{total} · {format_metrics(metrics)} · eta {self._eta(step, total)}"
            if self._bar is not None:
                self._bar.set(**self._bar_values(metrics))
                self._write_file(line)
            elif self._due(step, total):
                logging.getLogger("semilearn").info(line)
            else:
                self._write_file(line)
        else:
            monitor = algorithm.config.monitor
            best = best_evaluation(algorithm.eval_history, monitor, algorithm.config.mode)
            line = f"eval step {step}/{total} · {format_metrics(metrics)}"
            if best is not None:
                line += f" · best {short_name(monitor)} {format_value(monitor, best[monitor])}"
            if self._bar is not None and monitor in metrics:
                label = short_name(monitor)  # "eval loss" beside the train loss the bar shows
                self._bar.set(**{f"eval {label}" if label in ("loss", "mask") else label:
                                 format_value(monitor, metrics[monitor])})
            logging.getLogger("semilearn").info(line)
        if self._log_file is not None and self._log_file.failure is not None:
            raise _unwritable(Path(self._log_file.baseFilename), self._log_file.failure)

    @hookimpl(tryfirst=True)
    def on_step_end(self, algorithm: RunView, step: int) -> None:
        # the last frame is drawn before anything that ends the run prints its lines
        if self._bar is not None and (step >= algorithm.num_train_iter or algorithm.stop_reason):
            self._bar.update(step, force=True)
            self._end_bar()

    def _end_bar(self) -> None:
        """Draw the bar's last frame and give the console, stdout, stderr and warnings back."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._console is not None:
            self._console.setStream(self._console_stream)
            self._console = None
        if self._streams is not None:
            stdout, stderr = self._streams
            if isinstance(sys.stdout, BarAwareStream):
                sys.stdout = stdout
            if isinstance(sys.stderr, BarAwareStream):
                sys.stderr = stderr
            self._streams = None
        if self._capturing_warnings:
            logging.captureWarnings(False)
            self._capturing_warnings = False

    @hookimpl(trylast=True)  # the summary and closing the files come after every other plugin's ending
    def after_run(self, algorithm: RunView, status: str, error: BaseException | None) -> None:
        try:
            self._end_bar()
            if error is not None and not isinstance(error, KeyboardInterrupt):
                self._write_file(
                    "the run failed:\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__))
                )
            for line, console in self._summary(algorithm, status, error):
                logging.getLogger("semilearn").info(line, extra={CONSOLE_EXTRA: console})
        finally:
            self._close()

    # -- helpers ------------------------------------------------------------------

    def _elapsed(self) -> float:
        return self._elapsed_before + time.monotonic() - self._started

    def _eta(self, step: int, total: int) -> str:
        done = step - self._first_step
        seconds = time.monotonic() - self._started
        return format_duration((total - step) * seconds / done) if done > 0 else "?"

    def _due(self, step: int, total: int) -> bool:
        interval = self.config.interval
        if interval is None or step >= total or step - self._last_printed_step >= interval:
            self._last_printed_step = step
            return True
        return False

    @staticmethod
    def _bar_values(metrics: Mapping[str, float]) -> dict[str, str]:
        values = {}
        if "loss" in metrics:
            values["loss"] = f"{metrics['loss']:.3f}"
        if "mask_ratio" in metrics:
            values["mask"] = format_value("mask_ratio", metrics["mask_ratio"])
        return values

    def _write_file(self, message: str) -> None:
        if self._log_file is None:
            return
        record = logging.LogRecord("semilearn", logging.INFO, __file__, 0, message, None, None)
        self._log_file.handle(record)

    def _append_metrics(self, record: Mapping[str, Any]) -> None:
        assert self._metrics_path is not None
        try:
            if self._metrics is None:
                self._metrics = open(self._metrics_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in after_run
            self._metrics.write(json.dumps(record) + "\n")
            self._metrics.flush()
        except OSError as error:  # a torn last line is dropped when the run resumes (_truncate_metrics)
            raise _unwritable(self._metrics_path, error) from error

    def _truncate_metrics(self, step: int) -> int:
        """Keep only complete lines up to ``step`` (written atomically); return how many were dropped."""
        path = self._metrics_path
        if path is None or not path.exists():
            return 0
        kept, dropped = [], 0
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1
                continue
            if isinstance(entry, dict) and int(entry.get("step", 0)) <= step:
                kept.append(line)
            else:
                dropped += 1
        if dropped:
            descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".metrics-")
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in kept))
            os.replace(temporary, path)
        return dropped

    def _summary(self, algorithm: RunView, status: str, error: BaseException | None) -> list[tuple[str, bool]]:
        """``(line, on the console)``: the run's one summary line (the engine prints it on the
        console when the run returns; here it goes to log.txt, with the wall time across
        resumes), then where the logs are."""
        seconds = time.monotonic() - algorithm.started
        line = run_summary(algorithm, status, seconds, algorithm.global_step - self._first_step,
                           Path(algorithm.run_dir), error)
        if self._elapsed_before:
            line += f" · {format_duration(self._elapsed())} in all, resumes included"
        run_dir = Path(algorithm.run_dir)
        return [(line, False), (f"logs: {run_dir / self.config.log_file} · {run_dir / self.config.metrics_file}", True)]

    def _close(self) -> None:
        if self._metrics is not None:
            try:
                self._metrics.close()
            except OSError:  # what it could not write was reported when the write failed
                pass
            self._metrics = None
        if self._log_file is not None:
            logging.getLogger("semilearn").removeHandler(self._log_file)
            self._log_file.close()
            self._log_file = None
        self._end_bar()

    # -- command ------------------------------------------------------------------

    @on_all_ranks
    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from .plot import plot_command

        cli.add_command(plot_command)
