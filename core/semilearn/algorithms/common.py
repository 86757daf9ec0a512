"""What the SSL algorithms share: the policy calls, their saved state, losses and views.

:class:`SSLAlgorithm` is the base of the built-in semi-supervised algorithms. It calls
the registered SSL policies (:mod:`semilearn.policy`: masks, pseudo-labels, distribution
alignment) with their parameters and the state dict of each use, keeps that state and any
algorithm buffers (memory banks, queues) in checkpoints, and draws the views a step needs
from the engine's sample streams and batched augmentation. Its step helpers
(:meth:`~SSLAlgorithm.forward_logits`, :meth:`~SSLAlgorithm.forward_outputs`,
:meth:`~SSLAlgorithm.pseudo_label`, with
:func:`probabilities` and :func:`masked_loss`) keep each FixMatch-family ``train_step``
a few lines that read as its paper.

The functions below are the pieces several algorithms use: the cross-entropy and
mean-squared consistency losses, the unsupervised warm-up ramp, MixUp, and batched
rotations. None of them synchronises with the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..algorithm import AlgorithmBase
from ..config import Config, Option
from ..data.modality import count, take
from ..errors import PluginError
from ..nets.heads import NetWithHeads, frozen_batch_norm_stats, unwrap
from ..policy import Policy
from ..tree import map_tree
from .policies import gather_from_ranks, labelled_distribution

if TYPE_CHECKING:
    from ..data.base import SSLData
    from ..plugins import PluginManager

__all__ = [
    "SSLAlgorithm",
    "split",
    "chunk_view",
    "full_precision",
    "cross_entropy",
    "supervised_loss",
    "probabilities",
    "masked_loss",
    "mse_consistency",
    "unsup_ramp",
    "mixup",
    "sample_mixup_lambda",
    "rotate_batch",
    "four_rotations",
    "one_hot",
    "p_cutoff_option",
    "temperature_option",
    "hard_label_option",
    "sharpen_soft_labels_option",
    "ulb_loss_ratio_option",
    "unsup_warm_up_option",
    "ema_p_option",
    "joint_forward_option",
]


# ---------------------------------------------------------------------------
# Configuration keys several algorithms share (USB's names and meanings).
# ---------------------------------------------------------------------------


def p_cutoff_option(default: float = 0.95) -> Option:
    return Option("p_cutoff", float, default, "Confidence a prediction needs for its pseudo-label to count.",
                  minimum=0, maximum=1, usb=True)


def temperature_option(default: float = 0.5) -> Option:
    return Option("T", float, default, "Temperature that sharpens soft pseudo-labels (lower is sharper).",
                  minimum=0, exclusive_minimum=True, usb=True)


def hard_label_option(default: bool = True) -> Option:
    return Option("hard_label", bool, default, "Use the arg-max class as the pseudo-label (else the "
                  "distribution sharpened with T).", usb=True)


def sharpen_soft_labels_option() -> Option:
    return Option("sharpen_soft_labels", bool, False, "Sharpen soft pseudo-labels with T (USB declares T but "
                  "uses the weak view's probabilities unchanged as soft targets).")


def ulb_loss_ratio_option(default: float = 1.0) -> Option:
    return Option("ulb_loss_ratio", float, default, "Weight of the unlabelled loss (the paper's lambda_u).",
                  minimum=0, aliases=("lambda_u",), usb=True)


def unsup_warm_up_option(default: float = 0.4) -> Option:
    return Option("unsup_warm_up", float, default, "Fraction of the run over which the unlabelled loss weight "
                  "ramps linearly from 0 to its full value.", minimum=0, maximum=1, usb=True)


def joint_forward_option() -> Option:
    return Option("joint_forward", bool, False, "Put all views through one forward pass (faster; batch norm sees "
                  "them together). USB gives each view a pass of its own, and only the first moves the batch-norm "
                  "running statistics.")


def ema_p_option(default: float = 0.999) -> Option:
    return Option("ema_p", float, default, "Momentum of the running class-probability estimates.",
                  minimum=0, maximum=1, usb=True)


# ---------------------------------------------------------------------------
# Losses and schedules.
# ---------------------------------------------------------------------------


def full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 when it is in a half precision (bfloat16 or float16 outputs under
    autocast), else as it is: losses and probabilities are computed in at least float32, and in
    float64 where the network runs in float64 (the parity fixtures, tests/parity/README.md)."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy against class indices ``[B]`` or distributions ``[B, C]``."""
    if targets.ndim == logits.ndim:
        return -(targets * F.log_softmax(full_precision(logits), dim=-1)).sum(dim=-1)
    return F.cross_entropy(full_precision(logits), targets, reduction="none")


