"""MultiMatch: three heads label each other's strong views by agreement and aggregated margins.

The mechanism, piece by piece on numbers worked out by hand (margins folded into the APM
memory, the agreement table, the cut-offs with USB's early stop), then a whole
``train_step`` on a network whose head logits are its inputs, then real runs of USB's
multi-head BERT on the text stand-in of tests/test_nlp.py that resume exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from test_algorithms import make
from torch import nn

from mechanism import resume_in_halves
from semilearn.algorithms.multimatch import agreement_targets, fold_margins, recalibrated_cutoffs
from semilearn.errors import ConfigError

CLASSES = 10  # the digits' classes: make() builds on them


class HeadsAreInputs(nn.Module):
    """A test network with three heads whose logits are the inputs ``[B, 3, C]`` times one weight."""

    num_features = 3 * CLASSES
    num_heads = 3

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        heads = x.view(x.shape[0], 3, CLASSES) * self.scale
        return {"logits": heads.mean(dim=1), "head_logits": heads, "feat": heads.flatten(1)}


def head_rows(*heads: list[float]) -> torch.Tensor:
    """One sample's three heads of logits: the given leading classes, -5 for the rest."""
    rows = [row + [-5.0] * (CLASSES - len(row)) for row in heads]
    return torch.tensor(rows, dtype=torch.float32)


# --- the pieces -----------------------------------------------------------------------


def test_margins_fold_into_the_memory_with_the_top_class_gap() -> None:
    apm = torch.zeros(4, 3)  # 3 samples and the scratch row
    labels = torch.full((4,), -1)
    fold_margins(apm, labels, torch.tensor([[2.0, 0.5, 1.0], [0.0, 3.0, 0.0]]), torch.tensor([2, 0]), smoothness=1.0, epoch=1)
    # sample 2: top 2 (class 0), second 1 -> margins [2 - 1, 0.5 - 2, 1 - 2]; sample 0: [0 - 3, 3 - 0, 0 - 3]
    assert torch.equal(apm[2], torch.tensor([0.5, -0.75, -0.5]))
    assert torch.equal(apm[0], torch.tensor([-1.5, 1.5, -1.5]))
    assert torch.equal(apm[1], torch.zeros(3)) and labels[:3].tolist() == [1, -1, 0]
    fold_margins(apm, labels, torch.tensor([[0.0, 3.0, 0.0]]), torch.tensor([0]), smoothness=1.0, epoch=3)
    assert torch.allclose(apm[0], 0.25 * torch.tensor([-3.0, 3.0, -3.0]) + 0.75 * torch.tensor([-1.5, 1.5, -1.5]))


def test_a_sample_twice_in_a_batch_is_folded_twice_in_order() -> None:
    apm, labels = torch.zeros(3, 2), torch.full((3,), -1)
    # a batch spanning two passes over 2 samples: sample 1 comes back, predicted as the other class
    fold_margins(apm, labels, torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 0.0]]), torch.tensor([1, 0, 1]), smoothness=1.0, epoch=1)
    first = 0.5 * torch.tensor([1.0, -1.0])
    assert torch.equal(apm[1], 0.5 * torch.tensor([4.0, -4.0]) + 0.5 * first)
    assert torch.equal(apm[0], 0.5 * torch.tensor([-2.0, 2.0])) and labels[:2].tolist() == [1, 0]


def test_two_heads_give_the_third_a_label_by_their_agreement_and_confidence() -> None:
    # label_1, label_2, passes_1, passes_2 -> (label, weight): USB's seven agreement types
    cases = {
        (0, 0, True, True): (0, 1.0),     # high-confidence agreement
        (2, 2, True, False): (2, 3.0),    # agreement, one confident: the disagreement weight
        (2, 2, False, True): (2, 3.0),
        (1, 1, False, False): (0, 0.0),   # low-confidence agreement
        (1, 2, True, True): (0, 0.0),     # both confident, disagreeing: no label
        (1, 2, True, False): (1, 3.0),    # only the first confident: its label
        (1, 2, False, True): (2, 3.0),    # only the second
        (1, 2, False, False): (0, 0.0),
    }
    first, second, pass_1, pass_2 = (torch.tensor(column) for column in zip(*cases, strict=True))
    labels, weights = agreement_targets(first, second, pass_1, pass_2, disagreement_weight=3.0)
    assert list(zip(labels.tolist(), weights.tolist(), strict=True)) == list(cases.values())


