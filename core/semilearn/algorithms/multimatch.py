"""MultiMatch (Sirbu et al., 2025): three classifier heads label each other's strong views.

A multi-head network (``head_logits``: ``[B, 3, C]`` beside ``logits``, their mean, which
evaluation and prediction use) trains each head on the strong views with pseudo-labels
made by the *other two* heads from the weak views:

* **Aggregated pseudo-label margins (APM).** Every step, each head's margins for every
  unlabelled sample it sees are folded into a per-sample memory ``apm[head, sample, class]``
  with the weight ``smoothness / (1 + epoch)``: for the arg-max class the gap between the
  top two logits, for every other class its logit minus the top logit.
* **Agreement.** For head ``h`` with others ``h1`` and ``h2`` (their arg-max classes
  ``l1``, ``l2``), a class passes when its APM in the other head reaches the cut-off
  ``apm_cutoff[h, class]``. Agreeing heads of which both pass give the label with weight
  1; agreeing heads of which one passes, or disagreeing heads of which exactly one passes,
  give that label with weight ``apm_disagreement_weight``; anything else has weight 0. In
  the first epoch there are no cut-offs and every weight is 0.
* **Auxiliary mask.** The weight is multiplied by the larger of the two other heads'
  masks from a per-head thresholding policy (``threshold_algo``: FreeMatch's self-adaptive
  thresholds, FlexMatch's curriculum, or none).
* **Cut-offs.** ``apm_cutoff[h, c]`` is the ``apm_percentile`` quantile of the APM of class
  ``c`` over the samples where ``h1`` and ``h2`` both last predicted ``c`` (at least 0
  unless ``no_low``), recomputed every ``num_recalibrate_iter`` steps.

The loss is the sum of the heads' supervised cross-entropies (their mean with
``average_losses``) plus ``ulb_loss_ratio`` times the mean over heads of the weighted
cross-entropies of the strong views.

Faithful to USB's code, which differs from its comments in two places, each with a key
for the intended behaviour (USB's applies by default and whenever USB's files are read):

* With ``num_recalibrate_iter: 0`` USB means "every epoch", but its end-of-epoch test is
  never true, so the cut-offs stay 0 for the whole run. ``recalibrate_each_epoch: true``
  recomputes them at the end of each epoch instead.
* Recomputing the cut-offs of a head, USB stops at the first class no sample agrees on
  (its cut-off becomes 0, the following classes keep theirs). ``apm_cutoff_every_class:
  true`` goes on to the following classes.

As USB, each head's auxiliary mask policy is asked twice a step (once for each other head's
loss), so its running estimates move twice. The APM memory is the same on every process
(the indices and logits of the whole global batch are folded in).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, Option
from ..data.modality import count
from ..errors import ConfigError
from .common import (
    SSLAlgorithm,
    ema_p_option,
    full_precision,
    hard_label_option,
    p_cutoff_option,
    probabilities,
    temperature_option,
    ulb_loss_ratio_option,
)
from .policies import gather_from_ranks

if TYPE_CHECKING:
    from ..data.base import SSLData
    from ..plugins import PluginManager

__all__ = ["MultiMatch", "HEADS", "OTHERS", "fold_margins", "agreement_targets", "recalibrated_cutoffs"]

HEADS = 3  # USB's MultiMatch pairs each head with the two others: three heads exactly
OTHERS = ((1, 2), (0, 2), (0, 1))  # head -> the heads that label its strong views
THRESHOLD_ALGOS = ("freematch", "flexmatch", "none")


def fold_margins(apm: torch.Tensor, weak_labels: torch.Tensor, logits_w: torch.Tensor, indices: torch.Tensor,
                 smoothness: float, epoch: int) -> None:
    """Fold one head's weak-view margins into its APM memory, in place (USB's ``update``).

    ``apm`` is ``[N + 1, C]`` and ``weak_labels`` ``[N + 1]`` for that head, for the ``N``
    unlabelled samples and a last, scratch row; ``logits_w`` are the head's weak logits of
    the samples ``indices``. A sample's margins are ``logits - top logit``, except for the
    arg-max class: ``top - second``. They are folded in as ``margins * smoothness / (1 +
    epoch) + apm * (1 - smoothness / (1 + epoch))``, in USB's order of operations, and the arg-max class is recorded. A sample that occurs twice in the batch (a
    batch that spans two passes over the data) is folded in twice, in batch order, as USB's
    loop does; nothing waits for the device.
    """
    logits = full_precision(logits_w.detach())
    top, top_class = logits.topk(2, dim=-1)
    margins = logits - top[:, :1]
    margins.scatter_(1, top_class[:, :1], top[:, :1] - top[:, 1:2])
    scratch = apm.shape[0] - 1
    # occurrence[i]: how many earlier positions of the batch hold the same sample
    occurrence = (indices[:, None] == indices[None, :]).tril(-1).sum(dim=1)
    rounds = min(indices.numel(), math.ceil(indices.numel() / max(scratch, 1)) + 1)
    for round_ in range(rounds):
        # no sample twice within a round, so the writes do not collide; the rest go to the scratch row
        chosen = occurrence == round_
        index = torch.where(chosen, indices, torch.full_like(indices, scratch))
        apm[index] = margins * smoothness / (1 + epoch) + apm[index] * (1 - smoothness / (1 + epoch))
        weak_labels[index] = top_class[:, 0].to(weak_labels.dtype)


def agreement_targets(labels_1: torch.Tensor, labels_2: torch.Tensor, passes_1: torch.Tensor,
                      passes_2: torch.Tensor, disagreement_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The pseudo-labels and weights two heads give a third (USB's ``get_apm_label``).

    ``labels_k`` are the other heads' arg-max classes and ``passes_k`` whether their APM
    reaches the cut-off. Weight 1: they agree and both pass. Weight
    ``disagreement_weight``: they agree and one passes, or they disagree and exactly one
    passes (its label). Weight 0 otherwise (label 0, as USB sets it).
    """
    same = labels_1 == labels_2
    one_passes = passes_1 ^ passes_2
    labels = torch.where(same | passes_1, labels_1, labels_2)
    full = same & passes_1 & passes_2
    partial = one_passes  # agreeing or not, exactly one passes
    weights = full.float() + partial.float() * disagreement_weight
    labels = torch.where(full | partial, labels, torch.zeros_like(labels))
    return labels, weights


