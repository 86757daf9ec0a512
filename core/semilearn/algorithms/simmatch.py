"""SimMatch (Zheng et al., 2022, arXiv:2203.06915): similarity matching against a labelled memory.

A memory bank holds one embedding (projection head, size ``proj_size``) per labelled
sample, with its label. The weak view of an unlabelled image is compared with the bank: the
softmax (temperature ``T``) of those similarities is an instance-level pseudo-label over
the labelled samples, and it and the class prediction calibrate each other ("label
propagation"): the instance pseudo-label is reweighted by the predicted probability of
each bank entry's class, and the class pseudo-label is mixed with the similarity mass
aggregated per class (``smoothing_alpha`` keeps the model's share). The strong view is
trained on both: its class prediction on the (aligned, confidence-masked) class
pseudo-label, its similarities to the bank on the instance pseudo-label (``in_loss_ratio``).
``K``, the bank size, is the number of labelled samples (a ``K`` in the configuration is
replaced, as USB does).

As in USB:

* the similarity terms start after the first epoch (before, the instance loss is 0 and the
  class pseudo-label is the aligned prediction);
* the bank starts as random unit vectors and labels 0, and the labelled embeddings of each
  step are written to it. For CIFAR-10/100, SVHN and the small data sets of USB's list (and
  digits) they move it with momentum 0.7, and USB then normalises the written block across
  the batch -- each feature over the written entries, not each entry -- which is kept by
  default (``normalize_bank_entries`` normalises each entry instead, as the paper);
  for other data sets (STL-10, ImageNet ...) the embeddings come from a pass of the EMA
  weights (in training mode: it moves the batch-norm statistics, as USB's) and replace
  the bank entries as they are. A sample drawn twice in a batch keeps its last embedding.

Bank, labels and alignment queue are in checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, Option
from ..nets.heads import ProjectionHead
from .common import (
    SSLAlgorithm,
    full_precision,
    masked_loss,
    p_cutoff_option,
    probabilities,
    temperature_option,
    ulb_loss_ratio_option,
)
from .policies import gather_from_ranks

if TYPE_CHECKING:
    from ..data.base import SSLData
    from ..plugins import PluginManager

__all__ = ["SimMatch", "similarity_targets", "update_labelled_bank", "BANK_MOMENTUM", "MOMENTUM_BANK_DATA_SETS"]

BANK_MOMENTUM = 0.7
# Data sets whose bank follows the labelled embeddings with momentum (USB's list, and digits)
MOMENTUM_BANK_DATA_SETS = frozenset({
    "cifar10", "cifar100", "svhn", "superks", "tissuemnist", "eurosat", "superbks", "esc50", "gtzan",
    "urbansound8k", "aclImdb", "ag_news", "dbpedia", "digits",
})


def similarity_targets(embeddings: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor,
                       probs: torch.Tensor, temperature: float, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The calibrated instance pseudo-label ``[B, K]`` and the smoothed class pseudo-label ``[B, C]``.

    ``bank`` is ``[proj_size, K]`` (one column per labelled sample), as USB keeps it.
    """
    batch = embeddings.shape[0]
    labels = bank_labels.expand([batch, -1])
    similarity = F.softmax(embeddings @ bank / temperature, dim=1)
    instance = similarity * probs.gather(1, labels)
    instance = instance / torch.sum(instance, dim=1, keepdim=True)
    if alpha >= 1:
        return instance, probs
    aggregated = torch.zeros([batch, probs.shape[1]], device=probs.device).scatter_add(1, labels, similarity)
    return instance, probs * alpha + aggregated * (1 - alpha)


def _last_position(indices: torch.Tensor, size: int) -> torch.Tensor:
    """For each of ``size`` entries, the last position in ``indices`` naming it (-1 for none)."""
    positions = torch.arange(indices.numel(), device=indices.device)
    return torch.full((size,), -1, dtype=torch.long, device=indices.device).scatter_reduce(
        0, indices, positions, reduce="amax", include_self=True)


def update_labelled_bank(bank: torch.Tensor, embeddings: torch.Tensor, indices: torch.Tensor,
                         momentum: float | None = BANK_MOMENTUM, normalize_entries: bool = False) -> torch.Tensor:
    """The bank ``[proj_size, K]`` after writing the labelled ``embeddings`` ``[B, proj_size]`` of ``indices``.

    With ``momentum`` the written block is ``normalize(m * bank[:, indices] + (1 - m) * e^T)``,
    normalised along the batch as USB's ``F.normalize`` on that block does, or per entry with
    ``normalize_entries``; without, the embeddings are written as they are. Where a sample
    appears twice, its last embedding wins (as USB's write on the CPU), the same on every device.
    """
    block = embeddings.t()
    if momentum is not None:
        block = momentum * bank[:, indices] + (1 - momentum) * block
        block = F.normalize(block, dim=0 if normalize_entries else 1)
    last = _last_position(indices, bank.shape[1])
    written = last >= 0
    return torch.where(written[None, :], block[:, last.clamp_min(0)], bank)