def test_cutoffs_are_the_percentile_of_the_agreeing_samples_and_usb_stops_at_an_empty_class() -> None:
    # three heads' last arg-max classes of 4 samples, and their APMs of 3 classes
    weak = torch.tensor([[0, 0, 1, 2], [0, 0, 1, 1], [0, 1, 1, 1]])
    apm = torch.zeros(3, 4, 3)
    apm[:, :, 0] = torch.tensor([[0.4, 0.8, 0, 0], [0.2, 0.6, 0, 0], [1.0, 0, 0, 0]])
    apm[:, :, 1] = torch.tensor([[0, 0, 0.3, 0], [0, 0, 0.5, 0.7], [0, 0.9, 0.1, 0.2]])
    old = torch.full((3, 3), 9.0)
    new = recalibrated_cutoffs(old, apm, weak, percentile=0.5, no_low=True, every_class=False)
    # head 0 (heads 1, 2 agree on sample 0 as class 0, samples 2 and 3 as class 1; none on class 2):
    # class 0 -> median of [0.2, 1.0]; class 1 -> median of [0.5, 0.7, 0.1, 0.2]; class 2 -> 0
    assert torch.allclose(new[0], torch.tensor([0.6, 0.35, 0.0]))
    # head 1 (heads 0, 2 agree on sample 0 as 0 and sample 2 as 1): class 0 -> median [0.4, 1.0]
    assert torch.allclose(new[1], torch.tensor([0.7, 0.2, 0.0]))
    # head 2 (heads 0, 1 agree on samples 0, 1 as 0 and 2 as 1); class 2 has no sample: 0
    assert torch.allclose(new[2], torch.tensor([torch.tensor([0.4, 0.8, 0.2, 0.6]).quantile(0.5), 0.4, 0.0]))

    # USB stops a head's recalibration at its first class without agreement: later classes keep theirs
    weak_gap = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]])
    stopped = recalibrated_cutoffs(old, apm, weak_gap, percentile=0.5, no_low=False, every_class=False)
    assert stopped[:, 0].tolist() == [0.0] * 3 and stopped[:, 1:].tolist() == [[9.0, 9.0]] * 3
    every = recalibrated_cutoffs(old, apm, weak_gap, percentile=0.5, no_low=False, every_class=True)
    assert every[:, 1].tolist() != [9.0] * 3 and every[:, 2].tolist() == [0.0] * 3


def test_without_no_low_a_negative_cutoff_becomes_zero() -> None:
    weak = torch.zeros(3, 2, dtype=torch.long)
    apm = torch.full((3, 2, 1), -0.5)
    assert recalibrated_cutoffs(torch.ones(3, 1), apm, weak, 0.05, no_low=False, every_class=True).tolist() == [[0.0]] * 3
    assert recalibrated_cutoffs(torch.ones(3, 1), apm, weak, 0.05, no_low=True, every_class=True).tolist() == [[-0.5]] * 3


# --- a whole step ---------------------------------------------------------------------


