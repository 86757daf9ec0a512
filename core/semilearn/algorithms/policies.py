"""The built-in SSL policies as plain functions: confidence masks, pseudo-labels, alignment.

:data:`BUILTIN_POLICIES` names them (a :class:`semilearn.Policy` each); the built-in
``policies`` plugin registers them through the ``register_policies`` hook point. Each
function takes its parameters as arguments -- the algorithm passes the values of its
configuration keys, under USB's names where USB has them -- so that it can be read,
tested and reused on its own; a plugin that replaces a policy can call them to fall back
or to wrap them.

Everything runs on the device without host synchronisation: per-class counts are
``scatter_add`` sums, selections are ``torch.where`` and multiplicative masks.

Running estimates must agree on every process of a distributed run, so the policies that
keep them take ``gather``: a function returning a tensor from every process, concatenated
(:func:`gather_from_ranks` in a run; the identity by default). The mask of a sample uses
the local batch; the estimates are updated from the global one, as USB does.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import torch

from ..policy import Policy

__all__ = [
    "BUILTIN_POLICIES",
    "fixed_mask",
    "flexmatch_mask",
    "flexmatch_class_acc",
    "freematch_mask",
    "softmatch_weights",
    "relative_mask",
    "dash_mask",
    "hard_labels",
    "sharpen",
    "ema_alignment",
    "queue_alignment",
    "class_counts",
    "labelled_distribution",
    "gather_from_ranks",
]

_EPSILON = 1e-6  # keeps the alignment ratio finite for classes never predicted

Gather = Callable[[torch.Tensor], torch.Tensor]


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def gather_from_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` from every process of a distributed run, concatenated along dimension 0 in
    rank order (every rank must pass the same shape); ``tensor`` itself otherwise.

    For detached statistics only: no gradient flows through the gather.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def class_counts(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """How many of ``labels`` fall in each class, as a ``[num_classes]`` tensor (no host sync).

    ``torch.bincount`` would read the largest label back to the host on an accelerator;
    a scatter into a fixed-size tensor does not.
    """
    counts = torch.zeros(num_classes, dtype=dtype, device=labels.device)
    return counts.scatter_add_(0, labels.reshape(-1), torch.ones(labels.numel(), dtype=dtype, device=labels.device))


# ---------------------------------------------------------------------------
# Confidence masks.
# ---------------------------------------------------------------------------


def fixed_mask(probs: torch.Tensor, p_cutoff: float) -> torch.Tensor:
    """1 where the top class probability reaches ``p_cutoff`` (FixMatch)."""
    return (probs.max(dim=-1).values >= p_cutoff).to(probs.dtype)


def flexmatch_class_acc(selected_label: torch.Tensor, num_classes: int, thresh_warmup: bool,
                        previous: torch.Tensor) -> torch.Tensor:
    """FlexMatch's learning effect per class from the latest confident prediction of each sample.

    ``selected_label`` holds, per unlabelled sample, the class it was last predicted with
    confidence ``>= p_cutoff`` (-1 when never). With ``n_c`` samples per class and ``n_-1``
    unused ones, the effect of class ``c`` is ``n_c / max(n_0, ..., n_-1)`` while
    ``thresh_warmup`` (the unused samples dominate early, so thresholds rise gradually
    from zero), else ``n_c / max(n_0, ...)``. Nothing changes while every sample carries
    the same label (``-1`` included), as in the paper's implementation.
    """
    counts = class_counts(selected_label + 1, num_classes + 1, previous.dtype)  # counts[0]: unused samples
    per_class = counts[1:]
    largest = counts.max() if thresh_warmup else per_class.max()
    updated = per_class / largest.clamp_min(1.0)
    return torch.where(counts.max() < selected_label.numel(), updated, previous)


def flexmatch_mask(
    probs: torch.Tensor,
    indices: torch.Tensor,
    state: MutableMapping[str, Any],
    p_cutoff: float,
    thresh_warmup: bool,
    num_samples: int,
    gather: Gather = _local,
) -> torch.Tensor:
    """FlexMatch's curriculum pseudo-labelling (Zhang et al., 2021): class-wise thresholds.

    The threshold of the predicted class ``c`` is ``p_cutoff * M(b_c)`` with the convex
    mapping ``M(b) = b / (2 - b)`` of its learning effect ``b_c`` (see
    :func:`flexmatch_class_acc`), computed before this batch is counted. Then every
    sample of the batch predicted with confidence ``>= p_cutoff`` records its class in
    ``state["selected_label"]`` and the effects are recomputed.
    """
    num_classes = probs.shape[-1]
    if "selected_label" not in state:
        state["selected_label"] = torch.full((num_samples,), -1, dtype=torch.long, device=probs.device)
        state["classwise_acc"] = torch.zeros(num_classes, dtype=probs.dtype, device=probs.device)
    acc = state["classwise_acc"]
    max_probs, max_idx = probs.max(dim=-1)
    effect = acc[max_idx]
    mask = (max_probs >= p_cutoff * (effect / (2.0 - effect))).to(probs.dtype)

    selected = state["selected_label"]
    all_indices, all_probs, all_idx = gather(indices), gather(max_probs), gather(max_idx)
    selected[all_indices] = torch.where(all_probs >= p_cutoff, all_idx, selected[all_indices])
    state["classwise_acc"] = flexmatch_class_acc(selected, num_classes, thresh_warmup, acc)
    return mask


def freematch_mask(
    probs: torch.Tensor,
    state: MutableMapping[str, Any],
    momentum: float,
    use_quantile: bool = False,
    clip_thresh: bool = False,
    gather: Gather = _local,
) -> torch.Tensor:
    """FreeMatch's self-adaptive thresholds (Wang et al., 2023).

    With EMA momentum ``m`` and this batch's top probabilities ``max_p``:
    the global threshold ``time_p <- m time_p + (1 - m) mean(max_p)`` (or the 0.8
    quantile with ``use_quantile``; clipped to 0.95 with ``clip_thresh``), the class
    distribution ``p_model <- m p_model + (1 - m) mean(probs)`` and the histogram of
    predicted classes ``label_hist``. A sample passes when
    ``max_p >= time_p * p_model[c] / max(p_model)`` for its predicted class ``c``.
    Everything starts at ``1 / C``, as in the paper.
    """
    num_classes = probs.shape[-1]
    if "time_p" not in state:  # the mean of a uniform row, as USB computes it (not 1 / C to the last bit)
        state["time_p"] = (torch.ones(num_classes, dtype=probs.dtype, device=probs.device) / num_classes).mean()
        state["p_model"] = torch.full((num_classes,), 1.0 / num_classes, dtype=probs.dtype, device=probs.device)
        state["label_hist"] = torch.full((num_classes,), 1.0 / num_classes, dtype=probs.dtype, device=probs.device)
    max_probs, max_idx = probs.max(dim=-1)
    all_probs = gather(probs)
    all_max, all_idx = all_probs.max(dim=-1)
    statistic = torch.quantile(all_max, 0.8) if use_quantile else all_max.mean()
    time_p = momentum * state["time_p"] + (1.0 - momentum) * statistic
    if clip_thresh:
        time_p = time_p.clamp(0.0, 0.95)
    p_model = momentum * state["p_model"] + (1.0 - momentum) * all_probs.mean(dim=0)
    histogram = class_counts(all_idx, num_classes, probs.dtype) / all_idx.numel()
    state["time_p"] = time_p
    state["p_model"] = p_model
    state["label_hist"] = momentum * state["label_hist"] + (1.0 - momentum) * histogram

    modulation = p_model / p_model.max()
    return (max_probs >= time_p * modulation[max_idx]).to(probs.dtype)


def softmatch_weights(
    probs: torch.Tensor,
    state: MutableMapping[str, Any],
    momentum: float,
    n_sigma: float,
    per_class: bool = False,
    gather: Gather = _local,
) -> torch.Tensor:
    """SoftMatch's truncated-Gaussian sample weights (Chen et al., 2023).

    The mean ``mu`` and variance ``var`` of the top probability are EMAs (momentum ``m``)
    of the batch mean and unbiased variance, starting at ``1 / C`` and 1. A sample with top
    probability ``p`` weighs 1 when ``p >= mu`` and ``exp(-(p - mu)^2 / (2 var / n_sigma^2))``
    below. With ``per_class`` there is one Gaussian per predicted class; a class with fewer
    than two samples in the batch keeps its estimate.
    """
    num_classes = probs.shape[-1]
    max_probs, max_idx = probs.max(dim=-1)
    shape: tuple[int, ...] = (num_classes,) if per_class else ()
    if "mu" not in state:
        state["mu"] = torch.full(shape, 1.0 / num_classes, dtype=probs.dtype, device=probs.device)
        state["var"] = torch.ones(shape, dtype=probs.dtype, device=probs.device)
    mu, var = state["mu"], state["var"]
    all_max, all_idx = gather(probs).max(dim=-1)
    if per_class:
        members = torch.nn.functional.one_hot(all_idx, num_classes).to(probs.dtype)  # [B, C]
        count = members.sum(dim=0)
        mean = (members * all_max[:, None]).sum(dim=0) / count.clamp_min(1.0)
        squares = (members * (all_max[:, None] - mean) ** 2).sum(dim=0)
        variance = squares / (count - 1.0).clamp_min(1.0)
        enough = count > 1
        mu = torch.where(enough, momentum * mu + (1.0 - momentum) * mean, mu)
        var = torch.where(enough, momentum * var + (1.0 - momentum) * variance, var)
        sample_mu, sample_var = mu[max_idx], var[max_idx]
    else:
        if all_max.numel() > 1:  # the new term in float64, rounded once, as USB's (it adds a host float)
            mu = momentum * mu + ((1.0 - momentum) * all_max.mean().double()).to(mu.dtype)
            var = momentum * var + ((1.0 - momentum) * all_max.var(correction=1).double()).to(var.dtype)
        sample_mu, sample_var = mu, var
    state["mu"], state["var"] = mu, var
    below = (max_probs - sample_mu).clamp(max=0.0)
    return torch.exp(-(below**2) / (2.0 * sample_var / n_sigma**2))


def relative_mask(probs: torch.Tensor, probs_lb: torch.Tensor, p_cutoff: float) -> torch.Tensor:
    """AdaMatch's relative threshold (Berthelot et al., 2022): ``p_cutoff`` times the mean
    top probability of the labelled batch."""
    threshold = p_cutoff * probs_lb.max(dim=-1).values.mean()
    return (probs.max(dim=-1).values >= threshold).to(probs.dtype)


def dash_mask(probs: torch.Tensor, rho: float | torch.Tensor, hard: bool, temperature: float) -> torch.Tensor:
    """Dash's loss-based selection (Xu et al., 2021): keep a sample when the cross-entropy of
    its prediction against its own pseudo-label (hard, or sharpened with ``temperature``)
    is at most ``rho``. For a hard label that loss is ``-log max(p)``."""
    log_probs = torch.log(probs.clamp_min(1e-30))
    if hard:
        loss = -log_probs.max(dim=-1).values
    else:
        loss = -(sharpen(probs, temperature) * log_probs).sum(dim=-1)
    return (loss <= rho).to(probs.dtype)


# ---------------------------------------------------------------------------
# Pseudo-labels.
# ---------------------------------------------------------------------------


def hard_labels(probs: torch.Tensor) -> torch.Tensor:
    """The arg-max class of each row."""
    return probs.argmax(dim=-1)


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """``p ** (1 / T)`` renormalised (as USB computes it); ``T = 1`` returns ``probs`` itself."""
    if temperature == 1.0:
        return probs
    powered = probs ** (1.0 / temperature)
    return powered / powered.sum(dim=-1, keepdim=True)


# ---------------------------------------------------------------------------
# Distribution alignment.
# ---------------------------------------------------------------------------


def labelled_distribution(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The class frequencies of the labelled set."""
    counts = class_counts(targets, num_classes, torch.float64)
    return counts / counts.sum()


