"""A one-line progress bar for terminals, and the plain lines used everywhere else."""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import IO, Any

from semilearn.metrics import format_duration, format_metric

__all__ = ["ProgressBar", "format_duration", "format_metrics", "format_value", "short_name", "BarAwareStream"]

_SHORT = {"steps_per_sec": "it/s", "samples_per_sec": "samples/s", "mask_ratio": "mask", "top1_acc": "acc",
          "balanced_acc": "bal_acc", "seconds": "time"}


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
    """Redraws ``step/total % bar elapsed<eta rate | loss mask acc`` in place, at most ten times a second.

    The rate is measured over the last :attr:`WINDOW` seconds (not since the start, which
    would lag behind a run that sped up after its first steps), and the ETA follows from it.
    When the line is too narrow, whole fields are dropped (the metrics from the last, then
    the bar, the rate, the times), never cut in the middle.
    """

    WINDOW = 10.0  # seconds of recent steps the rate is measured over

    def __init__(self, stream: IO[str], total: int, start: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.total = total
        self.start_step = start
        self.step = start
        self._clock = clock
        self.started = clock()
        self.extra: dict[str, str] = {}
        self._last_draw = 0.0
        self._visible = False
        self._samples: deque[tuple[float, int]] = deque([(self.started, start)])

    def update(self, step: int, force: bool = False) -> None:
        self.step = step
        now = self._clock()
        self._samples.append((now, step))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.WINDOW:
            self._samples.popleft()
        if force or now - self._last_draw >= 0.1 or step >= self.total:
            self._last_draw = now
            self.draw()

    def set(self, **values: str) -> None:
        self.extra.update(values)

    def rate(self) -> float:
        """Steps per second over the recent window (since the start, while it is shorter)."""
        (first_time, first_step), (last_time, last_step) = self._samples[0], self._samples[-1]
        if last_step <= first_step or last_time <= first_time:
            return 0.0
        return (last_step - first_step) / (last_time - first_time)

    def render(self, width: int) -> str:
        rate = self.rate()
        elapsed = self._clock() - self.started
        eta = (self.total - self.step) / rate if rate > 0 else None
        fraction = self.step / self.total if self.total else 1.0
        head = f"{self.step}/{self.total} {100 * fraction:3.0f}%"
        times = f"{format_duration(elapsed)}<{format_duration(eta) if eta is not None else '?'}"
        speed = f"{rate:.1f} it/s" if rate > 0 else ""
        extras = [f"{name} {value}" for name, value in self.extra.items()]
        limit = max(width - 1, len(head))
        show_bar, show_speed, show_times = True, bool(speed), True

        def line(bar_width: int) -> str:
            parts = [head]
            if show_bar:
                filled = int(bar_width * min(max(fraction, 0.0), 1.0))
                parts.append("█" * filled + "░" * (bar_width - filled))
            if show_times:
                parts.append(times)
            if show_speed:
                parts.append(speed)
            text = " ".join(parts)
            return text + (" | " + " ".join(extras) if extras else "")

        while True:
            spare = limit - len(line(0))  # room for the bar itself (its separator is counted)
            if show_bar and spare >= 10:
                return line(min(40, spare))
            if not show_bar and spare >= 0:
                return line(0)
            if extras:
                extras.pop()
            elif show_bar:
                show_bar = False
            elif show_speed:
                show_speed = False
            elif show_times:
                show_times = False
            else:
                return head

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