def _step(algorithm: Any, weak: torch.Tensor, strong: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    labelled = head_rows([2.0, 0.0], [0.0, 1.0], [1.0, 1.0]).flatten()[None]
    return algorithm.train_step(x_lb=labelled, y_lb=torch.tensor([0]), idx_ulb=torch.tensor([0, 1]),
                                x_ulb_w=weak.flatten(1), x_ulb_s=strong.flatten(1))


def test_each_head_learns_the_labels_the_other_two_give(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "multimatch", "threshold_algo=none", "smoothness=1.0", model=HeadsAreInputs())
    algorithm.epoch = 1  # past the first epoch: labels are given; margins weigh 1 / (1 + 1)
    algorithm.buffers["apm_cutoff"][:, 0] = 0.5
    algorithm.buffers["apm_cutoff"][:, 1] = 0.5
    weak = torch.stack([
        # sample 0: every head says class 0, with margins 2 (heads 0, 1) and 0.5 (head 2)
        head_rows([3.0, 1.0], [3.0, 1.0], [2.0, 1.5]),
        # sample 1: heads 0 and 2 say class 1 (margins 3 and 0.2), head 1 says class 0 (margin 4)
        head_rows([0.0, 3.0], [4.0, 0.0], [1.0, 1.2]),
    ])
    strong = torch.stack([head_rows([1.0, 2.0], [0.5, 0.0], [2.0, 2.0]), head_rows([0.0, 1.0], [1.0, 3.0], [0.0, 0.0])])
    loss, out = _step(algorithm, weak, strong)
    # APM of the arg-max class after this step: half of each margin
    # head 0, others 1 and 2 -- sample 0: both class 0, APMs 1.0 and 0.25: one passes -> 0, weight 3;
    #                           sample 1: head 1 class 0 (APM 2.0 passes), head 2 class 1 (0.1 fails) -> 0, weight 3
    # head 1, others 0 and 2 -- sample 0: 1.0 and 0.25 -> 0, weight 3; sample 1: both class 1, 1.5 and 0.1 -> 1, weight 3
    # head 2, others 0 and 1 -- sample 0: both class 0, 1.0 and 1.0 pass -> 0, weight 1;
    #                           sample 1: class 1 (1.5 passes) and class 0 (2.0 passes): no label
    expected = {0: ([0, 0], [3.0, 3.0]), 1: ([0, 1], [3.0, 3.0]), 2: ([0, 0], [1.0, 0.0])}
    unsup = 0.0
    for head, (labels, weights) in expected.items():
        losses = F.cross_entropy(strong[:, head], torch.tensor(labels), reduction="none")
        unsup += float((losses * torch.tensor(weights)).mean()) / 3
    assert float(out["unsup_loss"].detach()) == pytest.approx(unsup, rel=1e-6)
    labelled = head_rows([2.0, 0.0], [0.0, 1.0], [1.0, 1.0])
    sup = sum(float(F.cross_entropy(labelled[head][None], torch.tensor([0]))) for head in range(3))
    assert float(out["sup_loss"].detach()) == pytest.approx(sup, rel=1e-6)
    assert float(loss.detach()) == pytest.approx(sup + unsup, rel=1e-6)
    assert float(out["mask_ratio"]) == pytest.approx(5 / 6)
    assert algorithm.buffers["weak_labels"][:, :2].tolist() == [[0, 1], [0, 0], [0, 1]]


def test_the_first_epoch_gives_no_labels_but_moves_each_heads_mask_twice(tmp_path: Path) -> None:
    algorithm = make(tmp_path, "multimatch", model=HeadsAreInputs())  # threshold_algo freematch, USB's default
    weak = torch.stack([head_rows([3.0, 1.0], [3.0, 1.0], [2.0, 1.5]), head_rows([0.0, 3.0], [4.0, 0.0], [1.0, 1.2])])
    _, out = _step(algorithm, weak, weak)
    assert float(out["unsup_loss"]) == 0.0 and float(out["mask_ratio"]) == 0.0
    # every head's FreeMatch state saw this batch twice: time_p = m^2 t0 + (1 - m^2) mean(max p) after two folds
    m = 0.999
    for head in range(3):
        probs = torch.softmax(weak[:, head], dim=-1)
        start = 1.0 / CLASSES
        once = m * start + (1 - m) * float(probs.max(dim=-1).values.mean())
        twice = m * once + (1 - m) * float(probs.max(dim=-1).values.mean())
        assert float(algorithm.state_for(f"mask_{head}")["time_p"]) == pytest.approx(twice, rel=1e-6)


def test_cutoffs_follow_usbs_schedule(tmp_path: Path) -> None:
    # USB's num_recalibrate_iter 0 never recalibrates; every n steps with n > 0; each epoch on request
    never = make(tmp_path / "usb", "multimatch", model=HeadsAreInputs())
    every_two = make(tmp_path / "two", "multimatch", "num_recalibrate_iter=2", model=HeadsAreInputs())
    each_epoch = make(tmp_path / "epoch", "multimatch", "recalibrate_each_epoch=true", model=HeadsAreInputs())
    schedule = {}
    for name, algorithm in (("never", never), ("two", every_two), ("epoch", each_epoch)):
        steps = []
        for finished in range(2 * algorithm.iters_per_epoch):
            algorithm.global_step = finished
            if algorithm._recalibrates():
                steps.append(finished + 1)
        schedule[name] = steps
    per_epoch = each_epoch.iters_per_epoch
    assert schedule["never"] == []
    assert schedule["two"] == list(range(2, 2 * every_two.iters_per_epoch + 1, 2))
    assert schedule["epoch"] == [per_epoch, 2 * per_epoch]


def test_a_single_head_network_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs a network with 3 classifier heads .* net 'small_cnn' has 1$"):
        make(tmp_path, "multimatch", "net=small_cnn")


# --- on text --------------------------------------------------------------------------


@pytest.mark.together
def test_multimatch_on_text_runs_past_its_first_epoch_and_resumes_bit_for_bit(tmp_path: Path) -> None:
    nlp = pytest.importorskip("test_nlp")
    if not nlp.IMPORTABLE:
        pytest.skip("semilearn-nlp is not installed")
    root = tmp_path / "stand-in"
    stand_in = nlp.write_stand_in(root / "data"), nlp.write_tiny_bert(root / "tiny-bert")
    settings = ("algorithm=multimatch", "net=bert_base_uncased_multihead", "num_train_iter=6", "epoch=3",
                "num_eval_iter=3", "recalibrate_each_epoch=true")
    straight, second_half = resume_in_halves(lambda path, *overrides: nlp.build(path, stand_in, *overrides),
                                             tmp_path, settings, stop_step=3)
    assert straight.model.num_heads == 3 and len(straight.model.classifier) == 3
    assert straight.buffers["weak_labels"][:, :-1].min() >= 0  # every unlabelled sample was seen by each head
    assert 0.0 <= straight.eval_history[-1]["top1_acc"] <= 1.0
    for name in ("apm", "apm_cutoff", "weak_labels"):
        assert torch.equal(straight.buffers[name], second_half.buffers[name]), name