def supervised_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy against class indices, reduced as USB's ``ce_loss(..., reduction='mean')``
    (by PyTorch's mean reduction, whose last bit can differ from a mean of per-sample losses)."""
    return F.cross_entropy(full_precision(logits), targets)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """``softmax(logits)`` detached, in at least float32: what policies and pseudo-labels are made from."""
    return torch.softmax(full_precision(logits.detach()), dim=-1)


def masked_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean over the batch of the cross-entropy against ``targets``, weighted by ``mask``
    (a sample with weight 0 counts in the mean's denominator, as in USB)."""
    return (cross_entropy(logits, targets) * mask).mean()


def mse_consistency(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared difference between ``softmax(logits)`` and target distributions."""
    return ((torch.softmax(full_precision(logits), dim=-1) - targets) ** 2).mean(dim=-1)


def unsup_ramp(step: int, num_train_iter: int, warm_up: float) -> float:
    """Linear warm-up of the unlabelled loss weight: ``clip(step / (warm_up * T), 0, 1)``.

    ``step`` counts finished steps (0 in the first step), as USB's iteration counter.
    """
    length = warm_up * num_train_iter
    if length <= 0:
        return 1.0
    return float(min(max(step / length, 0.0), 1.0))


def one_hot(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(targets, num_classes).float()


def sample_mixup_lambda(alpha: float) -> float:
    """MixMatch's ``lambda' = max(lambda, 1 - lambda)``, ``lambda ~ Beta(alpha, alpha)``.

    Drawn on the host from NumPy's global generator (whose state checkpoints carry), so
    nothing waits for the device.
    """
    if alpha <= 0:
        return 1.0
    value = float(np.random.beta(alpha, alpha))
    return max(value, 1.0 - value)


def mixup(inputs: torch.Tensor, targets: torch.Tensor, lam: float | torch.Tensor,
          permutation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each sample (and its target) with the sample ``permutation`` points to."""
    mixed_inputs = lam * inputs + (1.0 - lam) * inputs[permutation]
    mixed_targets = lam * targets + (1.0 - lam) * targets[permutation]
    return mixed_inputs, mixed_targets


def four_rotations(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image rotated by 0, 90, 180 and 270 degrees: ``[4B, ...]`` and the labels 0..3."""
    batch = images.shape[0]
    rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)])
    labels = torch.arange(4, device=images.device).repeat_interleave(batch)
    return rotated, labels


def rotate_batch(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate image ``i`` by ``turns[i]`` quarter turns (counter-clockwise); square images."""
    out = images
    select = turns.view(-1, *([1] * (images.ndim - 1)))
    for k in range(1, 4):
        out = torch.where(select == k, torch.rot90(images, k, dims=(-2, -1)), out)
    return out


# ---------------------------------------------------------------------------
# The base class.
# ---------------------------------------------------------------------------


RETIRED_POLICY_HOOKS = ("compute_mask", "make_pseudo_labels", "align_distribution")


def _detached_copy(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


class SSLAlgorithm(AlgorithmBase):
    """Base of the built-in SSL algorithms: policy calls, checkpointed state, views.

    State that survives a resume lives in two dicts, both saved by
    :meth:`algorithm_state` and restored by :meth:`load_algorithm_state`:

    * ``policy_state`` -- one dict per policy use (``"mask"``, ``"align"`` ...), handed
      to the policy hook points, which keep their running estimates there;
    * ``buffers`` -- the algorithm's own (memory banks, queues, pointers).

    Values are tensors, numbers, strings, booleans and lists or dicts of those, so that
    a checkpoint loads with ``torch.load(weights_only=True)``.
    """

    def __init__(
        self,
        config: Config,
        data: SSLData,
        model: nn.Module,
        manager: PluginManager,
        run_dir: Path,
        device: torch.device,
    ) -> None:
        heads = self.heads(config, int(model.num_features))  # type: ignore[arg-type]
        if heads:
            model = NetWithHeads(model, heads)
        super().__init__(config, data, model, manager, run_dir, device)
        self.policy_state: dict[str, dict[str, Any]] = {}
        self.buffers: dict[str, Any] = {}
        self._policies: dict[str, Policy] = {}
        # the retired policy hook points some installed plugin still implements (asked first)
        self._retired_hooks = frozenset(name for name in RETIRED_POLICY_HOOKS
                                        if getattr(manager.hook, name).get_hookimpls())

    def heads(self, config: Config, num_features: int) -> dict[str, nn.Module]:
        """Extra heads on the network's features, by output name (see :mod:`semilearn.nets.heads`).

        Called before the base initialiser builds the optimizer, so the heads train with
        the network and are part of the EMA model and checkpoints. None by default.
        """
        return {}

    # -- policies -------------------------------------------------------------

    def state_for(self, use: str) -> dict[str, Any]:
        """The state dict of one use of a policy (created empty on first use)."""
        return self.policy_state.setdefault(use, {})

    def policy(self, kind: str, name: str) -> Policy:
        """The registered policy ``kind/name`` (see :mod:`semilearn.policy`)."""
        key = f"{kind}/{name}"
        policy = self._policies.get(key)
        if policy is None:
            registry = self.manager.registry("policy")
            if key not in registry:
                known = ", ".join(sorted(k.split("/", 1)[1] for k in registry.names() if k.startswith(kind + "/")))
                raise PluginError(
                    f"algorithm '{self.name}' asks for the {kind} policy '{name}', which no plugin registers "
                    f"(known: {known or 'none'}; is the built-in 'policies' plugin disabled?)"
                )
            policy = self._policies[key] = registry.get(key)
        return policy

    def mask(self, name: str, probs: torch.Tensor, *, use: str = "mask", **parameters: Any) -> torch.Tensor:
        """Weights in [0, 1] for ``probs`` from mask policy ``name``, given its ``parameters``
        and the state of ``use``."""
        policy, state = self.policy("mask", name), self.state_for(use)
        if "compute_mask" in self._retired_hooks:
            answer = self.hook.compute_mask(algorithm=self, policy=name, probs=probs, state=state,
                                            probs_lb=parameters.get("probs_lb"), indices=parameters.get("indices"))
            if answer is not None:
                return answer
        return policy(probs=probs, state=state, gather=gather_from_ranks, **parameters)

    def pseudo_labels(self, name: str, probs: torch.Tensor, **parameters: Any) -> torch.Tensor:
        """Targets for ``probs`` from pseudo-label policy ``name`` (``"hard"``, ``"soft"``)."""
        policy = self.policy("pseudo_labels", name)
        if "make_pseudo_labels" in self._retired_hooks:
            answer = self.hook.make_pseudo_labels(algorithm=self, policy=name, probs=probs,
                                                  temperature=parameters.get("temperature", 1.0))
            if answer is not None:
                return answer
        return policy(probs=probs, **parameters)

    def align(self, name: str, probs: torch.Tensor, target: str, *, use: str = "align",
              **parameters: Any) -> torch.Tensor:
        """``probs`` aligned towards ``target`` by alignment policy ``name``."""
        policy, state = self.policy("alignment", name), self.state_for(use)
        if "align_distribution" in self._retired_hooks:
            answer = self.hook.align_distribution(algorithm=self, policy=name, probs=probs, state=state,
                                                  target=target, probs_lb=parameters.get("probs_lb"))
            if answer is not None:
                return answer
        return policy(probs=probs, state=state, target=target, labelled=self._labelled_distribution,
                      gather=gather_from_ranks, **parameters)

    def _labelled_distribution(self) -> torch.Tensor:
        return labelled_distribution(self.data.labelled_targets, self.data.num_classes)

    def pseudo_label(self, probs: torch.Tensor) -> torch.Tensor:
        """The pseudo-labels of the FixMatch family: the arg-max class with ``hard_label``,
        else ``probs`` as soft targets (sharpened with ``T`` only with ``sharpen_soft_labels``,
        as USB's FixMatch, FlexMatch, AdaMatch, DeFixMatch and UDA use them unchanged)."""
        if self.config.hard_label:
            return self.pseudo_labels("hard", probs)
        return self.pseudo_labels("soft", probs, temperature=self.soft_label_temperature())

    def soft_label_temperature(self) -> float:
        """The temperature of soft pseudo-labels: ``T`` with ``sharpen_soft_labels``, else 1."""
        return float(self.config.T) if self.config.get("sharpen_soft_labels") else 1.0

    def targets_from_logits(self, logits: torch.Tensor, hard: bool) -> torch.Tensor:
        """Pseudo-labels as USB's Dash, FreeMatch and SoftMatch make them from the weak logits:
        the arg-max class, or ``softmax(logits / T)`` computed as such (the ``"soft"`` policy
        at temperature 1 keeps the distribution it is given)."""
        weak = full_precision(logits.detach())
        if hard:
            return self.pseudo_labels("hard", torch.softmax(weak, dim=-1))
        return self.pseudo_labels("soft", torch.softmax(weak / float(self.config.T), dim=-1), temperature=1.0)

    def unsup_weight(self, warm_up: float) -> float:
        """The unsupervised warm-up factor of this step (see :func:`unsup_ramp`)."""
        return unsup_ramp(self.global_step, self.num_train_iter, warm_up)

    # -- views ----------------------------------------------------------------

    def draw_labelled(self) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """The next labelled batch on the training device: indices, samples (uint8 images), targets."""
        index = self.labelled_stream.next()
        images, targets = self.gather(self.data.labelled_samples, index), self.gather(self.data.labelled_targets, index)
        return index.to(self.device, non_blocking=True), images, targets

    def draw_unlabelled(self) -> tuple[torch.Tensor, Any]:
        """The next unlabelled batch on the training device: indices (into the unlabelled set), samples."""
        if self.unlabelled_stream is None:  # pragma: no cover - every SSL algorithm has one
            raise RuntimeError(f"algorithm '{self.name}' draws unlabelled data but has no unlabelled stream")
        index = self.unlabelled_stream.next()
        return index.to(self.device, non_blocking=True), self.gather(self.data.unlabelled_samples, index)

    def forward_views(self, *views: Any) -> tuple[dict[str, torch.Tensor], list[int]]:
        """One forward pass over ``views`` joined by the modality; returns the outputs and
        view sizes.

        Use :func:`split` on an output with the sizes to get the per-view parts.
        """
        sizes = [count(view) for view in views]
        return self.model(self.augment.join(views) if len(views) > 1 else views[0]), sizes

    def forward_outputs(self, *views: Any, weak: int | None = 1) -> list[dict[str, torch.Tensor]]:
        """The network's outputs for each of ``views``, as USB's algorithms with a ``use_cat``
        branch compute them.

        With ``use_cat`` (the default), one pass over all views joined by the modality. Without,
        each view has a pass of its own, as USB's ``use_cat: False`` branch: the views in the
        order given, except the one at index ``weak``, which goes last and under
        ``torch.no_grad()`` (``weak=None``: every view in order, all with gradients, as USB's
        SimMatch). Every pass is a training-mode pass that moves the batch-norm running
        statistics, as USB's are, and normalises with its own batch's statistics; a text view
        is padded on its own. The first pass goes through the (possibly distributed) model,
        the others through the network inside it, as :meth:`forward_each`.
        """
        if self.config.get("use_cat", True) or len(views) == 1:
            outputs, sizes = self.forward_views(*views)
            parts = {name: split(value, sizes) for name, value in outputs.items()}
            return [{name: parts[name][index] for name in parts} for index in range(len(views))]
        order = [index for index in range(len(views)) if index != weak]
        network = unwrap(self.model)  # extra passes do not go through DistributedDataParallel's forward
        results: dict[int, dict[str, torch.Tensor]] = {}
        for position, index in enumerate(order):
            results[index] = dict((self.model if position == 0 else network)(views[index]))
        if weak is not None:
            with torch.no_grad():
                results[weak] = dict((self.model if not order else network)(views[weak]))
        return [results[index] for index in range(len(views))]

    def forward_logits(self, *views: Any, weak: int | None = 1) -> list[torch.Tensor]:
        """The logits of each of ``views``: one pass over all of them, or with ``use_cat: false``
        a pass for each (see :meth:`forward_outputs`; ``weak`` is the index of the weak view)."""
        return [outputs["logits"] for outputs in self.forward_outputs(*views, weak=weak)]

    def host_random(self, draw: str, *args: Any) -> torch.Tensor:
        """``torch.<draw>(*args)`` from torch's default CPU generator, on the training device.

        USB draws MixUp permutations and VAT noise there; the engine seeds that generator at
        the start of every step by (seed, rank, step), so resumed runs draw the same. The
        copy to an accelerator is asynchronous (pinned memory): nothing waits for the device.
        """
        values: torch.Tensor = getattr(torch, draw)(*args)
        if self.device.type == "cpu":
            return values
        return values.pin_memory().to(self.device, non_blocking=True)

    def forward_each(self, *views: Any) -> list[dict[str, torch.Tensor]]:
        """Each view through the network on its own, as USB's Pi-Model, Mean Teacher, VAT,
        MixMatch and ReMixMatch do: the first pass moves the batch-norm running statistics,
        the others leave them alone, and each normalises with its own batch's statistics.
        Gradients flow through every pass. With ``joint_forward`` all views share one pass.
        """
        if self.config.get("joint_forward"):
            outputs, sizes = self.forward_views(*views)
            parts = {name: split(value, sizes) for name, value in outputs.items()}
            return [{name: parts[name][index] for name in parts} for index in range(len(views))]
        results = [self.model(views[0])]
        network = unwrap(self.model)  # extra passes do not go through DistributedDataParallel's forward
        with frozen_batch_norm_stats(network):
            results.extend(network(view) for view in views[1:])
        return results

    def frozen_passes(self, *views: Any) -> list[dict[str, torch.Tensor]]:
        """The outputs of each of ``views``, with gradients, from passes that leave the
        batch-norm running statistics alone (USB's ``freeze_bn`` around MixMatch's and
        ReMixMatch's feature passes for ``mixup_manifold``). Each view has a pass of its
        own, the first through the (possibly distributed) model; with ``joint_forward`` one
        pass over all of them."""
        network = unwrap(self.model)
        with frozen_batch_norm_stats(network):
            if self.config.get("joint_forward") and len(views) > 1:
                outputs, sizes = self.forward_views(*views)
                parts = {name: split(value, sizes) for name, value in outputs.items()}
                return [{name: parts[name][index] for name in parts} for index in range(len(views))]
            return [dict((self.model if index == 0 else network)(view)) for index, view in enumerate(views)]

    def forward_in_chunks(self, inputs: torch.Tensor, chunk: int) -> dict[str, torch.Tensor]:
        """``inputs`` through the network in chunks of ``chunk`` samples, as USB's MixMatch and
        ReMixMatch forward their mixed batch: the first chunk moves the batch-norm running
        statistics, each further chunk has a pass of its own without moving them. The
        outputs are concatenated back. With ``joint_forward``, one pass over all of them.
        """
        if self.config.get("joint_forward"):
            return dict(self.model(inputs))
        parts = self.forward_each(*torch.split(inputs, chunk))
        return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}

    # -- checkpoint state -----------------------------------------------------

    def algorithm_state(self) -> dict[str, Any]:
        return {"policy_state": map_tree(self.policy_state, _detached_copy),
                "buffers": map_tree(self.buffers, _detached_copy)}

    def load_algorithm_state(self, state: Mapping[str, Any]) -> None:
        def on_device(value: Any) -> Any:
            return value.to(self.device) if isinstance(value, torch.Tensor) else value

        self.policy_state = {use: dict(map_tree(values, on_device))
                             for use, values in state.get("policy_state", {}).items()}
        self.buffers = dict(map_tree(state.get("buffers", {}), on_device))


def split(tensor: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """The per-view parts of a concatenated forward pass's output."""
    return list(torch.split(tensor, sizes))


def chunk_view(view: Any, parts: int) -> list[Any]:
    """``view`` (a tensor, or a dict of tensors with the batch first) cut along the batch into
    ``parts`` equal views, as ``torch.chunk`` cuts a tensor whose batch ``parts`` divides."""
    size = count(view) // parts
    return [take(view, slice(index * size, (index + 1) * size)) for index in range(parts)]