def _initial_target(target: str, num_classes: int, probs: torch.Tensor,
                    labelled: Callable[[], torch.Tensor]) -> torch.Tensor:
    if target == "labelled":
        return labelled().to(device=probs.device, dtype=torch.float64)
    if target in ("uniform", "model"):
        return torch.full((num_classes,), 1.0 / num_classes, dtype=probs.dtype, device=probs.device)
    raise ValueError(f"unknown distribution alignment target '{target}' (uniform, labelled or model)")


def _aligned(probs: torch.Tensor, p_target: torch.Tensor, p_model: torch.Tensor) -> torch.Tensor:
    aligned = probs * (p_target + _EPSILON) / (p_model + _EPSILON)
    return aligned / aligned.sum(dim=-1, keepdim=True)


def ema_alignment(
    probs: torch.Tensor,
    state: MutableMapping[str, Any],
    target: str,
    momentum: float,
    probs_lb: torch.Tensor | None = None,
    labelled: Callable[[], torch.Tensor] | None = None,
    gather: Gather = _local,
) -> torch.Tensor:
    """Distribution alignment with an EMA estimate of the model's class distribution.

    ``p_model`` starts at the first batch's mean prediction; the ``"model"`` target is an
    EMA of the labelled batch's mean prediction (``probs_lb``), starting uniform.
    """
    num_classes = probs.shape[-1]
    mean = gather(probs).mean(dim=0)
    if "p_target" not in state:
        state["p_target"] = _initial_target(target, num_classes, probs, labelled or _no_labelled)
        state["p_model"] = mean
    else:
        state["p_model"] = momentum * state["p_model"] + (1.0 - momentum) * mean
    if target == "model":
        if probs_lb is None:
            raise ValueError("distribution alignment towards the 'model' target needs probs_lb")
        state["p_target"] = momentum * state["p_target"] + (1.0 - momentum) * gather(probs_lb).mean(dim=0)
    return _aligned(probs, state["p_target"], state["p_model"])


