"""Virtual Adversarial Training (Miyato et al., 2018, arXiv:1704.03976) with entropy minimisation.

For each unlabelled image ``x`` VAT finds the direction in which the prediction changes
most -- one power iteration: a random unit direction ``d`` scaled to ``vat_xi`` is added
to ``x``, and the gradient of ``KL(p(x) || p(x + d))`` with respect to ``d`` is the new
direction -- and perturbs the image by ``r_adv``, that direction scaled to L2 norm
``vat_eps`` per sample. The model is trained to predict the same distribution on
``x + r_adv`` as on ``x`` (the local distributional smoothness loss, weight ramped up
over ``unsup_warm_up``), and to be confident on unlabelled data (entropy minimisation,
weight ``ent_loss_ratio``, through the clean prediction).

As in USB the probe size ``vat_xi`` is 1e-6, the random direction is drawn from torch's
default (CPU) generator, and the labelled, clean, probe and adversarial passes are
separate: only the labelled one moves the batch-norm running statistics. A probe of 1e-6
on normalised images is mostly float32 rounding noise (its direction has a cosine of about
0.3 with the float64 one on ``small_cnn``; 1e-4 to 1e-2 give 0.99): ``vat_xi: 1e-3`` is
the better choice off USB's numbers. ``joint_forward`` puts the labelled, clean and
adversarial views through one pass.

Beyond images: on audio the waveform is perturbed (the floating-point tensor of a dict
view), as USB perturbs its waveforms. USB's normalisation covers three- and
four-dimensional directions only, so a waveform's random start is scaled by ``vat_xi``
and its adversarial direction by ``vat_eps`` unnormalised (a perturbation near zero at
``vat_xi: 1e-6``); so does this engine, unless ``vat_normalize_waveform`` scales each
waveform's to those norms as an image's. Token ids
cannot be perturbed: on text ``vat_embed`` (USB's choice for text) perturbs the word
embeddings instead, as USB's branch of that name: the clean pass also returns the
embedding layer's output ``embed`` (``[B, L, H]``), the random start and the perturbation
have that shape and are normalised over each text's ``L x H`` values, and the probe and
adversarial passes take ``embed`` plus the perturbation as ``inputs_embeds`` with the
view's attention mask; the adversarial pass keeps ``embed``'s gradient, so the embedding
layer learns from the smoothness loss, as in USB. Those passes are USB's separate ones
whatever ``joint_forward`` says (embeddings and token ids do not join into one batch).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, Option
from ..data.modality import IMAGE
from ..errors import ConfigError
from ..nets.heads import frozen_batch_norm_stats, unwrap
from .common import (
    SSLAlgorithm,
    full_precision,
    joint_forward_option,
    split,
    supervised_loss,
    ulb_loss_ratio_option,
    unsup_warm_up_option,
)

if TYPE_CHECKING:
    from ..data.base import SSLData
    from ..plugins import PluginManager

__all__ = ["VAT", "vat_perturbation", "kl_divergence_with_logits", "entropy", "l2_normalize"]


def l2_normalize(tensor: torch.Tensor) -> torch.Tensor:
    """Scale each sample (first dimension) to unit L2 norm (``+ 1e-16``).

    On the CPU the norm is summed in NumPy, as USB does, so that the result is USB's to the
    last bit: VAT's probe direction is that sensitive to rounding at ``vat_xi: 1e-6``.
    """
    if tensor.device.type == "cpu" and tensor.dtype in (torch.float32, torch.float64) and not tensor.requires_grad:
        array = tensor.numpy().copy()
        array /= np.sqrt(np.sum(array**2, axis=tuple(range(1, array.ndim)))).reshape((-1,) + (1,) * (array.ndim - 1)) \
            + 1e-16
        return torch.from_numpy(array)
    norm = tensor.flatten(1).norm(dim=1).view(-1, *([1] * (tensor.ndim - 1)))
    return tensor / (norm + 1e-16)


def kl_divergence_with_logits(q_logits: torch.Tensor, p_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(q) || softmax(p))`` averaged over the batch (USB's arithmetic: E[q log q] - E[q log p])."""
    q = F.softmax(full_precision(q_logits), dim=-1)
    q_log = F.log_softmax(full_precision(q_logits), dim=-1)
    p_log = F.log_softmax(full_precision(p_logits), dim=-1)
    return (q * q_log).sum(dim=-1).mean(dim=0) - (q * p_log).sum(dim=-1).mean(dim=0)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy of ``softmax(logits)`` (USB's arithmetic, for its gradients' last bits too)."""
    probs = F.softmax(full_precision(logits), dim=-1)
    return -(probs * F.log_softmax(full_precision(logits), dim=-1)).sum(dim=-1).mean(dim=0)


def vat_perturbation(
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    clean_logits: torch.Tensor,
    eps: float,
    xi: float,
    noise: torch.Tensor,
    iterations: int = 1,
    normalize: bool = True,
) -> torch.Tensor:
    """The virtual adversarial perturbation ``r_adv`` of ``images``: L2 norm ``eps`` per sample.

    ``logits_fn`` maps images to logits (gradients flow to its input); ``clean_logits``
    are its logits for ``images``; ``noise`` (the shape of ``images``) is the random start.
    ``normalize=False`` scales the directions by ``xi`` and ``eps`` without normalising
    them first, as USB does for two-dimensional inputs (waveforms).
    """
    images = images.detach()
    direction = noise.to(images.dtype)

    def unit(tensor: torch.Tensor) -> torch.Tensor:
        return l2_normalize(tensor) if normalize else tensor

    for _ in range(iterations):
        probe = (xi * unit(direction)).requires_grad_(True)
        with torch.enable_grad():
            divergence = kl_divergence_with_logits(clean_logits.detach(), logits_fn(images + probe))
            (direction,) = torch.autograd.grad(divergence, probe)
    return eps * unit(direction.detach())


def perturbed_part(view: Any) -> str | None:
    """The key of the tensor VAT perturbs in a dict view (its one floating-point tensor:
    an audio view's waveform, not its attention mask); None for a tensor view."""
    if isinstance(view, torch.Tensor):
        return None
    floating = [name for name, tensor in view.items() if tensor.is_floating_point()]
    if len(floating) != 1:
        raise ConfigError(f"vat perturbs one floating-point tensor of a view; this view has {len(floating)} "
                          f"({', '.join(view)})")
    return floating[0]


def takes_embeddings(network: nn.Module) -> bool:
    """Whether ``network`` follows the word-embedding interface of :mod:`semilearn.nets`
    (``forward(x, return_embed=True)`` gives ``embed``; ``x["inputs_embeds"]`` replaces the ids)."""
    return "return_embed" in inspect.signature(network.forward).parameters


class VAT(SSLAlgorithm):
    """Smoothness against the virtual adversarial direction, plus entropy minimisation."""

    name = "vat"
    modalities = (IMAGE, "audio")
    modality_reason = "perturbs its inputs adversarially"
    description = "virtual adversarial perturbations (consistency against the worst direction) + entropy minimisation"
    config_options: ClassVar[tuple[Option, ...]] = (
        Option("vat_eps", float, 6.0, "L2 norm of the adversarial perturbation of each (normalised) image.",
               minimum=0, usb=True),
        Option("vat_xi", float, 1e-6, "L2 norm of the probe that finds the adversarial direction (USB's 1e-6 "
               "is below float32 resolution for normalised images; 1e-3 finds the direction better).", minimum=0,
               exclusive_minimum=True),
        Option("vat_embed", bool, False, "Perturb the word embeddings instead of the inputs (USB's choice for "
               "text; the network must take embeddings).", usb=True),
        Option("vat_normalize_waveform", bool, False, "Scale each waveform's probe and perturbation to vat_xi and "
               "vat_eps, as an image's (USB leaves them unnormalised: its audio perturbation is nearly zero)."),
        Option("ent_loss_ratio", float, 0.06, "Weight of the entropy minimisation loss.", minimum=0, usb=True),
        ulb_loss_ratio_option(1.0),
        unsup_warm_up_option(0.4),
        joint_forward_option(),
    )

    def __init__(self, config: Config, data: SSLData, model: nn.Module, manager: PluginManager, run_dir: Path,
                 device: torch.device) -> None:
        if config.vat_embed and not takes_embeddings(model):
            raise ConfigError(f"vat_embed needs a network that takes word embeddings (forward(x, return_embed=True) "
                              f"and x['inputs_embeds'], see semilearn.nets); network '{type(model).__name__}' does not")
        super().__init__(config, data, model, manager, run_dir, device)

    @classmethod
    def supports_modality(cls, modality: str, config: Config) -> bool:
        return modality in (cls.modalities or ()) or bool(config.get("vat_embed"))

    @classmethod
    def modality_remedy(cls, modality: str, config: Config) -> str:
        if modality != "text":
            return ""
        return "set vat_embed: true to perturb the word embeddings instead (USB's usb_nlp files do)"

    def sample_batch(self) -> dict[str, Any]:
        _, images, targets = self.draw_labelled()
        _, unlabelled = self.draw_unlabelled()
        return {"x_lb": self.augment.weak(images), "y_lb": targets, "x_ulb_w": self.augment.weak(unlabelled)}

    def train_step(  # type: ignore[override]
        self, x_lb: Any, y_lb: torch.Tensor, x_ulb_w: Any
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        config = self.config
        network = unwrap(self.model)
        if config.vat_embed:
            logits_lb = self.model(x_lb)["logits"]
            with frozen_batch_norm_stats(network):
                logits_ulb, logits_adv = self.embedding_passes(network, x_ulb_w)
        else:
            logits_lb, logits_ulb, logits_adv = self.input_passes(network, x_lb, x_ulb_w)
        sup_loss = supervised_loss(logits_lb, y_lb)
        unsup_loss = kl_divergence_with_logits(logits_ulb.detach(), logits_adv)
        ent_loss = entropy(logits_ulb)
        ramp = self.unsup_weight(config.unsup_warm_up)
        loss = sup_loss + config.ulb_loss_ratio * unsup_loss * ramp + config.ent_loss_ratio * ent_loss
        return loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "ent_loss": ent_loss}

    def input_passes(self, network: nn.Module, x_lb: Any, x_ulb_w: Any) -> tuple[torch.Tensor, ...]:
        """Labelled, clean and adversarial logits, the perturbation added to the inputs
        (an image, or the waveform of an audio view)."""
        config = self.config
        key = perturbed_part(x_ulb_w)
        inputs = x_ulb_w if key is None else x_ulb_w[key]

        def with_inputs(values: torch.Tensor) -> Any:
            return values if key is None else {**x_ulb_w, key: values}

        def logits_fn(values: torch.Tensor) -> torch.Tensor:
            return network(with_inputs(values))["logits"]  # type: ignore[no-any-return]

        noise = self.host_random("randn", inputs.shape)
        normalize = inputs.ndim > 2 or bool(config.vat_normalize_waveform)
        if config.joint_forward:
            with frozen_batch_norm_stats(network):
                with torch.no_grad():
                    clean_logits = logits_fn(inputs)
                r_adv = vat_perturbation(logits_fn, inputs, clean_logits, config.vat_eps, config.vat_xi, noise,
                                         normalize=normalize)
            outputs, sizes = self.forward_views(x_lb, x_ulb_w, with_inputs(inputs + r_adv))
            return tuple(split(outputs["logits"], sizes))
        # USB's passes
        logits_lb = self.model(x_lb)["logits"]
        with frozen_batch_norm_stats(network):
            logits_ulb = logits_fn(inputs)
            r_adv = vat_perturbation(logits_fn, inputs, logits_ulb, config.vat_eps, config.vat_xi, noise,
                                     normalize=normalize)
            logits_adv = logits_fn(inputs + r_adv)
        return logits_lb, logits_ulb, logits_adv

    def embedding_passes(self, network: nn.Module, x_ulb_w: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Clean and adversarial logits, the perturbation added to the word embeddings
        (``vat_embed``, USB's passes; the caller freezes the batch-norm statistics)."""
        config = self.config
        clean = network(x_ulb_w, return_embed=True)
        embed = clean["embed"]
        mask = x_ulb_w["attention_mask"]

        def logits_fn(embeddings: torch.Tensor) -> torch.Tensor:
            return network({"attention_mask": mask, "inputs_embeds": embeddings})["logits"]  # type: ignore[no-any-return]

        noise = self.host_random("randn", embed.shape)
        r_adv = vat_perturbation(logits_fn, embed, clean["logits"], config.vat_eps, config.vat_xi, noise)
        return clean["logits"], logits_fn(embed + r_adv)
