"""``semilearn evaluate`` and ``semilearn.load``: a trained model scored outside its run.

One short FixMatch run on digits is shared by the module; its checkpoint is written with
the engine's own ``checkpoint_state`` (so the core alone can test this), and, where the
checkpoint plugin is installed, its run directory is evaluated as well.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import semilearn
from conftest import installed, train_in_process
from semilearn.inference.evaluate import score
from semilearn.rundir import CHECKPOINT_FORMAT


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("evaluate")
    result = train_in_process(folder, "algorithm=fixmatch", "num_train_iter=30", "num_eval_iter=30", "p_cutoff=0.7",
                              "ema_m=0.9")  # about 18% right: the predictions are not one class
    assert result.status == "completed"
    path = folder / "model.pt"
    torch.save(result.algorithm.checkpoint_state(), path)
    return path, result


def test_evaluate_agrees_with_the_runs_own_evaluation(trained, cli) -> None:
    path, result = trained
    own = result.algorithm.eval_history[-1]
    assert own["step"] == 30
    answer = cli("evaluate", str(path), "--json")
    assert answer.code == 0, answer.err
    report = json.loads(answer.out)
    assert report["step"] == 30 and report["weights"] == "ema" and report["dataset"] == "digits"
    assert report["top1_acc"] == own["top1_acc"]  # the same images counted right
    assert math.isclose(report["balanced_acc"], own["balanced_acc"], rel_tol=1e-9)
    assert math.isclose(report["loss"], own["loss"], rel_tol=1e-5)
    assert report["run_evaluation"]["top1_acc"] == own["top1_acc"]
    assert len(report["per_class"]) == 10 and sum(entry["support"] for entry in report["per_class"]) == 450
    assert sum(map(sum, report["confusion_matrix"])) == 450

    text = cli("evaluate", str(path)).out
    assert f"top-1 accuracy {100 * own['top1_acc']:.2f}%" in text
    assert f"the run's own evaluation at step 30: top-1 accuracy {100 * own['top1_acc']:.2f}%" in text
    assert "class  precision  recall      F1  support" in text


def test_load_gives_a_predictor_with_the_runs_accuracy(trained) -> None:
    path, result = trained
    predictor = semilearn.load(path)
    assert predictor.classes == [str(index) for index in range(10)]
    data = result.algorithm.data
    prediction = predictor.predict(data.test_samples.cpu().numpy())  # a NumPy array works as well
    correct = int((prediction.labels == data.test_targets.cpu()).sum())
    assert correct == round(450 * result.algorithm.eval_history[-1]["top1_acc"])
    assert prediction.probs.shape == (450, 10) and torch.allclose(prediction.probs.sum(dim=-1), torch.ones(450))
    # the model's own weights differ from the EMA weights the run evaluated
    model = semilearn.load(path, weights="model")
    assert model.weights == "model" and not torch.equal(model.logits(data.test_samples), predictor.logits(data.test_samples))
    # other sizes are resized as the data sets resize, channel counts must match
    assert predictor.prepare(torch.zeros(2, 1, 16, 16, dtype=torch.uint8)).shape == (2, 1, 8, 8)
    with pytest.raises(semilearn.errors.InputError, match="have 3 channel"):
        predictor.predict(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


def test_evaluate_on_another_data_set_with_the_same_classes(trained, cli, tmp_path: Path) -> None:
    path, result = trained
    data = result.algorithm.data
    images, targets = data.test_samples.cpu().numpy(), data.test_targets.cpu().numpy()
    half = len(targets) // 2
    np.savez(tmp_path / "mine.npz", labelled_images=images[:half], labelled_targets=targets[:half],
             test_images=images[half:], test_targets=targets[half:])
    answer = cli("evaluate", str(path), "--json", "--set", "dataset=npz", "--set", f"data_dir={tmp_path / 'mine.npz'}",
                 "--set", "num_labels=10")
    assert answer.code == 0, answer.err
    report = json.loads(answer.out)
    expected = semilearn.load(path).predict(images[half:]).labels.numpy()
    assert report["dataset"] == "npz" and report["top1_acc"] == pytest.approx((expected == targets[half:]).mean())
    assert "run_evaluation" not in report  # another data set: the run's number is not comparable

    three = targets % 3
    np.savez(tmp_path / "three.npz", labelled_images=images, labelled_targets=three, test_images=images,
             test_targets=three)
    refused = cli("evaluate", str(path), "--set", "dataset=npz", "--set", f"data_dir={tmp_path / 'three.npz'}",
                  "--set", "num_labels=3")
    assert refused.code == 2
    assert refused.err.strip() == "error: data set 'npz' has 3 classes; the model was trained on 10 (digits)"


def test_bad_targets_are_one_line_and_exit_2(trained, cli, tmp_path: Path) -> None:
    path, _ = trained
    yaml_file = tmp_path / "config.yaml"
    yaml_file.write_text("algorithm: fixmatch\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    newer = tmp_path / "newer.pt"
    state = torch.load(path, weights_only=True)
    state["format_version"] = 99
    torch.save(state, newer)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    cases = {
        str(yaml_file): f"error: {yaml_file} is not a PyTorch checkpoint",
        str(empty): f"error: {empty} holds no checkpoint ({empty}/checkpoints/best.pt not found; was the "
                    "checkpoint plugin installed?)",
        str(tmp_path / "missing"): f"error: {tmp_path / 'missing'} does not exist (give a run directory or a "
                                   "checkpoint file)",
        str(newer): f"error: {newer} has checkpoint format version 99; this semilearn-core reads version 1",
        str(foreign): f"error: {foreign} is a PyTorch file but not a semilearn checkpoint",
    }
    for target, message in cases.items():
        answer = cli("evaluate", target)
        assert answer.code == 2, (target, answer.err)
        assert answer.err.strip() == message
        assert answer.out == ""
    assert CHECKPOINT_FORMAT == state["format"]


@pytest.mark.together  # matplotlib comes with the logging plugin's plot extra
def test_plot_writes_the_confusion_matrix(trained, cli, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path, _ = trained
    answer = cli("evaluate", str(path), "--plot", str(tmp_path / "confusion.png"))
    assert answer.code == 0, answer.err
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    assert cli("evaluate", str(path), "--plot", str(tmp_path / "no" / "c.png")).code == 2


@pytest.mark.together
@pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="needs the checkpoint plugin's run directory")
def test_a_run_directory_means_its_best_or_last_checkpoint(trained, cli) -> None:
    _, result = trained
    last = json.loads(cli("evaluate", str(result.run_dir), "--checkpoint", "last", "--json").out)
    assert last["checkpoint"].endswith("checkpoints/last.pt") and last["step"] == 30
    assert last["top1_acc"] == result.algorithm.eval_history[-1]["top1_acc"]
    best = json.loads(cli("evaluate", str(result.run_dir), "--json").out)
    assert best["checkpoint"].endswith("checkpoints/best.pt")


def test_score_by_hand() -> None:
    # classes 0, 1, 2: true [0, 0, 1, 1, 2], predicted [0, 1, 1, 1, 1]
    logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 3.0, 0], [0, 3.0, 0], [0, 3.0, 0]])
    report = score(logits, torch.tensor([0, 0, 1, 1, 2]), ["a", "b", "c"])
    assert report.top1_acc == pytest.approx(3 / 5)
    assert report.precision == pytest.approx([1.0, 2 / 4, 0.0])
    assert report.recall == pytest.approx([1 / 2, 1.0, 0.0])
    assert report.f1 == pytest.approx([2 / 3, 2 / 3, 0.0])
    assert report.balanced_acc == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert report.confusion == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
