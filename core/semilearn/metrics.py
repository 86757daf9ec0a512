"""Eval metrics as the engine reports them: the best evaluation, and how values print.

The engine keys ``monitor`` (an eval metric's name) and ``mode`` (``max`` or ``min``)
decide which evaluation of a run is the best; :func:`best_evaluation` is the one place
that decides it, for the end-of-run lines, the logging plugin's lines, the checkpoint
plugin's ``best.pt`` and ``semilearn checkpoint inspect``. :func:`format_metric` prints a
value the way every summary line does.

Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["PERCENT_METRICS", "best_evaluation", "last_evaluation", "format_metric", "format_duration",
           "metric_label", "missing_monitor_message", "saved_monitor"]

# Metrics that are fractions of samples, printed as percentages.
PERCENT_METRICS = frozenset({"top1_acc", "balanced_acc", "mask_ratio"})

_LABELS = {"top1_acc": "accuracy", "balanced_acc": "balanced accuracy"}


def _value(entry: Mapping[str, Any], monitor: str) -> float | None:
    value = entry.get(monitor)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return None
    return float(value)


def best_evaluation(history: Iterable[Mapping[str, Any]], monitor: str, mode: str = "max") -> dict[str, Any] | None:
    """The evaluation whose ``monitor`` value is the largest (``mode`` max) or smallest (min).

    ``history`` holds one mapping of metrics per evaluation, oldest first (as
    ``algorithm.eval_history``, each with its ``step``). Evaluations without ``monitor``
    (or with NaN) are passed over; of equal values the earliest stays the best, so a
    later evaluation is the best only when it is strictly better. ``None`` when no
    evaluation reports ``monitor``.
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    best: Mapping[str, Any] | None = None
    best_value = 0.0
    for entry in history:
        value = _value(entry, monitor)
        if value is None:
            continue
        if best is None or (value > best_value if mode == "max" else value < best_value):
            best, best_value = entry, value
    return dict(best) if best is not None else None


def last_evaluation(history: Iterable[Mapping[str, Any]], monitor: str) -> dict[str, Any] | None:
    """The latest evaluation that reports ``monitor``, or ``None``."""
    last = None
    for entry in history:
        if _value(entry, monitor) is not None:
            last = entry
    return dict(last) if last is not None else None


def format_metric(name: str, value: float) -> str:
    """``93.11%`` for the fractions of :data:`PERCENT_METRICS`, ``0.0966`` for other metrics."""
    if name in PERCENT_METRICS:
        return f"{100 * value:.2f}%"
    return f"{value:.4f}"


def metric_label(name: str) -> str:
    """A metric's name in a sentence: ``accuracy`` for ``top1_acc``, else the name itself."""
    return _LABELS.get(name, name)


def missing_monitor_message(monitor: str, metrics: Iterable[str]) -> str:
    """The one warning for an evaluation that does not report the monitored metric."""
    reported = ", ".join(sorted(metrics)) or "none"
    return (f"monitor '{monitor}' is not among the eval metrics ({reported}); evaluations without it are never "
            "the best (nor kept as best.pt)")


def format_duration(seconds: float) -> str:
    """``1:12``, ``17:26``, ``1:02:03``: a duration as the summaries and the bar print it."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def saved_monitor(config: Mapping[str, Any], fallback: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """``(monitor, mode)`` of a run from its saved configuration (``config.yaml``, a
    checkpoint's ``config``), else from ``fallback`` (what older runs kept elsewhere), else
    the defaults ``top1_acc`` and ``max``; a mode other than ``max``/``min`` reads as ``max``."""
    fallback = fallback or {}
    monitor = str(config.get("monitor") or fallback.get("monitor") or "top1_acc")
    mode = str(config.get("mode") or fallback.get("mode") or "max")
    return monitor, mode if mode in ("max", "min") else "max"
