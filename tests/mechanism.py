"""Shared helpers of the mechanism tests on the modality plugins' stand-ins: the batch an
algorithm draws with the indices it was drawn from, and FixMatch's losses by hand."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from semilearn.data.modality import count


def draw(algorithm: Any) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
    """The algorithm's next batch (``sample_batch``) and the labelled and unlabelled indices it drew.

    The streams are rewound to where they stood and drawn again, so the indices are the
    ones the batch was made of, read without changing the algorithm's code path.
    """
    streams = (algorithm.labelled_stream, algorithm.unlabelled_stream)
    states = [stream.state_dict() for stream in streams]
    batch = algorithm.sample_batch()
    indices = []
    for stream, state in zip(streams, states, strict=True):
        after = stream.state_dict()
        stream.load_state_dict(state)
        indices.append(stream.next())
        stream.load_state_dict(after)
    return batch, indices[0], indices[1]


def hand_fixmatch(algorithm: Any, batch: dict[str, Any], p_cutoff: float) -> dict[str, torch.Tensor]:
    """FixMatch's losses worked out from the network's own logits of the joined views (one
    pass, as ``use_cat``): the weak arg-max is the target of the strong view where the weak
    view's top probability reaches ``p_cutoff``, averaged over every unlabelled sample."""
    views = [batch["x_lb"], batch["x_ulb_w"], batch["x_ulb_s"]]
    with torch.no_grad():
        logits = algorithm.model(algorithm.augment.join(views))["logits"]
    logits_lb, logits_w, logits_s = logits.split([count(view) for view in views])
    confidence, target = logits_w.softmax(-1).max(-1)
    mask = (confidence >= p_cutoff).float()
    return {"sup_loss": F.cross_entropy(logits_lb, batch["y_lb"]), "mask": mask,
            "unsup_loss": (F.cross_entropy(logits_s, target, reduction="none") * mask).mean()}


def check_fixmatch_step(algorithm: Any, batch: dict[str, Any], p_cutoff: float, atol: float = 1e-6) -> None:
    """``train_step`` on ``batch`` gives :func:`hand_fixmatch`'s mask and losses (``ulb_loss_ratio``
    1), with a threshold that some of the batch passes and some does not."""
    expected = hand_fixmatch(algorithm, batch, p_cutoff)
    assert 0 < float(expected["mask"].mean()) < 1  # the threshold is tested on both sides
    loss, out = algorithm.train_step(**batch)
    assert float(out["mask_ratio"]) == float(expected["mask"].mean())
    assert torch.allclose(out["sup_loss"], expected["sup_loss"], atol=atol)
    assert torch.allclose(out["unsup_loss"], expected["unsup_loss"], atol=atol)
    assert torch.allclose(loss, expected["sup_loss"] + expected["unsup_loss"], atol=atol)
