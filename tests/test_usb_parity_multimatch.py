"""Step-by-step parity of MultiMatch with USB's own MultiMatch code.

``tests/parity/usb_generate_multimatch.py`` ran USB's MultiMatch (its repository's files,
beside USB 0.3.2's FreeMatch and FlexMatch hooks; see ``tests/parity/README.md``) for six
steps on a small three-head network and recorded ``fixtures/multimatch/multimatch.pt``.
Each case here builds this engine's MultiMatch around the same network with the same
weights and settings, feeds it the same inputs with the same epoch and step index, and
compares after every step: the losses, the APM memory, the cut-offs (recalibrated after
every step, ``num_recalibrate_iter: 1``), the weak labels, each head's mask-policy state,
the gradients, and the weights after a plain SGD step that both sides take by hand.

Steps 0 and 1 are in epoch 0 (no labels, the masks' state still moves), 2 to 4 in epoch 1
and 5 in epoch 2. Both sides compute in float64 from the float32 weights; the comparison is the
parity rule of tests/parity/compare.py (the gradients and weights against the whole network's
root mean square: they are recorded flattened), integer state (weak labels, FlexMatch's
selected labels) exactly.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch
from parity.compare import DECISION_MARGIN, Comparison
from parity.sketch import PRECISION, default_dtype
from test_usb_parity import _our_settings, in_precision
from torch import nn

from semilearn.data.augment import AugmentSpec
from semilearn.data.base import SSLData
from semilearn.plugins import PluginManager
from semilearn.runner import load_config

FIXTURE = Path(__file__).resolve().parent / "parity" / "fixtures" / "multimatch" / "multimatch.pt"
FEATURES, HIDDEN, CLASSES, HEADS = 8, 16, 4, 3
MASK_STATE = {"freematch": ("p_model", "label_hist", "time_p"), "flexmatch": ("classwise_acc", "selected_label"),
              "none": ()}


class MultiHeadMLP(nn.Module):
    """The generator's network (``tanh`` features, three linear heads) in this engine's multi-head shape."""

    num_heads = HEADS
    num_features = HIDDEN

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(FEATURES, HIDDEN)
        self.heads = nn.ModuleList(nn.Linear(HIDDEN, CLASSES) for _ in range(HEADS))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = torch.tanh(self.body(x))
        heads = torch.stack([head(feat) for head in self.heads], dim=1)
        return {"head_logits": heads, "logits": heads.mean(dim=1), "feat": feat}


@functools.cache
def _fixture() -> dict[str, Any]:
    return torch.load(FIXTURE, weights_only=True)


def _data(unlabelled: int) -> SSLData:
    generator = torch.Generator().manual_seed(0)

    def images(count: int) -> torch.Tensor:  # only counted: the steps' inputs come from the fixture
        return torch.randint(0, 256, (count, 3, 8, 8), generator=generator, dtype=torch.uint8)

    return SSLData(
        name="synthetic", num_classes=CLASSES, labelled_samples=images(8), labelled_targets=torch.arange(8) % CLASSES,
        unlabelled_samples=images(unlabelled), unlabelled_targets=None, test_samples=images(4),
        test_targets=torch.arange(4) % CLASSES, augment=AugmentSpec(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)),
        default_net="wrn_28_2",
    )


def _build(settings: dict[str, Any], net: nn.Module, tmp_path: Path) -> Any:
    manager = PluginManager().load(environ={"SEMILEARN_DISABLE_PLUGIN_AUTOLOAD": "1"})
    record = {"args": {"dataset": "cifar10", **settings}}
    config = load_config(manager, None, _our_settings("multimatch", record, tmp_path)).config
    for key, value in settings.items():  # every MultiMatch argument of USB's is a key here too
        if key not in ("T", "hard_label"):
            assert config[key] == value, key
    cls = manager.registry("algorithm").get("multimatch")
    return in_precision(cls(config, _data(_fixture()["num_unlabelled"]), net, manager, tmp_path / "run",
                            torch.device("cpu")))


@pytest.mark.parametrize("case", sorted(_fixture()["cases"]) if FIXTURE.exists() else [])
def test_multimatch_matches_usb_step_by_step(case: str, tmp_path: Path) -> None:
    fixture = _fixture()
    settings, theirs = fixture["cases"][case]["settings"], fixture["cases"][case]["records"]
    assert fixture["cases"][case]["decisions"]["stable_under"] >= DECISION_MARGIN, \
        f"{case}: a weak label or selected label of USB's record sits within reach of rounding"
    net = MultiHeadMLP()
    net.load_state_dict(fixture["initial_state"])
    net.to(PRECISION).train()
    algorithm = _build(settings, net, tmp_path)
    with default_dtype(PRECISION):
        _six_steps(case, fixture, settings, theirs, net, algorithm)


def _six_steps(case: str, fixture: dict[str, Any], settings: dict[str, Any], theirs: dict[str, torch.Tensor],
               net: nn.Module, algorithm: Any) -> None:
    optimizer = torch.optim.SGD(net.parameters(), lr=fixture["lr"])
    inputs = {name: value.to(PRECISION) if value.is_floating_point() else value
              for name, value in fixture["inputs"].items()}
    samples = fixture["num_unlabelled"]
    comparison = Comparison()
    for it, epoch in enumerate(fixture["epochs"]):
        algorithm.epoch, algorithm.global_step = epoch, it
        optimizer.zero_grad()
        loss, out = algorithm.train_step(x_lb=inputs["x_lb"][it], y_lb=inputs["y_lb"][it],
                                         idx_ulb=inputs["idx_ulb"][it], x_ulb_w=inputs["x_ulb_w"][it],
                                         x_ulb_s=inputs["x_ulb_s"][it])
        loss.backward()
        where = f"{case} step {it} (epoch {epoch})"
        comparison.tensor(loss, theirs["loss"][it], f"{where} loss")
        comparison.scalar(float(out["sup_loss"].detach()), float(theirs["sup_loss"][it]), f"{where} sup_loss")
        comparison.scalar(float(out["unsup_loss"].detach()), float(theirs["unsup_loss"][it]), f"{where} unsup_loss")
        comparison.tensor(torch.cat([p.grad.flatten() for p in net.parameters()]), theirs["grads"][it],
                          f"{where} gradients")
        optimizer.step()
        comparison.tensor(torch.cat([p.detach().flatten() for p in net.parameters()]), theirs["weights"][it],
                          f"{where} weights")
        buffers = algorithm.buffers
        comparison.tensor(buffers["apm"][:, :samples], theirs["apm"][it], f"{where} apm")
        comparison.tensor(buffers["apm_cutoff"], theirs["apm_cutoff"][it], f"{where} apm_cutoff")
        weak = buffers["weak_labels"][:, :samples]
        if not torch.equal(weak.to(theirs["weak_labels"].dtype), theirs["weak_labels"][it]):
            comparison.failures.append(f"{where} weak_labels: {weak.tolist()} here, "
                                       f"{theirs['weak_labels'][it].tolist()} in USB")
        for head in range(HEADS):
            state = algorithm.state_for(f"mask_{head}")
            for name in MASK_STATE[settings["threshold_algo"]]:
                comparison.tensor(state[name], theirs[f"{name}_{head}"][it], f"{where} head {head} {name}")
    print(f"{case}: largest relative difference {comparison.largest[0]:.3g} ({comparison.largest[1]})")
    assert not comparison.failures, comparison.report()


def test_the_fixture_exercises_what_it_claims() -> None:
    """The cases reach what they are for: labels after the first epoch, negative cut-offs only with
    no_low, masks that differ from no mask, an unseen sample, and a recalibration that stops early."""
    cases = {name: case["records"] for name, case in _fixture()["cases"].items()}
    epochs = _fixture()["epochs"]
    first = [it for it, epoch in enumerate(epochs) if epoch == 0]
    for records in cases.values():
        assert all(float(records["unsup_loss"][it]) == 0 for it in first)
        assert all(float(records["unsup_loss"][it]) > 0 for it in range(len(epochs)) if it not in first)
        assert bool((records["weak_labels"][-1] == -1).any())
    for name, case in _fixture()["cases"].items():
        negative = bool((case["records"]["apm_cutoff"] < 0).any())
        assert negative == case["settings"]["no_low"], name
    assert not torch.equal(cases["freematch"]["loss"], cases["none"]["loss"])
    assert not torch.equal(cases["flexmatch_nowarmup_low"]["loss"], cases["freematch_low_separate"]["loss"])
    # a head's recalibration that stopped at a class without agreement: later classes stay 0 after
    # earlier ones got cut-offs
    cutoffs = cases["none"]["apm_cutoff"]
    assert bool(((cutoffs[:, :, 0] != 0) & (cutoffs[:, :, -1] == 0)).any())
