"""``semilearn evaluate TARGET``: score a trained model on its test split or another data set.

TARGET is a run directory (its ``best.pt``; ``--checkpoint last`` for ``last.pt``) or a
checkpoint file. The data set is the one of the checkpoint's configuration, or another
with ``--set`` (``--set dataset=npz --set data_dir=new.npz``; it must have the same
classes). Prints top-1 and balanced accuracy, the loss and, per class, precision, recall
and F1; ``--json`` for machines; ``--plot PATH`` draws the confusion matrix (needs
matplotlib: ``pip install './plugins/logging[plot]'``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import torch

__all__ = ["evaluate_command", "Report", "score"]


@dataclass(frozen=True)
class Report:
    """The scores of one evaluation."""

    classes: list[str]
    top1_acc: float
    balanced_acc: float
    loss: float
    count: int
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    confusion: list[list[int]]  # rows: true class, columns: predicted class

    def to_dict(self) -> dict[str, Any]:
        per_class = [
            {"class": name, "precision": p, "recall": r, "f1": f, "support": s}
            for name, p, r, f, s in zip(self.classes, self.precision, self.recall, self.f1, self.support, strict=True)
        ]
        return {"top1_acc": self.top1_acc, "balanced_acc": self.balanced_acc, "loss": self.loss,
                "count": self.count, "per_class": per_class, "confusion_matrix": self.confusion}


def score(logits: torch.Tensor, targets: torch.Tensor, classes: Sequence[str]) -> Report:
    """Top-1 and balanced accuracy, mean cross-entropy, per-class precision / recall / F1
    and the confusion matrix of ``logits [N, K]`` against ``targets [N]``.

    Balanced accuracy is the mean recall over the classes present in ``targets`` (as the
    run's evaluation computes it); a class never predicted has precision 0.
    """
    import torch
    import torch.nn.functional as F

    num_classes = logits.shape[-1]
    targets = targets.to(logits.device).long()
    predicted = logits.argmax(dim=-1)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    confusion.index_put_((targets.cpu(), predicted.cpu()), torch.ones(len(targets), dtype=torch.long),
                         accumulate=True)
    hits = confusion.diag().double()
    support = confusion.sum(dim=1).double()
    chosen = confusion.sum(dim=0).double()
    precision = torch.where(chosen > 0, hits / chosen.clamp_min(1), torch.zeros_like(hits))
    recall = torch.where(support > 0, hits / support.clamp_min(1), torch.zeros_like(hits))
    total = precision + recall
    f1 = torch.where(total > 0, 2 * precision * recall / total.clamp_min(1e-12), torch.zeros_like(hits))
    present = support > 0
    count = len(targets)
    return Report(
        classes=list(classes),
        top1_acc=float(hits.sum() / max(count, 1)),
        balanced_acc=float(recall[present].mean()) if bool(present.any()) else 0.0,
        loss=float(F.cross_entropy(logits.float(), targets)) if count else 0.0,
        count=count,
        precision=[float(v) for v in precision],
        recall=[float(v) for v in recall],
        f1=[float(v) for v in f1],
        support=[int(v) for v in support],
        confusion=confusion.tolist(),
    )


def plot_confusion(report: Report, path: Path, title: str) -> None:
    """The confusion matrix as a PNG (rows: true class; each row normalised to 100%)."""
    try:
        import matplotlib
    except ImportError:
        from ..errors import InputError

        raise InputError("--plot needs matplotlib: pip install './plugins/logging[plot]' (or matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(report.classes)
    rows = [[100.0 * cell / max(sum(row), 1) for cell in row] for row in report.confusion]
    side = max(4.0, 0.45 * count + 2.0)
    figure, axes = plt.subplots(figsize=(side + 1.0, side))
    image = axes.imshow(rows, cmap="Blues", vmin=0.0, vmax=100.0)
    ticks = list(range(count))
    axes.set_xticks(ticks, report.classes, rotation=90 if count > 10 else 0)
    axes.set_yticks(ticks, report.classes)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)
    if count <= 20:
        for i, row in enumerate(report.confusion):
            for j, cell in enumerate(row):
                if cell:
                    axes.text(j, i, str(cell), ha="center", va="center", fontsize=8,
                              color="white" if rows[i][j] > 50 else "black")
    figure.colorbar(image, ax=axes, label="% of the true class")
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp.png")
    try:
        figure.savefig(temporary, dpi=120)
        temporary.replace(path)
    finally:
        plt.close(figure)
        temporary.unlink(missing_ok=True)


@click.command("evaluate")
@click.argument("target", type=click.Path(path_type=Path))
@click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="For a run directory: which of its checkpoints.")
@click.option("--weights", type=click.Choice(["auto", "ema", "model"]), default="auto", show_default=True,
              help="auto: what the run evaluated (the EMA weights when kept).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Change the checkpoint's configuration, e.g. the data set (same classes); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the confusion matrix as a PNG here (needs matplotlib).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1 ...")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.pass_obj
def evaluate_command(state: Any, target: Path, which: str, weights: str, overrides: tuple[str, ...],
                     as_json: bool, plot: Path | None, device: str, batch_size: int) -> int:
    """Evaluate the trained model of TARGET (a run directory or a checkpoint file).

    Uses the test split of the run's data set, or another data set with the same classes
    given with --set. Prints top-1 and balanced accuracy, the loss and per-class precision,
    recall and F1.
    """
    import torch

    from ..errors import InputError
    from .predict import resolve_device
    from .predictor import load, saved_config

    manager = state.manager
    if plot is not None and not plot.parent.is_dir():
        raise InputError(f"--plot: folder {plot.parent} does not exist")
    predictor = load(target, which, weights, str(resolve_device(device)), manager)
    config = saved_config({"config": predictor.config}, manager, overrides)
    from ..data.lazy import LazyLoading, LazySamples
    from ..data.torchdata import builder_for

    data = builder_for(manager, config.dataset)(config, torch.device("cpu"))
    if data.num_classes != predictor.card.num_classes:
        raise InputError(f"data set '{data.name}' has {data.num_classes} classes; the model was trained on "
                         f"{predictor.card.num_classes} ({predictor.card.dataset})")
    if isinstance(data.test_samples, LazySamples):  # read by the workers, a batch at a time
        parts = LazyLoading(config, torch.device("cpu")).batches(data.test_samples, batch_size)
        logits = torch.cat([predictor.logits(part, batch_size) for part in parts])
    else:
        logits = predictor.logits(data.test_samples, batch_size)
    report = score(logits, data.test_targets, predictor.classes)
    own = None if overrides else predictor.run_evaluation
    if plot is not None:
        plot_confusion(report, plot, f"{predictor.card.algorithm} on {data.name}: top-1 {100 * report.top1_acc:.2f}%")

    source = {"checkpoint": str(predictor.checkpoint), "step": predictor.step, "weights": predictor.weights,
              "dataset": data.name, "split": "test"}
    if as_json:
        payload = {**source, **report.to_dict()}
        if own is not None:
            payload["run_evaluation"] = dict(own)
        click.echo(json.dumps(payload, indent=2))
        return 0
    click.echo(f"{predictor.checkpoint} (step {predictor.step}, {predictor.weights} weights) on the test split "
               f"of {data.name}, {report.count} images")
    click.echo(f"top-1 accuracy {100 * report.top1_acc:.2f}% · balanced accuracy {100 * report.balanced_acc:.2f}% "
               f"· loss {report.loss:.4f}")
    if own is not None and "top1_acc" in own:
        click.echo(f"the run's own evaluation at step {int(own['step'])}: top-1 accuracy "
                   f"{100 * float(own['top1_acc']):.2f}%")
    width = max([5, *(len(name) for name in report.classes)])
    click.echo(f"\n{'class':<{width}}  precision  recall      F1  support")
    for index, name in enumerate(report.classes):
        click.echo(f"{name:<{width}}  {100 * report.precision[index]:8.2f}%  {100 * report.recall[index]:6.2f}%  "
                   f"{100 * report.f1[index]:6.2f}%  {report.support[index]:7d}")
    if plot is not None:
        click.echo(f"\nconfusion matrix: {plot}")
    return 0

