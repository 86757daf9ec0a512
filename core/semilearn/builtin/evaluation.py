"""Evaluation on the test split: top-1 accuracy, balanced accuracy and loss.

Implements the ``evaluate`` hook point (firstresult): a plugin that answers first
replaces it. Uses the EMA model when there is one. Under torchrun each process
evaluates its own contiguous shard of the test split and the counts are summed across
processes, so every sample is counted once. One host synchronisation per evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hook import Hook, hookimpl

if TYPE_CHECKING:
    from ..view import RunView

__all__ = ["EvaluationHook"]


class EvaluationHook(Hook):
    """Evaluates ``algorithm.eval_model`` on ``algorithm.data.test_samples``."""

    @hookimpl
    def evaluate(self, algorithm: RunView, step: int) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        from ..data.modality import take
        from ..distributed import all_reduce_sum

        data = algorithm.data
        classes = data.num_classes
        if algorithm.world_size > 1:
            _share_buffers(algorithm.eval_model)
        shard = -(-len(data.test_targets) // algorithm.world_size)
        start = algorithm.rank * shard
        images = take(data.test_samples, slice(start, start + shard))
        targets = data.test_targets[start : start + shard].to(algorithm.device)
        logits = algorithm.predict(images)
        correct = (logits.argmax(dim=-1) == targets).float()
        # one vector of sums: per-class totals, per-class correct, summed loss
        sums = torch.cat([
            torch.bincount(targets, minlength=classes).float(),
            torch.bincount(targets, weights=correct, minlength=classes).float(),
            F.cross_entropy(logits, targets, reduction="sum").reshape(1) if len(targets) else logits.new_zeros(1),
        ])
        totals: list[float] = all_reduce_sum(sums).tolist()
        per_class_total, per_class_correct, loss_sum = totals[:classes], totals[classes : 2 * classes], totals[-1]
        count = sum(per_class_total)
        present = [(right, total) for right, total in zip(per_class_correct, per_class_total, strict=True) if total]
        return {
            "top1_acc": sum(per_class_correct) / max(count, 1.0),
            "balanced_acc": sum(right / total for right, total in present) / max(len(present), 1),
            "loss": loss_sum / max(count, 1.0),
        }


def _share_buffers(model: object) -> None:
    """Give every process rank 0's batch-norm statistics, so all shards see one model."""
    import torch.distributed as dist

    for buffer in model.buffers():  # type: ignore[attr-defined]
        dist.broadcast(buffer, src=0)
