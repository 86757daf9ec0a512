"""Evaluation on the test split: top-1 accuracy, balanced accuracy and loss.

Implements the ``evaluate`` hook point (firstresult): a plugin that answers first
replaces it. Uses the EMA model when there is one. One host synchronisation per
evaluation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hook import Hook, hookimpl

if TYPE_CHECKING:
    from ..algorithm import AlgorithmBase

__all__ = ["EvaluationHook"]


class EvaluationHook(Hook):
    """Evaluates ``algorithm.eval_model`` on ``algorithm.data.test_images``."""

    @hookimpl
    def evaluate(self, algorithm: AlgorithmBase, step: int) -> dict[str, float]:
        import torch
        import torch.nn.functional as F

        data = algorithm.data
        logits = algorithm.predict(data.test_images)
        targets = data.test_targets
        loss = F.cross_entropy(logits, targets)
        correct = (logits.argmax(dim=-1) == targets).float()
        per_class_total = torch.bincount(targets, minlength=data.num_classes).float()
        per_class_correct = torch.bincount(targets, weights=correct, minlength=data.num_classes)
        present = (per_class_total > 0).float()
        balanced = (per_class_correct / per_class_total.clamp_min(1) * present).sum() / present.sum().clamp_min(1)
        top1, balanced_acc, loss_value = torch.stack([correct.mean(), balanced, loss]).tolist()
        return {"top1_acc": top1, "balanced_acc": balanced_acc, "loss": loss_value}
