"""``semilearn plot RUN_DIR``: loss, accuracy, learning rate and mask ratio curves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml

from semilearn import SemilearnError

__all__ = ["plot_command", "read_metrics", "plot_metrics"]

MISSING_MATPLOTLIB = (
    "semilearn plot needs matplotlib, which is not installed: pip install 'semilearn-logging[plot]'"
)


def _metrics_file(run_dir: Path) -> Path:
    name = "metrics.jsonl"
    config = run_dir / "config.yaml"
    if config.is_file():
        try:
            section = (yaml.safe_load(config.read_text()) or {}).get("logging") or {}
            name = section.get("metrics_file", name)
        except yaml.YAMLError:
            pass
    return run_dir / name


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


def _series(records: list[dict[str, Any]], split: str, name: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[name]) for r in records if r.get("split") == split and name in r]
    return [p[0] for p in points], [p[1] for p in points]


def plot_metrics(records: list[dict[str, Any]], output: Path, title: str = "") -> Path:
    """Draw the four panels into ``output`` (PNG)."""
    try:
        import matplotlib
    except ImportError as error:
        raise SemilearnError(MISSING_MATPLOTLIB) from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    panels = [
        (axes[0][0], "loss", [("train", "loss"), ("train", "sup_loss"), ("train", "unsup_loss"), ("eval", "loss")]),
        (axes[0][1], "accuracy", [("eval", "top1_acc"), ("eval", "balanced_acc")]),
        (axes[1][0], "learning rate", [("train", "lr")]),
        (axes[1][1], "mask ratio", [("train", "mask_ratio")]),
    ]
    for axis, label, curves in panels:
        drawn = False
        for split, name in curves:
            steps, values = _series(records, split, name)
            if steps:
                axis.plot(steps, values, label=f"{split}/{name}", marker="." if split == "eval" else None)
                drawn = True
        axis.set_title(label)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if drawn:
            axis.legend(fontsize="small")
        else:
            axis.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axis.transAxes)
    if title:
        figure.suptitle(title)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=110)
    plt.close(figure)
    return output


@click.command("plot")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write (default: RUN_DIR/metrics.png).")
def plot_command(run_dir: Path, output: Path | None) -> None:
    """Plot loss, accuracy, learning rate and mask ratio from RUN_DIR's metrics.jsonl."""
    path = _metrics_file(run_dir)
    if not path.is_file():
        raise SemilearnError(f"no metrics file in {run_dir} (expected {path.name}; was semilearn-logging active?)")
    records = read_metrics(path)
    if not records:
        raise SemilearnError(f"{path} holds no metrics yet")
    written = plot_metrics(records, output or run_dir / "metrics.png", title=run_dir.name)
    click.echo(f"wrote {written}")
