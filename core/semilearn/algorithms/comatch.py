"""CoMatch (Li et al., 2021, arXiv:2011.11183): graph-based contrastive learning with
memory-smoothed pseudo-labels.

Two representations of each unlabelled image co-evolve. Class probabilities of the weak
view are aligned to a uniform distribution (``"queue"`` alignment over ``da_len`` batches)
and smoothed with a memory bank: ``alpha * p + (1 - alpha) * A @ P_bank``, where ``A`` is
the softmax (temperature ``T``) of the similarities between the sample's embedding and the
embeddings in the bank, and ``P_bank`` their stored probabilities (labelled samples store
their one-hot labels). The bank holds the last ``queue_batch`` steps of weak unlabelled and
labelled embeddings; as in USB, smoothing starts after the first epoch, once more than
``queue_batch`` steps have run. The smoothed probabilities are the confidence-masked soft
targets of a strong view (always soft, as in USB: ``hard_label`` is accepted and has no
effect), and they define a pseudo-label graph:
``Q_ij = p_i . p_j`` (1 on the diagonal), cut below ``contrast_p_cutoff`` and normalised
per row. The embeddings of two strong views (a projection head, L2-normalised, size
``proj_size``) are trained to have the same similarity structure: cross-entropy between
``Q`` and the softmax of their similarities at temperature ``T`` (``contrast_loss_ratio``).
Similarities, smoothing and the contrastive loss are computed as USB's code does (its
``exp`` / sum normalisations and ``log(p + 1e-7)``), so that the numbers agree to the bit.

Bank, pointer and alignment queue are in checkpoints.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, Option
from ..nets.heads import ProjectionHead
from .common import (
    SSLAlgorithm,
    full_precision,
    masked_loss,
    one_hot,
    p_cutoff_option,
    probabilities,
    temperature_option,
    ulb_loss_ratio_option,
)
from .policies import gather_from_ranks

__all__ = ["CoMatch", "pseudo_label_graph", "graph_contrastive_loss", "memory_smoothing"]


def memory_smoothing(probs: torch.Tensor, embeddings: torch.Tensor, bank_embeddings: torch.Tensor,
                     bank_probs: torch.Tensor, temperature: float, alpha: float) -> torch.Tensor:
    """``alpha * probs + (1 - alpha) * A @ P_bank`` with ``A = softmax(e @ E_bank^T / T)`` (rows)."""
    affinity = torch.exp(torch.mm(embeddings, bank_embeddings.t()) / temperature)
    affinity = affinity / affinity.sum(1, keepdim=True)
    return alpha * probs + (1.0 - alpha) * torch.mm(affinity, bank_probs)


def pseudo_label_graph(probs: torch.Tensor, cutoff: float) -> torch.Tensor:
    """Row-normalised ``p_i . p_j`` with self-loops, edges below ``cutoff`` removed."""
    graph = torch.mm(probs, probs.t())
    graph.fill_diagonal_(1.0)
    graph = graph * (graph >= cutoff).to(graph.dtype)
    return graph / graph.sum(dim=1, keepdim=True)


def graph_contrastive_loss(embeddings_0: torch.Tensor, embeddings_1: torch.Tensor, graph: torch.Tensor,
                           temperature: float) -> torch.Tensor:
    """Cross-entropy between the graph rows and the softmax of the embedding similarities."""
    similarity = torch.exp(torch.mm(full_precision(embeddings_0), full_precision(embeddings_1).t()) / temperature)
    similarity = similarity / similarity.sum(1, keepdim=True)
    return -(torch.log(similarity + 1e-7) * graph).sum(1).mean()


class CoMatch(SSLAlgorithm):
    """Memory-smoothed pseudo-labels and a contrastive loss shaped by the pseudo-label graph."""

    name = "comatch"
    description = "memory-smoothed pseudo-labels + contrastive embeddings shaped by a pseudo-label graph"
    config_options: ClassVar[tuple[Option, ...]] = (
        temperature_option(0.2),
        p_cutoff_option(0.95),
        Option("contrast_p_cutoff", float, 0.8, "Pseudo-label similarity below which two samples are not "
               "connected in the graph.", minimum=0, maximum=1, usb=True),
        Option("contrast_loss_ratio", float, 1.0, "Weight of the graph contrastive loss.", minimum=0, usb=True),
        Option("proj_size", int, 64, "Size of the projected embedding.", minimum=1, usb=True),
        Option("queue_batch", int, 5, "Steps of embeddings and probabilities the memory bank holds.", minimum=1,
               usb=True),
        Option("smoothing_alpha", float, 0.9, "Weight of the model's own probabilities in memory smoothing.",
               minimum=0, maximum=1, usb=True),
        Option("da_len", int, 32, "Batches in the distribution alignment queue.", minimum=1, usb=True),
        Option("hard_label", bool, False, "Accepted for USB's files; CoMatch's targets are always soft (as in "
               "USB).", usb=True),
        Option("use_epass", bool, False, "EPASS: average three projection heads before normalising (USB's "
               "classic-CV files turn it on).", usb=True),
        ulb_loss_ratio_option(1.0),
    )

    @classmethod
    def views_per_sample(cls, config: Config) -> tuple[int, int]:
        return 1, 2  # a weak view and two strong ones

    def heads(self, config: Config, num_features: int) -> dict[str, nn.Module]:
        return {"proj": ProjectionHead(num_features, config.proj_size, ensemble=3 if config.use_epass else 1)}

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        return {
            "x_lb": self.augment.weak(images), "y_lb": targets, "x_ulb_w": self.augment.weak(unlabelled),
            "x_ulb_s_0": self.augment.strong(unlabelled), "x_ulb_s_1": self.augment.strong(unlabelled),
        }

    def update_bank(self, embeddings: torch.Tensor, probs: torch.Tensor) -> None:
        """Write one step's rows (of every process) at the pointer; the bank holds ``queue_batch`` steps."""
        embeddings, probs = gather_from_ranks(embeddings), gather_from_ranks(probs)
        buffers = self.buffers
        if "bank_embeddings" not in buffers:
            rows = self.config.queue_batch * embeddings.shape[0]
            buffers["bank_embeddings"] = embeddings.new_zeros(rows, embeddings.shape[1])
            buffers["bank_probs"] = probs.new_zeros(rows, probs.shape[1])
            buffers["bank_ptr"] = 0
        pointer = int(buffers["bank_ptr"])
        length = embeddings.shape[0]
        buffers["bank_embeddings"][pointer : pointer + length] = embeddings
        buffers["bank_probs"][pointer : pointer + length] = probs
        buffers["bank_ptr"] = (pointer + length) % buffers["bank_embeddings"].shape[0]

    def train_step(  # type: ignore[override]
        self, x_lb: torch.Tensor, y_lb: torch.Tensor, x_ulb_w: torch.Tensor, x_ulb_s_0: torch.Tensor,
        x_ulb_s_1: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        outputs = self.forward_outputs(x_lb, x_ulb_w, x_ulb_s_0, x_ulb_s_1)  # use_cat: false -> the weak view last
        logits_lb, logits_w, logits_s_0, _ = (part["logits"] for part in outputs)
        proj_lb, proj_w, proj_s_0, proj_s_1 = (part["proj"] for part in outputs)
        sup_loss = F.cross_entropy(full_precision(logits_lb), y_lb)

        with torch.no_grad():
            probs = probabilities(logits_w)
            probs = self.align("queue", probs, "uniform", length=config.da_len)
            own_probs = probs
            embeddings_w = full_precision(proj_w.detach())
            if self.epoch > 0 and self.global_step > config.queue_batch:  # USB's condition
                probs = memory_smoothing(probs, embeddings_w, self.buffers["bank_embeddings"],
                                         self.buffers["bank_probs"], config.T, config.smoothing_alpha)
            mask = self.mask("fixed", probs, p_cutoff=config.p_cutoff)
            self.update_bank(torch.cat((embeddings_w, full_precision(proj_lb.detach()))),
                             torch.cat((own_probs, one_hot(y_lb, probs.shape[-1]))))
            graph = pseudo_label_graph(probs, config.contrast_p_cutoff)

        targets = self.pseudo_labels("soft", probs, temperature=1.0)
        unsup_loss = masked_loss(logits_s_0, targets, mask)
        contrast_loss = graph_contrastive_loss(proj_s_0, proj_s_1, graph, config.T)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss + config.contrast_loss_ratio * contrast_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "contrast_loss": contrast_loss,
                      "mask_ratio": mask.mean()}