def queue_alignment(
    probs: torch.Tensor,
    state: MutableMapping[str, Any],
    target: str,
    length: int,
    probs_lb: torch.Tensor | None = None,
    labelled: Callable[[], torch.Tensor] | None = None,
    gather: Gather = _local,
) -> torch.Tensor:
    """Distribution alignment with ``p_model`` the mean of the last ``length`` batch means.

    The queue starts at zeros (so early batches weigh more, as in CoMatch and SimMatch);
    the write position is a Python integer, so the update needs no host synchronisation.
    The ``"model"`` target is a queue of labelled batch means in the same way. The queues
    are float32 whatever the network computes in, as USB's DistAlignQueueHook keeps them.
    """
    num_classes = probs.shape[-1]
    if "p_model_queue" not in state:
        state["p_model_queue"] = torch.zeros(length, num_classes, dtype=torch.float32, device=probs.device)
        state["p_model_ptr"] = 0
        if target == "model":
            state["p_target_queue"] = torch.zeros(length, num_classes, dtype=torch.float32, device=probs.device)
        elif target == "uniform":  # the mean of a queue of uniform rows, as USB computes it
            state["p_target"] = (torch.ones(length, num_classes, dtype=torch.float32, device=probs.device)
                                 / num_classes).mean(dim=0)
        else:
            state["p_target"] = _initial_target(target, num_classes, probs, labelled or _no_labelled)
    pointer = int(state["p_model_ptr"])
    state["p_model_queue"][pointer] = gather(probs).mean(dim=0)
    if target == "model":
        if probs_lb is None:
            raise ValueError("distribution alignment towards the 'model' target needs probs_lb")
        state["p_target_queue"][pointer] = gather(probs_lb).mean(dim=0)
        p_target = state["p_target_queue"].mean(dim=0)
    else:
        p_target = state["p_target"]
    state["p_model_ptr"] = (pointer + 1) % length
    return _aligned(probs, p_target, state["p_model_queue"].mean(dim=0))