class SimMatch(SSLAlgorithm):
    """Class and instance (labelled-memory similarity) pseudo-labels that calibrate each other."""

    name = "simmatch"
    description = "semantic + instance similarity to a labelled memory bank, each calibrating the other"
    config_options: ClassVar[tuple[Option, ...]] = (
        temperature_option(0.1),
        p_cutoff_option(0.95),
        Option("proj_size", int, 128, "Size of the projected embedding.", minimum=1, usb=True),
        Option("K", int, None, "Size of the labelled memory bank: always the number of labelled samples (a value "
               "here is replaced, as USB does).", nullable=True, minimum=1, usb=True),
        Option("in_loss_ratio", float, 1.0, "Weight of the instance similarity loss.", minimum=0, usb=True),
        Option("smoothing_alpha", float, 0.9, "Weight of the model's own probabilities in label propagation.",
               minimum=0, maximum=1, usb=True),
        Option("da_len", int, 32, "Batches in the distribution alignment queue.", minimum=1, usb=True),
        Option("normalize_bank_entries", bool, False, "Normalise each written bank entry to unit length (the "
               "paper); USB normalises each feature across the written block."),
        Option("use_epass", bool, False, "EPASS: average three projection heads before normalising (USB's "
               "classic-CV files turn it on).", usb=True),
        ulb_loss_ratio_option(1.0),
    )

    def heads(self, config: Config, num_features: int) -> dict[str, nn.Module]:
        return {"proj": ProjectionHead(num_features, config.proj_size, ensemble=3 if config.use_epass else 1)}

    def __init__(self, config: Config, data: SSLData, model: nn.Module, manager: PluginManager, run_dir: Path,
                 device: torch.device) -> None:
        super().__init__(config, data, model, manager, run_dir, device)
        labelled = len(self.data.labelled_targets)
        self.momentum_bank = config.dataset in MOMENTUM_BANK_DATA_SETS
        generator = torch.Generator().manual_seed(config.seed)
        bank = F.normalize(torch.randn(config.proj_size, labelled, generator=generator), dim=0)
        self.buffers["bank"] = bank.to(self.device)
        self.buffers["bank_labels"] = torch.zeros(labelled, dtype=torch.long, device=self.device)

    def sample_batch(self) -> dict[str, torch.Tensor]:
        index, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        return {
            "idx_lb": index, "x_lb": self.augment.weak(images), "y_lb": targets,
            "x_ulb_w": self.augment.weak(unlabelled), "x_ulb_s": self.augment.strong(unlabelled),
        }

    def _ema_embeddings(self, x_lb: torch.Tensor) -> torch.Tensor:
        """The labelled embeddings of the EMA weights, in training mode on the live batch norm (USB's teacher)."""
        if self.ema_model is None:
            return self.module(x_lb)["proj"]  # type: ignore[no-any-return]
        weights: dict[str, torch.Tensor] = dict(self.ema_model.named_parameters())
        return torch.func.functional_call(self.module, weights, (x_lb,))["proj"]  # type: ignore[no-any-return]

    def train_step(  # type: ignore[override]
        self, idx_lb: torch.Tensor, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor,
        x_ulb_s: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        buffers = self.buffers
        bank, bank_labels = buffers["bank"].clone(), buffers["bank_labels"]
        # use_cat: false -> a pass for each view in this order, all with gradients, as USB's SimMatch
        outputs = self.forward_outputs(x_lb, x_ulb_w, x_ulb_s, weak=None)
        logits_lb, logits_w, logits_s = (part["logits"] for part in outputs)
        proj_lb, proj_w, proj_s = (part["proj"] for part in outputs)
        sup_loss = F.cross_entropy(full_precision(logits_lb), y_lb)

        with torch.no_grad():
            if not self.momentum_bank:
                proj_lb = self._ema_embeddings(x_lb)
            probs = probabilities(logits_w)
            probs = self.align("queue", probs, "uniform", length=config.da_len)
            instance, smoothed = similarity_targets(full_precision(proj_w.detach()), bank, bank_labels, probs, config.T,
                                                    config.smoothing_alpha)
        student = F.softmax(full_precision(proj_s) @ bank / config.T, dim=1)
        in_loss = torch.sum(-instance * torch.log(student), dim=1).mean()
        if self.epoch == 0:  # USB: no similarity terms in the first epoch
            in_loss = in_loss * 0.0
            smoothed = probs
        mask = self.mask("fixed", smoothed, p_cutoff=config.p_cutoff)
        unsup_loss = masked_loss(logits_s, smoothed, mask)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss + config.in_loss_ratio * in_loss

        indices = gather_from_ranks(idx_lb)
        embeddings = gather_from_ranks(full_precision(proj_lb.detach()))
        momentum = BANK_MOMENTUM if self.momentum_bank else None
        buffers["bank"] = update_labelled_bank(buffers["bank"], embeddings, indices, momentum,
                                               config.normalize_bank_entries)
        labels = gather_from_ranks(y_lb)
        last = _last_position(indices, bank_labels.shape[0])
        buffers["bank_labels"] = torch.where(last >= 0, labels[last.clamp_min(0)], bank_labels)
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "in_loss": in_loss, "mask_ratio": mask.mean()}
