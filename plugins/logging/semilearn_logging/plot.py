"""``semilearn plot RUN_DIR...``: training and evaluation curves of one run, or several to compare.

Panels share the step axis: the training losses, the evaluation loss, the accuracies (in
percent, 0 to 100), the mask ratio (percent) and the learning rate. The best evaluation
(by the run's ``monitor`` and ``mode``, as the run's summary names it) is marked with a
star where its metric is drawn. With several run directories, each run has one colour
and one curve per panel (the total training loss, top-1 accuracy ...), labelled with its
directory's name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from semilearn import ConfigError, SemilearnError
from semilearn.config import read_config_file
from semilearn.errors import InputError
from semilearn.metrics import PERCENT_METRICS, best_evaluation, format_metric, saved_monitor
from semilearn.paths import check_name

__all__ = ["plot", "plot_command", "read_metrics", "plot_metrics", "plot_runs", "Run"]

MISSING_MATPLOTLIB = (
    "semilearn plot needs matplotlib, which is not installed: pip install 'semilearn-logging[plot]'"
)

# (title, curves of one run, curves when comparing runs); a curve is (split, metric)
PANELS: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], ...] = (
    ("training loss", (("train", "loss"), ("train", "sup_loss"), ("train", "unsup_loss")), (("train", "loss"),)),
    ("evaluation loss", (("eval", "loss"),), (("eval", "loss"),)),
    ("accuracy (%)", (("eval", "top1_acc"), ("eval", "balanced_acc")), (("eval", "top1_acc"),)),
    ("mask ratio (%)", (("train", "mask_ratio"),), (("train", "mask_ratio"),)),
    ("learning rate", (("train", "lr"),), (("train", "lr"),)),
)


class Run:
    """One run's metrics, name, ``monitor`` and ``mode`` (from its ``config.yaml``)."""

    def __init__(self, name: str, records: list[dict[str, Any]], monitor: str = "top1_acc", mode: str = "max"):
        self.name, self.records, self.monitor, self.mode = name, records, monitor, mode

    @classmethod
    def read(cls, run_dir: Path, name: str | None = None) -> Run:
        config = _config(run_dir)
        section = config.get("logging") if isinstance(config.get("logging"), dict) else {}
        metrics_file = (section or {}).get("metrics_file") or "metrics.jsonl"
        path = run_dir / check_name(metrics_file, f"{run_dir / 'config.yaml'}: logging.metrics_file", InputError)
        if not path.is_file():
            raise SemilearnError(f"no metrics file in {run_dir} (expected {path.name}; was semilearn-logging active?)")
        records = read_metrics(path)
        if not records:
            raise SemilearnError(f"{path} holds no metrics yet")
        return cls(name or run_dir.name, records, *saved_monitor(config))

    def series(self, split: str, name: str) -> tuple[list[int], list[float]]:
        points = [(r["step"], r[name]) for r in self.records if r.get("split") == split and name in r]
        scale = 100.0 if name in PERCENT_METRICS else 1.0
        return [p[0] for p in points], [scale * p[1] for p in points]

    def best(self) -> dict[str, Any] | None:
        return best_evaluation([r for r in self.records if r.get("split") == "eval"], self.monitor, self.mode)


def _config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    try:
        return read_config_file(path)  # a regular file of a sane size, or nothing
    except ConfigError:
        return {}


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a metrics file (a torn last line is skipped)."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def plot_runs(runs: list[Run], output: Path | None, title: str = "") -> Any:
    """Draw the panels of ``runs`` into a matplotlib figure, written to ``output`` (PNG) unless
    it is None, and return it. The figure is made without pyplot, so nothing is left open and
    a notebook's own backend is not touched (a notebook shows a returned figure)."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as error:
        raise SemilearnError(MISSING_MATPLOTLIB) from error

    compare = len(runs) > 1
    figure = Figure(figsize=(12, 10), layout="constrained")
    grid = figure.subplots(3, 2, sharex=True)
    axes = [axis for row in grid for axis in row]
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, (label, single, several) in zip(axes, PANELS, strict=False):
        drawn = False
        for index, run in enumerate(runs):
            for split, name in several if compare else single:
                steps, values = run.series(split, name)
                if not steps:
                    continue
                curve = run.name if compare else f"{split}/{name}"
                axis.plot(steps, values, label=curve, marker="." if split == "eval" else None,
                          color=colours[index % len(colours)] if compare else None)
                drawn = True
                best = run.best()
                if split == "eval" and name == run.monitor and best is not None:
                    scale = 100.0 if name in PERCENT_METRICS else 1.0
                    axis.plot([best["step"]], [scale * best[name]], marker="*", markersize=14, linestyle="none",
                              color=colours[index % len(colours)] if compare else "black",
                              label=f"best {format_metric(name, best[name])} (step {int(best['step'])})"
                                    + (f", {run.name}" if compare else ""))
        axis.set_title(label)
        axis.grid(alpha=0.3)
        if "(%)" in label:
            axis.set_ylim(0, 100)
        if drawn:  # percentages sit near the top: their legend goes below them
            axis.legend(fontsize="small", loc="lower right" if "(%)" in label else "best")
        else:
            axis.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axis.transAxes)
    for axis in axes[len(PANELS):]:
        axis.set_visible(False)
    for axis in axes:
        axis.set_xlabel("step")
        axis.xaxis.set_tick_params(labelbottom=True)
    if title:
        figure.suptitle(title)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(output, dpi=110)
    return figure


def plot(*run_dirs: str | Path, output: str | Path | None = None) -> Any:
    """``semilearn plot``'s twin in Python: the figure of one run directory's curves, or of
    several compared (a notebook shows it), written to ``output`` (PNG) when given::

        from semilearn_logging.plot import plot
        plot(result.run_dir)                      # semilearn.train's result
        plot("saved_models/a", "saved_models/b", output="both.png")
    """
    if not run_dirs:
        raise InputError("plot: give at least one run directory")
    folders = [Path(run_dir) for run_dir in run_dirs]
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"plot: {folder} is not a run directory")
    runs = _runs(folders)
    title = runs[0].name if len(runs) == 1 else " vs ".join(run.name for run in runs)
    return plot_runs(runs, Path(output) if output is not None else None, title)


def _runs(run_dirs: list[Path]) -> list[Run]:
    names = [run_dir.name for run_dir in run_dirs]
    if len(set(names)) < len(names):  # the same name in different folders: tell them apart by path
        names = [str(run_dir) for run_dir in run_dirs]
    return [Run.read(run_dir, name) for run_dir, name in zip(run_dirs, names, strict=True)]


def plot_metrics(records: list[dict[str, Any]], output: Path, title: str = "") -> Path:
    """One run's ``records`` drawn into ``output`` (PNG)."""
    plot_runs([Run(title or "run", records)], output, title)
    return output


@click.command("plot")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
                metavar="RUN_DIR...")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write (default: RUN_DIR/metrics.png for one run, metrics-comparison.png here for "
                   "several).")
def plot_command(run_dirs: tuple[Path, ...], output: Path | None) -> None:
    """Plot the losses, accuracies, mask ratio and learning rate of RUN_DIR's metrics.jsonl.

    Several run directories are drawn in one figure, one colour each, to compare them.
    """
    runs = _runs(list(run_dirs))
    if output is None:
        output = run_dirs[0] / "metrics.png" if len(run_dirs) == 1 else Path("metrics-comparison.png")
    title = runs[0].name if len(runs) == 1 else " vs ".join(run.name for run in runs)
    plot_runs(runs, output, title)
    click.echo(f"wrote {output}")
