"""A one-line progress bar for terminals, and the plain lines used everywhere else."""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from typing import IO, Any

from semilearn.metrics import format_metric

__all__ = ["ProgressBar", "format_duration", "format_metrics", "format_value", "short_name", "BarAwareStream"]

_SHORT = {"steps_per_sec": "it/s", "samples_per_sec": "samples/s", "mask_ratio": "mask", "top1_acc": "acc",
          "balanced_acc": "bal_acc", "seconds": "time"}


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def format_value(name: str, value: float) -> str:
    """A metric's value as the lines print it: the engine's :func:`format_metric`, timings and rates shorter."""
    if name == "lr":
        return f"{value:.3g}"
    if name == "seconds":
        return f"{value:.2f}s"
    if name in ("steps_per_sec", "samples_per_sec"):
        return f"{value:.1f}"
    return format_metric(name, value)


def short_name(name: str) -> str:
    """A metric's name in the lines and the bar: ``acc`` for ``top1_acc``, ``mask`` for ``mask_ratio`` ..."""
    return _SHORT.get(name, name)


def format_metrics(metrics: Mapping[str, float]) -> str:
    return " · ".join(f"{short_name(name)} {format_value(name, value)}" for name, value in metrics.items())


class ProgressBar:
    """Redraws ``[step/total] bar it/s eta | loss mask acc`` in place, at most ten times a second."""

    def __init__(self, stream: IO[str], total: int, start: int = 0) -> None:
        self.stream = stream
        self.total = total
        self.start_step = start
        self.step = start
        self.started = time.monotonic()
        self.extra: dict[str, str] = {}
        self._last_draw = 0.0
        self._visible = False

    def update(self, step: int, force: bool = False) -> None:
        self.step = step
        now = time.monotonic()
        if force or now - self._last_draw >= 0.1 or step >= self.total:
            self._last_draw = now
            self.draw()

    def set(self, **values: str) -> None:
        self.extra.update(values)

    def render(self, width: int) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        done = self.step - self.start_step
        rate = done / elapsed
        eta = (self.total - self.step) / rate if rate > 0 else 0.0
        fraction = self.step / self.total if self.total else 1.0
        head = f"{self.step}/{self.total} {100 * fraction:3.0f}%"
        tail = f"{rate:.1f} it/s eta {format_duration(eta)}"
        if self.extra:
            tail += " | " + " ".join(f"{name} {value}" for name, value in self.extra.items())
        bar_width = max(10, min(40, width - len(head) - len(tail) - 6))
        filled = int(bar_width * fraction)
        bar = "█" * filled + "░" * (bar_width - filled)
        return f"{head} {bar} {tail}"[: max(width - 1, 20)]

    def draw(self) -> None:
        width = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r" + self.render(width) + "\x1b[K")
        self.stream.flush()
        self._visible = True

    def clear(self) -> bool:
        """Erase the bar; return whether it was shown."""
        if not self._visible:
            return False
        self.stream.write("\r\x1b[K")
        self.stream.flush()
        self._visible = False
        return True

    def close(self) -> None:
        if self._visible:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()
            self._visible = False


class BarAwareStream:
    """Wraps the console stream so that other output clears the bar first and redraws it after."""

    def __init__(self, stream: IO[str], bar: ProgressBar) -> None:
        self._stream = stream
        self._bar = bar

    def write(self, text: str) -> int:
        shown = self._bar.clear()
        written = self._stream.write(text)
        if shown and text.endswith("\n"):
            self._bar.draw()
        return written

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