def _no_labelled() -> torch.Tensor:
    raise ValueError("distribution alignment towards the 'labelled' target needs the labelled targets")


# ---------------------------------------------------------------------------
# The built-in policies by name (registered by the built-in ``policies`` plugin).
# ---------------------------------------------------------------------------

BUILTIN_POLICIES = (
    Policy("mask", "fixed", fixed_mask, "1 where the top probability reaches p_cutoff (FixMatch)"),
    Policy("mask", "flexmatch", flexmatch_mask, "class-wise curriculum thresholds from learning effects (FlexMatch)"),
    Policy("mask", "freematch", freematch_mask, "self-adaptive global and class-wise thresholds (FreeMatch)"),
    Policy("mask", "softmatch", softmatch_weights, "truncated-Gaussian weights of the confidence (SoftMatch)"),
    Policy("mask", "adamatch", relative_mask, "p_cutoff times the labelled batch's mean confidence (AdaMatch)"),
    Policy("mask", "dash", dash_mask, "pseudo-label loss at most rho (Dash)"),
    Policy("pseudo_labels", "hard", hard_labels, "the arg-max class"),
    Policy("pseudo_labels", "soft", sharpen, "the distribution sharpened with the temperature"),
    Policy("alignment", "ema", ema_alignment, "p_model an EMA of the batch means (ReMixMatch, AdaMatch, SoftMatch)"),
    Policy("alignment", "queue", queue_alignment, "p_model the mean of a queue of batch means (CoMatch, SimMatch)"),
)
"""Every built-in policy; the parameters of each are those of its function."""
