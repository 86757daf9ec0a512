"""SimMatch (Zheng et al., 2022, arXiv:2203.06915): similarity matching against a labelled memory.

A memory bank holds one L2-normalised embedding (projection head, size ``proj_size``) per
labelled sample, with its label. The weak view of an unlabelled image is compared with the
bank: the softmax (temperature ``T``) of those similarities is an instance-level
pseudo-label over the labelled samples, and it and the class prediction calibrate each
other ("label propagation"): the instance pseudo-label is reweighted by the predicted
probability of each bank entry's class, and the class pseudo-label is mixed with the
similarity mass aggregated per class (``smoothing_alpha`` keeps the model's share). The
strong view is trained on both: its class prediction on the (aligned, confidence-masked)
class pseudo-label, its similarities to the bank on the instance pseudo-label
(``in_loss_ratio``). The bank follows the labelled embeddings with momentum 0.7 (USB's
choice for CIFAR-sized data sets); the similarity terms start once every labelled sample
has been written to it. ``K``, the bank size, is the number of labelled samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, Option
from ..errors import ConfigError
from ..nets.heads import ProjectionHead
from .common import SSLAlgorithm, cross_entropy, p_cutoff_option, split, temperature_option, ulb_loss_ratio_option
from .policies import gather_from_ranks

if TYPE_CHECKING:
    from ..data.base import SSLData
    from ..plugins import PluginManager

__all__ = ["SimMatch", "similarity_targets", "update_labelled_bank", "BANK_MOMENTUM"]

BANK_MOMENTUM = 0.7


def similarity_targets(embeddings: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor,
                       probs: torch.Tensor, temperature: float, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The calibrated instance pseudo-label ``[B, K]`` and the smoothed class pseudo-label ``[B, C]``."""
    batch = embeddings.shape[0]
    labels = bank_labels.expand(batch, -1)
    similarity = torch.softmax(embeddings @ bank.t() / temperature, dim=1)
    instance = similarity * probs.gather(1, labels)
    instance = instance / instance.sum(dim=1, keepdim=True)
    aggregated = torch.zeros_like(probs).scatter_add_(1, labels, similarity)
    return instance, alpha * probs + (1.0 - alpha) * aggregated


def update_labelled_bank(bank: torch.Tensor, seen: torch.Tensor, embeddings: torch.Tensor, indices: torch.Tensor,
                         momentum: float = BANK_MOMENTUM) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the bank rows of ``indices`` towards their new embeddings, renormalised.

    A sample drawn twice in a batch moves towards the mean of its embeddings (no write
    order to depend on). Returns the new bank and the new "written at least once" flags.
    """
    sums = torch.zeros_like(bank).index_add_(0, indices, embeddings)
    counts = torch.zeros(bank.shape[0], device=bank.device, dtype=bank.dtype).index_add_(
        0, indices, torch.ones_like(indices, dtype=bank.dtype))
    hit = counts > 0
    mean = sums / counts.clamp_min(1.0)[:, None]
    moved = F.normalize(momentum * bank + (1.0 - momentum) * mean, dim=1)
    return torch.where(hit[:, None], moved, bank), seen | hit


class SimMatch(SSLAlgorithm):
    """Class and instance (labelled-memory similarity) pseudo-labels that calibrate each other."""

    name = "simmatch"
    description = "semantic + instance similarity to a labelled memory bank, each calibrating the other"
    config_options = (
        temperature_option(0.1),
        p_cutoff_option(0.95),
        Option("proj_size", int, 128, "Size of the projected embedding.", minimum=1, usb=True),
        Option("K", int, None, "Size of the labelled memory bank: the number of labelled samples (null).",
               nullable=True, minimum=1, usb=True),
        Option("in_loss_ratio", float, 1.0, "Weight of the instance similarity loss.", minimum=0, usb=True),
        Option("smoothing_alpha", float, 0.9, "Weight of the model's own probabilities in label propagation.",
               minimum=0, maximum=1, usb=True),
        Option("da_len", int, 32, "Batches in the distribution alignment queue.", minimum=1, usb=True),
        ulb_loss_ratio_option(1.0),
    )

    def heads(self, config: Config, num_features: int) -> dict[str, nn.Module]:
        return {"proj": ProjectionHead(num_features, config.proj_size)}

    def __init__(self, config: Config, data: SSLData, model: nn.Module, manager: PluginManager, run_dir: Path,
                 device: torch.device) -> None:
        super().__init__(config, data, model, manager, run_dir, device)
        labelled = len(self.data.labelled_targets)
        if self.config.K is not None and self.config.K != labelled:
            raise ConfigError(f"simmatch's K is the size of its labelled memory bank, one entry per labelled sample: "
                              f"{labelled} here, not {self.config.K}; leave K unset")
        generator = torch.Generator().manual_seed(self.config.seed)
        bank = F.normalize(torch.randn(labelled, self.config.proj_size, generator=generator), dim=1)
        self.buffers["bank"] = bank.to(self.device)
        self.buffers["bank_labels"] = self.data.labelled_targets.clone().to(self.device)
        self.buffers["bank_seen"] = torch.zeros(labelled, dtype=torch.bool, device=self.device)

    def sample_batch(self) -> dict[str, torch.Tensor]:
        index, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        return {
            "idx_lb": index, "x_lb": self.augment.weak(images), "y_lb": targets,
            "x_ulb_w": self.augment.weak(unlabelled), "x_ulb_s": self.augment.strong(unlabelled),
        }

    def train_step(  # type: ignore[override]
        self, idx_lb: torch.Tensor, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor,
        x_ulb_s: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        buffers = self.buffers
        bank, bank_labels, seen = buffers["bank"], buffers["bank_labels"], buffers["bank_seen"]
        outputs, sizes = self.forward_views(x_lb, x_ulb_w, x_ulb_s)
        logits_lb, logits_w, logits_s = split(outputs["logits"], sizes)
        proj_lb, proj_w, proj_s = split(outputs["proj"], sizes)
        sup_loss = cross_entropy(logits_lb, y_lb).mean()

        with torch.no_grad():
            probs = torch.softmax(logits_w.detach().float(), dim=-1)
            probs = self.align("queue", probs, "uniform")
            instance, smoothed = similarity_targets(proj_w.detach().float(), bank, bank_labels, probs, config.T,
                                                    config.smoothing_alpha)
            ready = seen.all()
            probs = torch.where(ready, smoothed, probs)
            mask = self.mask("fixed", probs)

        log_student = torch.log_softmax(proj_s.float() @ bank.t() / config.T, dim=1)
        in_loss = -(instance * log_student).sum(dim=1).mean() * ready.to(log_student.dtype)
        unsup_loss = (cross_entropy(logits_s, probs) * mask).mean()
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss + config.in_loss_ratio * in_loss
        buffers["bank"], buffers["bank_seen"] = update_labelled_bank(
            bank, seen, gather_from_ranks(proj_lb.detach().float()), gather_from_ranks(idx_lb))
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "in_loss": in_loss, "mask_ratio": mask.mean()}
