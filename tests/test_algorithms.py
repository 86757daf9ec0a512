"""The SSL algorithm family: each distinctive mechanism on a hand-computable case, then a
short real run and an exact save/resume round trip of every algorithm's state.

Mechanism tests drive ``train_step`` with a network whose logits are its inputs
(:class:`LogitsAreInputs`), so that every loss is a number one can work out on paper.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import FAST, train_in_process
from semilearn import Hook, hookimpl
from semilearn.algorithms import BUILTIN_ALGORITHMS
from semilearn.algorithms.comatch import graph_contrastive_loss, memory_smoothing, pseudo_label_graph
from semilearn.algorithms.common import four_rotations, mixup, rotate_batch, sample_mixup_lambda, unsup_ramp
from semilearn.algorithms.crmatch import feature_distance_loss
from semilearn.algorithms.dash import dash_threshold, warmup_steps
from semilearn.algorithms.freematch import fairness_loss
from semilearn.algorithms.policies import ema_alignment, softmatch_weights
from semilearn.algorithms.simmatch import similarity_targets, update_labelled_bank
from semilearn.algorithms.uda import tsa_threshold
from semilearn.algorithms.vat import entropy, kl_divergence_with_logits, vat_perturbation
from semilearn.errors import ConfigError
from semilearn.nets.cnn import SmallCNN
from semilearn.nets.heads import NetWithHeads, ProjectionHead
from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config
from semilearn.usb import usb_parameter_name

CPU = torch.device("cpu")


class LogitsAreInputs(nn.Module):
    """A test network: logits (and features) are the flattened inputs times one weight (1)."""

    num_features = 2

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        flat = x.flatten(1) * self.scale
        return {"logits": flat, "feat": flat}


def make(tmp_path: Path, name: str, *overrides: str, model: nn.Module | None = None) -> Any:
    """An algorithm on digits with FAST settings; with ``model``, around that network."""
    manager = PluginManager().load(blocked=["logging", "checkpoint"])
    settings = [item for item in FAST if item != "--set"]
    config = load_config(manager, None, [*settings, f"algorithm={name}", *overrides, f"save_dir={tmp_path}"]).config
    if model is None:
        return build_algorithm(config, manager, tmp_path / "run")
    data = manager.registry("dataset").get(config.dataset)(config, CPU)
    return manager.registry("algorithm").get(name)(config, data, model, manager, tmp_path / "run", CPU)


def logits_of(*rows: list[float]) -> torch.Tensor:
    """Logits whose softmax is each row (the log of the row)."""
    return torch.log(torch.tensor(rows, dtype=torch.float32))


def value(tensor: torch.Tensor) -> float:
    return float(tensor.detach())


# ---------------------------------------------------------------------------
# Mechanisms, one algorithm at a time.
# ---------------------------------------------------------------------------


def test_fixmatch_trains_strong_views_on_confident_weak_labels(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "fixmatch", model=LogitsAreInputs())
    loss, out = algorithm.train_step(
        x_lb=logits_of([0.5, 0.5]), y_lb=torch.tensor([0]),
        x_ulb_w=logits_of([0.96, 0.04], [0.7, 0.3]), x_ulb_s=logits_of([0.8, 0.2], [0.1, 0.9]),
    )
    assert value(out["mask_ratio"]) == 0.5
    assert value(out["unsup_loss"]) == pytest.approx(-math.log(0.8) / 2, abs=1e-6)
    assert value(loss) == pytest.approx(math.log(2) - math.log(0.8) / 2, abs=1e-6)


def test_pseudolabel_uses_hard_confident_labels_and_warms_up(tmp_path: Path) -> None:
    assert [unsup_ramp(step, 100, 0.4) for step in (0, 20, 40, 90)] == [0.0, 0.5, 1.0, 1.0]
    assert unsup_ramp(0, 100, 0.0) == 1.0
    algorithm = make(tmp_path, "pseudolabel", model=LogitsAreInputs())
    algorithm.global_step = 4  # 4 / (0.4 * 20 steps): half the unsupervised weight
    loss, out = algorithm.train_step(x_lb=torch.tensor([[2.0, 0.0]]), y_lb=torch.tensor([0]),
                                     x_ulb_w=torch.tensor([[3.0, 0.0], [1.0, 0.0]]))
    # sigmoid(3) = 0.9526 passes 0.95 (loss log(1 + e^-3)); sigmoid(1) = 0.73 does not
    unsup = math.log1p(math.exp(-3.0)) / 2
    assert value(out["unsup_loss"]) == pytest.approx(unsup, abs=1e-6)
    assert value(out["mask_ratio"]) == 0.5
    assert value(loss) == pytest.approx(math.log1p(math.exp(-2.0)) + 0.5 * unsup, abs=1e-6)
    assert set(algorithm.sample_batch()) == {"x_lb", "y_lb", "x_ulb_w"}


def test_pimodel_pulls_one_weak_view_to_the_other(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "pimodel", model=LogitsAreInputs())
    algorithm.global_step = 20  # warm-up over
    loss, out = algorithm.train_step(x_lb=logits_of([0.5, 0.5]), y_lb=torch.tensor([0]),
                                     x_ulb_w=logits_of([0.5, 0.5]), x_ulb_w2=logits_of([0.75, 0.25]))
    # mean over classes of (0.75 - 0.5)^2 and (0.25 - 0.5)^2
    assert value(out["unsup_loss"]) == pytest.approx(0.0625, abs=1e-6)
    assert value(loss) == pytest.approx(math.log(2) + 10 * 0.0625, abs=1e-5)
    batch = algorithm.sample_batch()
    assert not torch.equal(batch["x_ulb_w"], batch["x_ulb_w2"])  # two independent weak views


def test_meanteacher_targets_come_from_the_ema_teacher(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "meanteacher", model=LogitsAreInputs())
    algorithm.global_step = 20
    algorithm.ema_model = LogitsAreInputs(scale=2.0)  # the teacher doubles the logits
    loss, out = algorithm.train_step(x_lb=logits_of([0.5, 0.5]), y_lb=torch.tensor([0]),
                                     x_ulb_w=torch.tensor([[math.log(3) / 2, 0.0]]),
                                     x_ulb_w2=torch.tensor([[0.0, 0.0]]))
    # teacher: softmax([log 3, 0]) = [0.75, 0.25]; student: [0.5, 0.5]
    assert value(out["unsup_loss"]) == pytest.approx(0.0625, abs=1e-6)
    assert value(loss) == pytest.approx(math.log(2) + 50 * 0.0625, abs=1e-5)


def test_meanteacher_with_ema_m_0_is_taught_by_the_student_and_without_the_ema_plugin_refused(
        tmp_path: Path) -> None:
    # USB's text files set ema_m 0: the average is then the student itself, and so is the teacher
    algorithm = make(tmp_path / "off", "meanteacher", "ema_m=0", model=LogitsAreInputs(scale=2.0))
    assert algorithm.teacher() is algorithm.model
    _, out = algorithm.train_step(x_lb=logits_of([0.5, 0.5]), y_lb=torch.tensor([0]),
                                  x_ulb_w=torch.tensor([[1.0, 0.0]]), x_ulb_w2=torch.tensor([[0.0, 0.0]]))
    teacher = torch.softmax(torch.tensor([2.0, 0.0]), dim=-1)  # the student's weight 2 on the teacher's view
    assert value(out["unsup_loss"]) == pytest.approx(float(((teacher - 0.5) ** 2).mean()), abs=1e-6)
    with pytest.raises(ConfigError, match="enable the built-in 'ema' plugin"):
        train_in_process(tmp_path / "blocked", "algorithm=meanteacher", "num_train_iter=2", blocked=["ema"])


def test_vat_perturbation_has_norm_eps_and_follows_the_sensitive_direction() -> None:
    torch.manual_seed(0)
    network = SmallCNN(10)
    images = torch.randn(5, 1, 8, 8)
    generator = torch.Generator().manual_seed(1)

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        return network(x)["logits"]

    with torch.no_grad():
        clean = logits_fn(images)
    r_adv = vat_perturbation(logits_fn, images, clean, eps=6.0, xi=1e-3,
                             noise=torch.randn(images.shape, generator=generator))
    assert r_adv.shape == images.shape
    assert torch.allclose(r_adv.flatten(1).norm(dim=1), torch.full((5,), 6.0), atol=1e-4)

    # A linear model that only reads the first input coordinate: the adversarial direction is +-e_0.
    weight = torch.tensor([[1.0, 0.0], [0.0, 0.0]])

    def linear(x: torch.Tensor) -> torch.Tensor:
        return x @ weight.t()

    points = torch.tensor([[0.3, -1.0], [-0.5, 2.0]])
    r_adv = vat_perturbation(linear, points, linear(points), eps=2.0, xi=1e-3,
                             noise=torch.randn(points.shape, generator=generator))
    assert torch.allclose(r_adv[:, 0].abs(), torch.full((2,), 2.0), atol=1e-5)
    assert torch.equal(r_adv[:, 1], torch.zeros(2))


def test_vat_losses() -> None:
    assert value(entropy(torch.zeros(3, 2))) == pytest.approx(math.log(2), abs=1e-6)
    # KL([0.75, 0.25] || [0.5, 0.5]) = 0.75 log 1.5 + 0.25 log 0.5
    expected = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert value(kl_divergence_with_logits(logits_of([0.75, 0.25]), torch.zeros(1, 2))) == pytest.approx(expected)


def test_mixup_with_a_biased_coefficient() -> None:
    mixed_x, mixed_y = mixup(torch.eye(2), torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 0.7, torch.tensor([1, 0]))
    assert torch.allclose(mixed_x, torch.tensor([[0.7, 0.3], [0.3, 0.7]]))
    assert torch.allclose(mixed_y, torch.tensor([[0.7, 0.3], [0.3, 0.7]]))
    np.random.seed(0)
    draws = [sample_mixup_lambda(0.5) for _ in range(200)]
    assert min(draws) >= 0.5 and max(draws) <= 1.0 and len(set(draws)) > 100  # lambda' = max(l, 1 - l)
    assert sample_mixup_lambda(0.0) == 1.0


def test_mixmatch_guesses_labels_from_the_sharpened_mean_of_k_views(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "mixmatch", model=LogitsAreInputs())
    # K = 2 views of one image: the mean of [0.8, 0.2] and [0.4, 0.6] is [0.6, 0.4]; sharpened with T 0.5
    guess, _ = algorithm.guess_labels(torch.cat((logits_of([0.8, 0.2]), logits_of([0.4, 0.6]))))
    assert torch.allclose(guess, torch.tensor([[0.36 / 0.52, 0.16 / 0.52]]), atol=1e-6)
    batch = algorithm.sample_batch()
    assert batch["x_ulb_w"].shape[0] == 2 * 32  # K = 2 weak views of the 32 unlabelled images
    three = make(tmp_path / "three", "mixmatch", "K=3")
    assert three.sample_batch()["x_ulb_w"].shape[0] == 3 * 32


def test_remixmatch_aligns_to_the_labelled_distribution_and_rotates(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "remixmatch", "rot_loss_ratio=0", model=LogitsAreInputs())
    rows = [[0.6, 0.4] + [0.0] * 8, [0.2, 0.8] + [0.0] * 8]  # ten classes, two in use
    guess, _ = algorithm.guess_labels(logits_of(*rows))
    # p_model = [0.4, 0.6]; the labelled set is balanced, so row 1 -> [0.6 / 0.4, 0.4 / 0.6] ~ [0.692, 0.308],
    # sharpened with T 0.5 -> [0.692^2, 0.308^2] renormalised
    aligned = torch.tensor([0.6 / 0.4, 0.4 / 0.6])
    aligned = aligned / aligned.sum()
    sharpened = aligned**2 / (aligned**2).sum()
    assert guess.dtype == torch.float64  # USB's labelled distribution is float64, and so the guess
    assert torch.allclose(guess[0, :2].float(), sharpened, atol=1e-5)
    assert torch.allclose(algorithm.state_for("align")["p_target"], torch.full((10,), 0.1, dtype=torch.float64))

    images = torch.arange(8.0).view(2, 1, 2, 2)
    rotated = rotate_batch(images, torch.tensor([1, 2]))
    assert torch.equal(rotated[0], torch.rot90(images[0], 1, dims=(-2, -1)))
    assert torch.equal(rotated[1], torch.rot90(images[1], 2, dims=(-2, -1)))

    with_rotation = make(tmp_path / "rot", "remixmatch")
    assert "logits_rot" in with_rotation.model.heads
    batch = with_rotation.sample_batch()
    assert torch.equal(batch["x_ulb_s_0_rot"], rotate_batch(batch["x_ulb_s_0"], batch["rot_v"]))
    assert set(batch["rot_v"].tolist()) <= {0, 1, 2, 3}


def test_uda_training_signal_annealing(tmp_path: Path) -> None:
    assert tsa_threshold("none", 0.3, 10) == 1.0
    assert tsa_threshold("linear", 0.5, 10) == pytest.approx(0.5 * 0.9 + 0.1)
    assert tsa_threshold("exp", 0.5, 10) == pytest.approx(math.exp(-2.5) * 0.9 + 0.1)
    assert tsa_threshold("log", 0.5, 10) == pytest.approx((1 - math.exp(-2.5)) * 0.9 + 0.1)
    assert tsa_threshold("linear", 1.0, 10) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        tsa_threshold("cosine", 0.5, 10)

    algorithm = make(tmp_path, "uda", "tsa_schedule=linear", model=LogitsAreInputs())
    algorithm.global_step = 10  # half of 20 steps: eta = 0.5 * (1 - 1/2) + 1/2 = 0.75
    loss, out = algorithm.train_step(
        x_lb=logits_of([0.8, 0.2], [0.7, 0.3]), y_lb=torch.tensor([0, 0]),
        x_ulb_w=logits_of([0.9, 0.1], [0.6, 0.4]), x_ulb_s=logits_of([0.5, 0.5], [0.5, 0.5]),
    )
    # labelled: the true class at 0.8 > 0.75 drops out, 0.7 stays
    assert value(out["tsa_ratio"]) == 0.5
    assert value(out["sup_loss"]) == pytest.approx(-math.log(0.7) / 2, abs=1e-6)
    # unlabelled: 0.9 passes p_cutoff 0.8; its sharpened soft target against [0.5, 0.5] costs log 2
    assert value(out["mask_ratio"]) == 0.5
    assert value(out["unsup_loss"]) == pytest.approx(math.log(2) / 2, abs=1e-6)
    assert value(loss) == pytest.approx(-math.log(0.7) / 2 + math.log(2) / 2, abs=1e-6)


def test_flexmatch_records_confident_predictions_per_unlabelled_sample(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "flexmatch", model=LogitsAreInputs())
    confident = [0.97] + [0.03 / 9] * 9
    unsure = [0.5, 0.3] + [0.2 / 8] * 8
    algorithm.train_step(x_lb=logits_of(confident), y_lb=torch.tensor([0]), idx_ulb=torch.tensor([5, 7]),
                         x_ulb_w=logits_of(confident, unsure), x_ulb_s=logits_of(unsure, unsure))
    selected = algorithm.policy_state["mask"]["selected_label"]
    assert selected.shape == (len(algorithm.data.unlabelled_samples),)
    assert selected[5].item() == 0 and selected[7].item() == -1
    assert int((selected >= 0).sum()) == 1
    assert "idx_ulb" in algorithm.sample_batch()


def test_freematch_fairness_loss() -> None:
    logits_s = logits_of([0.8, 0.2], [0.6, 0.4], [0.3, 0.7])
    p_model, label_hist = torch.tensor([0.6, 0.4]), torch.tensor([0.5, 0.5])
    # all three pass: hist [2/3, 1/3], mean [0.5667, 0.4333] -> ratio [0.85, 1.3] renormalised;
    # model term [0.6 / 0.5, 0.4 / 0.5] renormalised = [0.6, 0.4]
    batch = torch.tensor([0.85, 1.3]) / 2.15
    expected = 0.6 * math.log(batch[0]) + 0.4 * math.log(batch[1])
    loss = fairness_loss(logits_s, torch.ones(3), p_model, label_hist)
    assert value(loss) == pytest.approx(expected, abs=1e-5)
    # only the first two pass: both predict class 0, class 1's histogram is 0 -> its share is 0
    loss = fairness_loss(logits_s, torch.tensor([1.0, 1.0, 0.0]), p_model, label_hist)
    assert value(loss) == pytest.approx(0.4 * math.log(1e-12), rel=1e-4)
    # none passes: no loss, and no NaN gradient
    logits = logits_s.clone().requires_grad_(True)
    loss = fairness_loss(logits, torch.zeros(3), p_model, label_hist)
    loss.backward()
    assert value(loss) == 0.0 and torch.isfinite(logits.grad).all()


def test_freematch_step_updates_its_thresholds(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "freematch", "ema_p=0.5", model=LogitsAreInputs())
    algorithm.train_step(x_lb=logits_of([0.5, 0.5]), y_lb=torch.tensor([0]),
                         x_ulb_w=logits_of([0.8, 0.2], [0.55, 0.45], [0.45, 0.55]),
                         x_ulb_s=logits_of([0.5, 0.5], [0.5, 0.5], [0.5, 0.5]))
    state = algorithm.policy_state["mask"]
    assert value(state["time_p"]) == pytest.approx(0.25 + 0.5 * 1.9 / 3, abs=1e-6)


def test_softmatch_weighs_aligned_confidence_but_labels_with_the_raw_prediction(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "softmatch", "ema_p=0", model=LogitsAreInputs())  # estimates = this batch
    weak = [[0.9, 0.1], [0.55, 0.45], [0.5, 0.5]]
    _, out = algorithm.train_step(x_lb=logits_of([0.5, 0.5]), y_lb=torch.tensor([0]), x_ulb_w=logits_of(*weak),
                                  x_ulb_s=logits_of([0.7, 0.3], [0.7, 0.3], [0.7, 0.3]))
    # the same policies, by hand: uniform alignment, then the Gaussian weights on the aligned rows
    aligned = ema_alignment(torch.tensor(weak), {}, "uniform", 0.0)
    assert aligned[1].argmax().item() == 1  # alignment flips the second sample's top class ...
    weights = softmatch_weights(aligned, {}, 0.0, 2.0)
    assert weights.min() < 1.0
    # ... but its pseudo-label stays class 0 (cross-entropy -log 0.7, not -log 0.3)
    expected = float((weights * -math.log(0.7)).mean())
    assert value(out["unsup_loss"]) == pytest.approx(expected, abs=1e-5)
    assert value(out["mask_ratio"]) == pytest.approx(float(weights.mean()), abs=1e-6)


def test_dash_threshold_decreases_geometrically_after_a_supervised_warmup(tmp_path: Path) -> None:
    assert dash_threshold(0, 2.0, 1.27, 1.0001, 0.05, 10) == pytest.approx(2.0002)
    assert dash_threshold(9, 2.0, 1.27, 1.0001, 0.05, 10) == pytest.approx(2.0002)
    assert dash_threshold(30, 2.0, 1.27, 1.0001, 0.05, 10) == pytest.approx(2.0002 / 1.27**3)
    assert dash_threshold(10_000, 2.0, 1.27, 1.0001, 0.05, 10) == 0.05

    # USB's warm-up: num_wu_iter + 1 steps when an epoch (num_train_iter // epoch = 10 here) is longer,
    # before the num_train_iter steps of the run
    assert warmup_steps(3, 20, 2) == 4 and warmup_steps(2048, 2**20, 1024) == 2048 and warmup_steps(0, 20, 2) == 0
    algorithm = make(tmp_path, "dash", "num_wu_iter=3", "rho_update_iter=2")
    assert algorithm.warmup_steps == 4 and algorithm.num_train_iter == 20 + 4
    initial = {name: parameter.detach().clone() for name, parameter in algorithm.module.named_parameters()}
    assert set(algorithm.sample_batch()) == {"x_lb", "y_lb"}  # warm-up: labelled data only
    for _ in range(4):
        loss, out = algorithm.train_step(**algorithm.sample_batch())
        assert value(out["unsup_loss"]) == 0.0
        algorithm.optimizer.zero_grad()
        loss.backward()
        algorithm.optimizer.step()
    algorithm.global_step = 4
    batch = algorithm.sample_batch()
    assert {"x_ulb_w", "x_ulb_s"} <= set(batch)
    # rho_init: the *initial* weights' loss on the test split, with the warm-up's batch-norm statistics
    network = copy.deepcopy(algorithm.module)
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            parameter.copy_(initial[name])
    logits = algorithm.predict(algorithm.data.test_samples, model=network)
    rho_init = F.cross_entropy(logits, algorithm.data.test_targets).item()
    assert rho_init > 1.5  # about ln 10: Dash starts lenient, not at rho_min
    algorithm.train_step(**batch)
    assert algorithm.buffers["rho_init"] == pytest.approx(rho_init, rel=1e-5)
    assert "initial_parameters" not in algorithm.buffers
    rho, hard = algorithm.threshold()  # what the step passed to the "dash" mask policy
    assert rho == pytest.approx(1.0001 * rho_init) and hard is False
    assert algorithm.policy_state.get("mask", {}) == {}  # per-call parameters are arguments, not state
    algorithm.global_step = 4 + 2 * 100  # a hundred decreases later: rho_min, hard labels
    assert algorithm.threshold() == (0.05, True)
    default = make(tmp_path / "default", "dash", "num_wu_iter=3")
    assert default.update_interval == 10 * (20 // 2)  # every ten epochs, as USB


def test_adamatch_threshold_is_relative_to_labelled_confidence(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "adamatch", "p_cutoff=0.9", "dist_align=false", model=LogitsAreInputs())
    _, out = algorithm.train_step(x_lb=logits_of([0.9, 0.1], [0.7, 0.3]), y_lb=torch.tensor([0, 0]),
                                  x_ulb_w=logits_of([0.75, 0.25], [0.3, 0.7]),
                                  x_ulb_s=logits_of([0.5, 0.5], [0.5, 0.5]))
    assert value(out["mask_ratio"]) == 0.5  # threshold 0.9 * mean(0.9, 0.7) = 0.72
    aligned = make(tmp_path / "aligned", "adamatch", "ema_p=0.5", model=LogitsAreInputs())
    aligned.train_step(x_lb=logits_of([0.9, 0.1], [0.7, 0.3]), y_lb=torch.tensor([0, 0]),
                       x_ulb_w=logits_of([0.75, 0.25]), x_ulb_s=logits_of([0.5, 0.5]))
    # the alignment target follows the labelled predictions: 0.5 * uniform + 0.5 * [0.8, 0.2]
    assert torch.allclose(aligned.policy_state["align"]["p_target"], torch.tensor([0.65, 0.35]))


def test_crmatch_rotation_and_feature_distance(tmp_path: Path) -> None:
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    others = torch.tensor([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert feature_distance_loss(features, others).tolist() == pytest.approx([1.0, 0.0, 0.0])
    images = torch.arange(8.0).view(2, 1, 2, 2)
    rotated, labels = four_rotations(images)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert torch.equal(rotated[5], torch.rot90(images[1], 2, dims=(-2, -1)))

    algorithm = make(tmp_path, "crmatch")
    assert isinstance(algorithm.model, NetWithHeads) and set(algorithm.model.heads) == {"logits_ds", "logits_rot"}
    batch = algorithm.sample_batch()
    assert batch["x_ulb_rot"].shape[0] == 4 * batch["x_lb"].shape[0]
    _, out = algorithm.train_step(**batch)
    assert {"ds_loss", "rot_loss"} <= set(out)


def test_comatch_graph_contrast_and_memory_smoothing(tmp_path: Path) -> None:
    graph = pseudo_label_graph(torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), 0.8)
    assert torch.allclose(graph, torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    # similarity 0.5 is cut at 0.8: only the self-loops remain
    assert torch.equal(pseudo_label_graph(torch.tensor([[0.9, 0.1], [0.5, 0.5]]), 0.8), torch.eye(2))
    # identical unit embeddings, identity graph, T = 1: -log(e / (e + 1))
    loss = graph_contrastive_loss(torch.eye(2), torch.eye(2), torch.eye(2), 1.0)
    assert value(loss) == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-6)
    # the memory disagrees with the model: affinity softmax([1, 0]) = [0.731, 0.269] to opposite labels
    smoothed = memory_smoothing(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.eye(2),
                                torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 1.0, 0.5)
    near = 1 / (1 + math.exp(-1.0))
    assert torch.allclose(smoothed, torch.tensor([[0.5 + 0.5 * (1 - near), 0.5 * near]]), atol=1e-6)

    algorithm = make(tmp_path, "comatch", "queue_batch=2")
    rows = torch.ones(3, 64)
    for step in range(3):
        algorithm.update_bank(rows * step, torch.full((3, 10), float(step)))
    assert algorithm.buffers["bank_embeddings"].shape == (6, 64)  # two steps of three rows
    assert algorithm.buffers["bank_ptr"] == 3
    assert algorithm.buffers["bank_probs"][:3, 0].tolist() == [2.0, 2.0, 2.0]  # the oldest step was replaced


def test_simmatch_propagates_labels_through_the_labelled_memory(tmp_path: Path) -> None:
    instance, smoothed = similarity_targets(torch.tensor([[1.0, 0.0]]), torch.eye(2), torch.tensor([0, 1]),
                                            torch.tensor([[0.2, 0.8]]), 1.0, 0.5)
    near = 1 / (1 + math.exp(-1.0))  # similarity softmax([1, 0])
    calibrated = torch.tensor([near * 0.2, (1 - near) * 0.8])
    assert torch.allclose(instance, (calibrated / calibrated.sum())[None], atol=1e-6)
    assert torch.allclose(smoothed, torch.tensor([[0.1 + 0.5 * near, 0.4 + 0.5 * (1 - near)]]), atol=1e-6)

    # the bank is [proj_size, K] (columns: entries 0..2); sample 0 is drawn twice in one batch
    bank = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    embeddings, indices = torch.tensor([[0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 0])
    # momentum 0.7: the block [[0.7, 1.0], [0.3, 0.0]] is normalised along the batch, as USB's F.normalize
    # of the [proj, B] block does (row 0 by its norm, row 1 to 1), and the last write of entry 0 wins
    new_bank = update_labelled_bank(bank, embeddings, indices)
    assert torch.allclose(new_bank[:, 0], torch.tensor([1.0 / math.hypot(0.7, 1.0), 0.0]))
    assert torch.equal(new_bank[:, 1:], bank[:, 1:])
    # per entry: the last written column [1.0, 0.0] is a unit vector already
    assert torch.allclose(update_labelled_bank(bank, embeddings, indices, normalize_entries=True)[:, 0],
                          torch.tensor([1.0, 0.0]))
    # the EMA teacher's path writes the embedding as it is
    assert torch.equal(update_labelled_bank(bank, embeddings, indices, momentum=None)[:, 0], torch.tensor([1.0, 0.0]))

    algorithm = make(tmp_path, "simmatch")
    assert algorithm.buffers["bank"].shape == (128, 40)
    assert torch.allclose(algorithm.buffers["bank"].norm(dim=0), torch.ones(40))
    assert not algorithm.buffers["bank_labels"].any()  # labels 0 until written, as USB's
    assert make(tmp_path / "k", "simmatch", "K=7").buffers["bank"].shape == (128, 40)  # K is replaced, as USB


def test_defixmatch_subtracts_the_pseudo_label_loss_of_labelled_data(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "defixmatch", model=LogitsAreInputs())
    loss, out = algorithm.train_step(
        x_lb=logits_of([0.96, 0.04]), x_lb_s=logits_of([0.6, 0.4]), y_lb=torch.tensor([0]),
        x_ulb_w=logits_of([0.97, 0.03]), x_ulb_s=logits_of([0.8, 0.2]),
    )
    sup = 0.5 * (-math.log(0.96) - math.log(0.6))
    assert value(out["anti_unsup_loss"]) == pytest.approx(-math.log(0.6), abs=1e-6)
    assert value(out["unsup_loss"]) == pytest.approx(-math.log(0.8), abs=1e-6)
    assert value(loss) == pytest.approx(sup + 0.5 * (-math.log(0.8) + math.log(0.6)), abs=1e-6)
    assert "x_lb_s" in algorithm.sample_batch()


def _kl(target: list[float], student: list[float]) -> float:
    """KL(target || student) of two distributions, by hand."""
    return sum(t * (math.log(t) - math.log(q)) for t, q in zip(target, student, strict=True))


def _softmax(values: list[float], temperature: float = 1.0) -> list[float]:
    exps = [math.exp(v / temperature) for v in values]
    return [e / sum(exps) for e in exps]


def test_refixmatch_adds_a_kl_term_for_the_low_confidence_samples(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "refixmatch", model=LogitsAreInputs())
    # sample 0 is confident (0.96 >= 0.95): FixMatch's term; sample 1 (0.6) is not: the KL term
    weak, strong = [[0.96, 0.04], [0.6, 0.4]], [[0.7, 0.3], [0.5, 0.5]]
    loss, out = algorithm.train_step(x_lb=logits_of([0.5, 0.5]), y_lb=torch.tensor([0]),
                                     x_ulb_w=logits_of(*weak), x_ulb_s=logits_of(*strong))
    assert value(out["unsup_loss"]) == pytest.approx(-math.log(0.7) / 2, abs=1e-6)
    # USB's target: softmax of the weak *probabilities* over 0.5; student: softmax of the strong logits over 0.5
    expected = _kl(_softmax(weak[1], 0.5), _softmax([math.log(p) for p in strong[1]], 0.5)) / 2
    assert value(out["refix_loss"]) == pytest.approx(expected, abs=1e-6)
    assert value(loss) == pytest.approx(math.log(2) + value(out["unsup_loss"]) + expected, abs=1e-6)
    flex = make(tmp_path / "flex", "flexmatch", "use_refix=true", model=LogitsAreInputs())
    _, flex_out = flex.train_step(x_lb=logits_of([0.5, 0.5]), y_lb=torch.tensor([0]), idx_ulb=torch.tensor([0, 1]),
                                  x_ulb_w=logits_of(*weak), x_ulb_s=logits_of(*strong))
    assert "refix_loss" in flex_out  # FlexMatch's use_refix adds the same term


def test_refix_target_sharpened_distils_the_sharpened_weak_prediction(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "refixmatch", "refix_target=sharpened", model=LogitsAreInputs())
    weak, strong = [[0.96, 0.04], [0.6, 0.4]], [[0.7, 0.3], [0.5, 0.5]]
    _, out = algorithm.train_step(x_lb=logits_of([0.5, 0.5]), y_lb=torch.tensor([0]),
                                  x_ulb_w=logits_of(*weak), x_ulb_s=logits_of(*strong))
    # target: the weak prediction at temperature 0.5 (0.6, 0.4 -> 0.692, 0.308), not the flat USB one
    target = _softmax([math.log(p) for p in weak[1]], 0.5)
    assert target[0] == pytest.approx(0.36 / 0.52)
    expected = _kl(target, _softmax([math.log(p) for p in strong[1]], 0.5)) / 2
    assert value(out["refix_loss"]) == pytest.approx(expected, abs=1e-6)
    usb = _kl(_softmax(weak[1], 0.5), _softmax([math.log(p) for p in strong[1]], 0.5)) / 2
    assert abs(expected - usb) > 1e-3  # the two targets differ on this sample


def test_sequencematch_ties_weak_medium_and_strong_views(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "sequencematch", "thresh_warmup=false", model=LogitsAreInputs())
    batch = algorithm.sample_batch()
    assert {"x_ulb_w", "x_ulb_m", "x_ulb_s"} <= set(batch)
    weak, medium, strong = [[0.9, 0.1]], [[0.6, 0.4]], [[0.3, 0.7]]
    # FlexMatch's first step: every class effect is 0, so every threshold is 0 and the mask is 1
    loss, out = algorithm.train_step(x_lb=logits_of([0.5, 0.5]), y_lb=torch.tensor([0]), idx_ulb=torch.tensor([0]),
                                     x_ulb_w=logits_of(*weak), x_ulb_m=logits_of(*medium),
                                     x_ulb_s=logits_of(*strong))
    assert value(out["mask_ratio"]) == 1.0
    assert value(out["kl_medium_weak"]) == pytest.approx(_kl(_softmax(weak[0], 0.5), medium[0]), abs=1e-6)
    assert value(out["kl_strong_medium"]) == pytest.approx(_kl(_softmax(medium[0], 0.5), strong[0]), abs=1e-6)
    assert value(out["kl_strong_weak"]) == pytest.approx(_kl(_softmax(weak[0], 0.5), strong[0]), abs=1e-6)
    total = math.log(2) - math.log(0.3) + sum(value(out[name]) for name in
                                              ("kl_medium_weak", "kl_strong_medium", "kl_strong_weak"))
    assert value(loss) == pytest.approx(total, abs=1e-5)


def test_epass_averages_three_projection_heads(tmp_path: Path) -> None:
    single, ensemble = ProjectionHead(4, 3), ProjectionHead(4, 3, ensemble=3)
    assert sum(p.numel() for p in ensemble.parameters()) == 3 * sum(p.numel() for p in single.parameters())
    feat = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    mean = (ensemble.mlp(feat) + ensemble.mlp_2(feat) + ensemble.mlp_3(feat)) / 3
    assert torch.allclose(ensemble(feat), mean / mean.norm(dim=1, keepdim=True), atol=1e-6)
    for name in ("comatch", "simmatch"):
        algorithm = make(tmp_path / name, name, "use_epass=true")
        names = {usb_parameter_name(key) for key in algorithm.module.state_dict()}
        assert {"mlp_proj.0.weight", "mlp_proj_2.0.weight", "mlp_proj_3.2.bias"} <= names  # USB's names


def test_fullysupervised_labels_every_training_image(tmp_path: Path) -> None:
    full, subset = make(tmp_path / "full", "fullysupervised"), make(tmp_path / "subset", "supervised")
    assert len(subset.data.labelled_targets) == 40
    assert len(full.data.labelled_targets) == len(full.data.unlabelled_samples) == 1347
    assert torch.equal(full.data.labelled_targets, full.data.unlabelled_targets)


# ---------------------------------------------------------------------------
# Every algorithm: a short real run, and an exact resume of its state.
# ---------------------------------------------------------------------------

# MultiMatch needs a multi-head network (semilearn-nlp's): tests/test_multimatch.py runs and resumes it
SSL_ALGORITHMS = [name for name in BUILTIN_ALGORITHMS if name not in ("supervised", "fullysupervised", "multimatch")]

# Settings under which each mechanism acts within a few steps of an untrained network.
ENGAGE = {
    "fixmatch": ["p_cutoff=0.3"], "pseudolabel": ["p_cutoff=0.3"], "uda": ["p_cutoff=0.3"],
    "flexmatch": ["p_cutoff=0.3"], "crmatch": ["p_cutoff=0.3"], "defixmatch": ["p_cutoff=0.3"],
    "adamatch": ["p_cutoff=0.5"], "comatch": ["p_cutoff=0.3", "queue_batch=2"], "simmatch": ["p_cutoff=0.3"],
    "dash": ["num_wu_iter=2", "rho_update_iter=1"], "refixmatch": ["p_cutoff=0.3"],
    "sequencematch": ["p_cutoff=0.3"],
}


class OutputCheck(Hook):
    name = "output_check"

    def __init__(self) -> None:
        super().__init__()
        self.outputs: list[dict[str, torch.Tensor]] = []

    @hookimpl
    def after_train_step(self, outputs) -> None:
        self.outputs.append(dict(outputs))


def _fit(tmp_path: Path, name: str, *overrides: str, plugins: tuple[object, ...] = ()) -> Any:
    manager = PluginManager().load(blocked=["logging", "checkpoint"])
    for plugin in plugins:
        manager.add(plugin)
    settings = [item for item in FAST if item != "--set"]
    config = load_config(manager, None, [*settings, f"algorithm={name}", "num_train_iter=6", "num_eval_iter=3",
                                         *ENGAGE.get(name, []), *overrides, f"save_dir={tmp_path}"]).config
    return build_algorithm(config, manager, tmp_path / "run")


def _assert_same(first: Any, second: Any, where: str) -> None:
    if isinstance(first, torch.Tensor):
        assert isinstance(second, torch.Tensor) and torch.equal(first, second), where
    elif isinstance(first, dict):
        assert set(first) == set(second), where
        for key in first:
            _assert_same(first[key], second[key], f"{where}.{key}")
    elif isinstance(first, list):
        assert len(first) == len(second), where
        for index, (a, b) in enumerate(zip(first, second, strict=True)):
            _assert_same(a, b, f"{where}[{index}]")
    else:
        assert first == second, where


@pytest.mark.parametrize("name", SSL_ALGORITHMS)
def test_runs_and_resumes_bit_for_bit(tmp_path: Path, name: str) -> None:
    check = OutputCheck()
    straight = _fit(tmp_path / "straight", name, plugins=(check,))
    assert straight.fit() == "completed"
    assert len(check.outputs) == straight.num_train_iter  # Dash adds its warm-up to the run
    for outputs in check.outputs:  # detached finite 0-d tensors
        for key, tensor in outputs.items():
            assert tensor.ndim == 0 and not tensor.requires_grad and torch.isfinite(tensor), key
    state = straight.algorithm_state()
    assert state["policy_state"] or state["buffers"] or name in {"pimodel", "meanteacher", "vat", "mixmatch"}

    first_half = _fit(tmp_path / "halves", name, "stop_step=3")
    assert first_half.fit() == "interrupted"
    path = tmp_path / "state.pt"
    torch.save(first_half.checkpoint_state(), path)
    loaded = torch.load(path, weights_only=True)
    second_half = _fit(tmp_path / "halves", name)
    torch.manual_seed(1234)
    assert second_half.fit(loaded) == "completed"

    for key, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, second_half.model.state_dict()[key]), key
    for key, tensor in straight.ema_model.state_dict().items():
        assert torch.equal(tensor, second_half.ema_model.state_dict()[key]), key
    _assert_same(straight.algorithm_state(), second_half.algorithm_state(), "algorithm_state")
    assert straight.eval_history[-1]["top1_acc"] == second_half.eval_history[-1]["top1_acc"]


def test_mechanism_state_is_not_trivial_after_a_short_run(tmp_path: Path) -> None:
    flexmatch = _fit(tmp_path / "flex", "flexmatch")
    flexmatch.fit()
    assert int((flexmatch.policy_state["mask"]["selected_label"] >= 0).sum()) > 0
    comatch = _fit(tmp_path / "co", "comatch")
    comatch.fit()
    assert comatch.buffers["bank_embeddings"].abs().sum() > 0
    dash = _fit(tmp_path / "dash", "dash")
    dash.fit()
    assert dash.buffers["rho_init"] > 0


# ---------------------------------------------------------------------------
# The catalogue.
# ---------------------------------------------------------------------------


def test_the_algorithms_command_lists_every_algorithm_with_its_keys(cli) -> None:
    result = cli("algorithms")
    assert result.code == 0
    for name in BUILTIN_ALGORITHMS:
        assert any(line.startswith(f"{name} ") for line in result.out.splitlines()), name
    assert "thresh_warmup=True" in result.out and "vat_eps=6.0" in result.out and "proj_size=64" in result.out


def test_every_algorithm_has_a_one_line_description_and_usb_keys() -> None:
    registry = PluginManager().load().registry("algorithm")
    for name in BUILTIN_ALGORITHMS:
        cls = registry.get(name)
        assert cls.name == name
        assert cls.description and "\n" not in cls.description and len(cls.description) <= 100, name
        assert (cls.__module__ and (cls.__doc__ or "")), name