def recalibrated_cutoffs(cutoffs: torch.Tensor, apm: torch.Tensor, weak_labels: torch.Tensor, percentile: float,
                         no_low: bool, every_class: bool) -> torch.Tensor:
    """New ``[3, C]`` APM cut-offs (USB's ``after_train_step`` recalibration).

    For head ``h`` and class ``c``: the ``percentile`` quantile of the APM of ``c`` in the two
    other heads over the samples both last predicted as ``c`` (at least 0 unless ``no_low``).
    A class no sample agrees on gets 0 and, as in USB, ends that head's recalibration (the
    later classes keep their cut-offs) unless ``every_class``.
    """
    cutoffs = cutoffs.clone()
    for head, (first, second) in enumerate(OTHERS):
        agree = weak_labels[first] == weak_labels[second]
        for label in range(cutoffs.shape[1]):
            chosen = agree & (weak_labels[first] == label)
            if not bool(chosen.any()):
                cutoffs[head, label] = 0
                if every_class:
                    continue
                break
            values = torch.cat((apm[first][chosen][:, label], apm[second][chosen][:, label])).float()
            quantile = torch.quantile(values, percentile)
            cutoffs[head, label] = quantile if no_low else quantile.clamp_min(0)
    return cutoffs


class MultiMatch(SSLAlgorithm):
    """Three heads; each learns from the weak-view labels the other two agree on, by their margins."""

    name = "multimatch"
    description = "three heads label each other's strong views by agreement and aggregated margins (APM)"
    config_options: ClassVar[tuple[Option, ...]] = (
        Option("num_heads", int, HEADS, "Classifier heads of the network (USB's MultiMatch: 3 exactly).",
               choices=(HEADS,), usb=True),
        Option("threshold_algo", str, "freematch", "The per-head mask that multiplies the APM weights: FreeMatch's "
               "self-adaptive thresholds, FlexMatch's curriculum, or none.", choices=THRESHOLD_ALGOS, usb=True),
        Option("apm_percentile", float, 0.05, "Quantile of the agreeing samples' APM that becomes a class's cut-off.",
               minimum=0, maximum=1, usb=True),
        Option("apm_disagreement_weight", float, 3.0, "Weight of a pseudo-label only one of the two other heads "
               "is confident in.", minimum=0, usb=True),
        Option("smoothness", float, 0.997, "Weight of a step's margins in the APM memory, divided by 1 + epoch.",
               minimum=0, maximum=1, usb=True),
        Option("no_low", bool, False, "Let cut-offs go below 0 (else they are at least 0).", usb=True),
        Option("num_recalibrate_iter", int, 0, "Recompute the cut-offs every this many steps; 0: as USB's code, "
               "never (see recalibrate_each_epoch).", minimum=0, usb=True),
        Option("recalibrate_each_epoch", bool, False, "With num_recalibrate_iter 0, recompute the cut-offs at the "
               "end of each epoch (what USB's comment intends; its code never does)."),
        Option("apm_cutoff_every_class", bool, False, "Recompute every class's cut-off (USB stops a head's "
               "recalibration at the first class no sample agrees on)."),
        Option("average_losses", bool, False, "Average the heads' supervised losses (else sum them).", usb=True),
        Option("adjust_clf_size", bool, False, "Heads of width features / 3 (read by the multi-head networks; "
               "USB's key).", usb=True),
        ema_p_option(0.999),
        p_cutoff_option(0.95),
        Option("thresh_warmup", bool, True, "FlexMatch's threshold warm-up (threshold_algo flexmatch).", usb=True),
        Option("use_quantile", bool, False, "FreeMatch's 0.8-quantile confidence (threshold_algo freematch).",
               usb=True),
        Option("clip_thresh", bool, False, "Clip FreeMatch's global threshold to 0.95 (threshold_algo freematch).",
               usb=True),
        hard_label_option(True),
        temperature_option(0.5),
        Option("ent_loss_ratio", float, 0.01, "USB's MultiMatch declares it; nothing reads it.", minimum=0, usb=True),
        ulb_loss_ratio_option(1.0),
    )

    def __init__(self, config: Config, data: SSLData, model: nn.Module, manager: PluginManager, run_dir: Path,
                 device: torch.device) -> None:
        heads = getattr(model, "num_heads", None)
        if heads != config.num_heads:
            raise ConfigError(
                f"algorithm 'multimatch' needs a network with {config.num_heads} classifier heads (outputs "
                f"head_logits), such as bert_base_uncased_multihead of semilearn-nlp; net '{config.net}' has "
                f"{heads or 1}"
            )
        super().__init__(config, data, model, manager, run_dir, device)
        samples, classes = count(data.unlabelled_samples), data.num_classes
        # one row per unlabelled sample and a scratch row (see fold_margins)
        self.buffers = {
            "apm": torch.zeros(HEADS, samples + 1, classes, device=device),
            "apm_cutoff": torch.zeros(HEADS, classes, device=device),
            "weak_labels": torch.full((HEADS, samples + 1), -1, dtype=torch.long, device=device),
        }

    def sample_batch(self) -> dict[str, torch.Tensor]:
        _, samples, targets = self.draw_labelled()
        index, unlabelled = self.draw_unlabelled()
        return {
            "x_lb": self.augment.weak(samples), "y_lb": targets, "idx_ulb": index,
            "x_ulb_w": self.augment.weak(unlabelled), "x_ulb_s": self.augment.strong(unlabelled),
        }

    def auxiliary_mask(self, head: int, logits_w: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Head ``head``'s mask of its weak logits from the ``threshold_algo`` policy (its own state)."""
        config = self.config
        if config.threshold_algo == "none":
            return torch.ones(logits_w.shape[0], device=logits_w.device)
        probs = probabilities(logits_w)
        if config.threshold_algo == "freematch":
            return self.mask("freematch", probs, use=f"mask_{head}", momentum=config.ema_p,
                             use_quantile=config.use_quantile, clip_thresh=config.clip_thresh)
        return self.mask("flexmatch", probs, use=f"mask_{head}", indices=indices, p_cutoff=config.p_cutoff,
                         thresh_warmup=config.thresh_warmup, num_samples=count(self.data.unlabelled_samples))

    def train_step(  # type: ignore[override]
        self, x_lb: Any, y_lb: torch.Tensor, idx_ulb: torch.Tensor, x_ulb_w: Any, x_ulb_s: Any,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        out_lb, out_w, out_s = self.forward_outputs(x_lb, x_ulb_w, x_ulb_s)
        heads_lb, heads_w, heads_s = (out["head_logits"] for out in (out_lb, out_w, out_s))
        head_losses = [F.cross_entropy(full_precision(heads_lb[:, head]), y_lb) for head in range(HEADS)]
        sup_loss = torch.stack(head_losses).sum()
        if config.average_losses:
            sup_loss = sup_loss / HEADS

        apm, cutoffs, weak_labels = self.buffers["apm"], self.buffers["apm_cutoff"], self.buffers["weak_labels"]
        # the whole global batch, gathered once: [B_global] indices, [B_global, 3, C] weak logits
        all_indices, all_weak = gather_from_ranks(idx_ulb), gather_from_ranks(full_precision(heads_w.detach()))
        for head in range(HEADS):
            fold_margins(apm[head], weak_labels[head], all_weak[:, head], all_indices, config.smoothness, self.epoch)

        labels_w = heads_w.detach().argmax(dim=-1)  # [B, 3]
        unsup_losses: list[torch.Tensor] = []
        weights_sum: list[torch.Tensor] = []
        for head, (first, second) in enumerate(OTHERS):
            label_1, label_2 = labels_w[:, first], labels_w[:, second]
            passes_1 = apm[first, idx_ulb, label_1] >= cutoffs[head, label_1]
            passes_2 = apm[second, idx_ulb, label_2] >= cutoffs[head, label_2]
            targets, weights = agreement_targets(label_1, label_2, passes_1, passes_2, config.apm_disagreement_weight)
            if self.epoch == 0:  # no cut-offs yet: USB gives every sample of the first epoch weight 0
                weights = torch.zeros_like(weights)
            mask = torch.maximum(self.auxiliary_mask(first, heads_w[:, first], idx_ulb),
                                 self.auxiliary_mask(second, heads_w[:, second], idx_ulb))
            weighted = weights * mask
            losses = F.cross_entropy(full_precision(heads_s[:, head]), targets, reduction="none")
            unsup_losses.append((losses * weighted).mean())
            weights_sum.append((weighted > 0).float().mean())
        unsup_loss = torch.stack(unsup_losses).mean()

        if self._recalibrates():
            self.buffers["apm_cutoff"] = recalibrated_cutoffs(cutoffs, apm[:, :-1], weak_labels[:, :-1],
                                                              config.apm_percentile, config.no_low,
                                                              config.apm_cutoff_every_class)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss,
                      "mask_ratio": torch.stack(weights_sum).mean()}

    def _recalibrates(self) -> bool:
        """Whether this step ends with new cut-offs (USB: after the step, by its 0-based index)."""
        config, finished = self.config, self.global_step + 1
        if config.num_recalibrate_iter > 0:
            return finished % config.num_recalibrate_iter == 0
        return bool(config.recalibrate_each_epoch) and finished % self.iters_per_epoch == 0
