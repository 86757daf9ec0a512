"""Shared helpers of the tests on the modality plugins' stand-ins: the batch an algorithm
draws with the indices it was drawn from, FixMatch's losses by hand, and a run resumed in
two halves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
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


def resume_in_halves(build: Callable[..., Any], tmp_path: Path, settings: tuple[str, ...],
                     stop_step: int) -> tuple[Any, Any]:
    """A straight run of ``settings`` and one stopped after ``stop_step``, saved, and resumed by a
    new algorithm: both complete with the same weights and evaluations. ``build(path,
    *overrides)`` makes an algorithm. Returns (straight, resumed) for further checks.

    Before the resumed half, torch's and NumPy's global generators are seeded with other
    values: dropout draws and the audio encoders' time masks come from the restored state.
    """
    straight = build(tmp_path / "straight", *settings)
    assert straight.fit() == "completed"
    first_half = build(tmp_path / "halves", *settings, f"stop_step={stop_step}")
    assert first_half.fit() == "interrupted"
    path = tmp_path / "state.pt"
    torch.save(first_half.checkpoint_state(), path)
    second_half = build(tmp_path / "halves", *settings)
    torch.manual_seed(99)
    np.random.seed(99)
    assert second_half.fit(torch.load(path, weights_only=True)) == "completed"
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, second_half.model.state_dict()[name]), name
    assert straight.eval_history == second_half.eval_history
    return straight, second_half
