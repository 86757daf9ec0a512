"""Short real runs of the loop: completion, files, determinism, exact core resume, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import FAST, train_in_process
from semilearn import Hook, hookimpl
from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config


def test_the_default_run_completes_and_writes_its_config(tmp_path: Path) -> None:
    result = train_in_process(tmp_path)
    assert result.status == "completed" and result.exit_code == 0
    algorithm = result.algorithm
    assert algorithm.global_step == 20
    assert [entry["step"] for entry in algorithm.eval_history] == [10, 20]
    assert 0.0 <= algorithm.eval_history[-1]["top1_acc"] <= 1.0
    written = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert written["algorithm"] == "flexmatch" and written["num_train_iter"] == 20
    assert written["versions"]["semilearn-core"]
    assert result.run_dir.name == "flexmatch_digits_40_0"


def test_a_second_run_never_overwrites_the_first(tmp_path: Path) -> None:
    first = train_in_process(tmp_path, "num_train_iter=2")
    second = train_in_process(tmp_path, "num_train_iter=2")
    assert first.run_dir.name == "flexmatch_digits_40_0"
    assert second.run_dir.name == "flexmatch_digits_40_0-2"


def test_supervised_uses_labelled_data_only(tmp_path: Path) -> None:
    result = train_in_process(tmp_path, "algorithm=supervised")
    assert result.status == "completed"
    assert result.algorithm.unlabelled_stream is None


def test_training_is_deterministic(tmp_path: Path) -> None:
    first = train_in_process(tmp_path / "a", "num_train_iter=8")
    second = train_in_process(tmp_path / "b", "num_train_iter=8")
    for name, tensor in first.algorithm.model.state_dict().items():
        assert torch.equal(tensor, second.algorithm.model.state_dict()[name]), name


def _build(tmp_path: Path, *overrides: str):
    manager = PluginManager().load()
    settings = [item for item in FAST if item != "--set"]
    config = load_config(manager, None, [*settings, *overrides, f"save_dir={tmp_path}"]).config
    return build_algorithm(config, manager, tmp_path / "run")


def test_checkpoint_state_resumes_bit_for_bit(tmp_path: Path) -> None:
    straight = _build(tmp_path / "straight", "num_train_iter=12")
    straight.fit()

    first_half = _build(tmp_path / "halves", "num_train_iter=12", "stop_step=5")
    assert first_half.fit() == "interrupted"
    assert first_half.global_step == 5
    state = first_half.checkpoint_state()
    # what a checkpoint file holds must survive the safe loader
    path = tmp_path / "state.pt"
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)

    second_half = _build(tmp_path / "halves", "num_train_iter=12")
    torch.manual_seed(1234)  # whatever the process did before, the checkpoint restores the generators
    assert second_half.fit(loaded) == "completed"

    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, second_half.model.state_dict()[name]), name
    for name, tensor in straight.ema_model.state_dict().items():
        assert torch.equal(tensor, second_half.ema_model.state_dict()[name]), name
    assert straight.eval_history[-1]["top1_acc"] == second_half.eval_history[-1]["top1_acc"]


def test_stop_step_stops_cleanly_with_exit_code_zero(tmp_path: Path) -> None:
    result = train_in_process(tmp_path, "stop_step=7")
    assert result.status == "interrupted" and result.exit_code == 0
    assert result.algorithm.global_step == 7


class Failing(Hook):
    name = "failing"

    def __init__(self) -> None:
        super().__init__()
        self.after_run_status: tuple[str, str] | None = None

    @hookimpl
    def before_train_step(self, algorithm, step: int) -> None:
        if step == 3:
            raise ValueError("boom at step 3")

    @hookimpl
    def after_run(self, algorithm, status: str, error) -> None:
        self.after_run_status = (status, type(error).__name__)


def test_a_failing_hook_fails_the_run_and_after_run_still_fires(tmp_path: Path) -> None:
    failing = Failing()
    with pytest.raises(ValueError, match="boom at step 3"):
        train_in_process(tmp_path, plugins=[failing])
    assert failing.after_run_status == ("failed", "ValueError")


def test_disabling_ema_evaluates_the_model_itself(tmp_path: Path) -> None:
    blocked = train_in_process(tmp_path / "a", "num_train_iter=2", blocked=["ema"])
    assert blocked.algorithm.ema_model is None
    off = train_in_process(tmp_path / "b", "num_train_iter=2", "ema_m=0")
    assert off.algorithm.ema_model is None
    on = train_in_process(tmp_path / "c", "num_train_iter=2")
    assert on.algorithm.ema_model is not None


def test_wrn_28_2_trains_on_synthetic_images(tmp_path: Path) -> None:
    result = train_in_process(tmp_path, "dataset=synthetic", "num_train_iter=2", "batch_size=4", "uratio=1",
                              "eval_batch_size=500", "num_labels=40")
    assert result.status == "completed"
    assert result.algorithm.data.image_shape == (3, 32, 32)
    assert "top1_acc" in result.algorithm.eval_history[-1]


@pytest.mark.parametrize(("signal_number", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_finish_the_step_and_exit_with_the_conventional_code(
    tmp_path: Path, signal_number: int, exit_code: int
) -> None:
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "semilearn", "run", *FAST, "--set", "num_train_iter=100000",
         "--set", "num_eval_iter=100000", "--set", "save_dir=runs", "-p", "no:logging", "-p", "no:checkpoint"],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("run directory:") or time.monotonic() > deadline:
                break
        time.sleep(1.0)
        process.send_signal(signal_number)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == exit_code, err
    name = signal.Signals(signal_number).name
    assert f"warning: {name} received: finishing step" in out
    assert "interrupted at step" in out


class Poison(Hook):
    """Makes the first parameter NaN after step ``step``: from the next step on the loss is NaN."""

    name = "poison"

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    @hookimpl
    def after_train_step(self, algorithm, step: int, outputs) -> None:
        if step == self.step:
            with torch.no_grad():
                next(algorithm.model.parameters()).fill_(float("nan"))


class Ending(Hook):
    """Records what every plugin is told when the run ends."""

    name = "ending"

    def __init__(self) -> None:
        super().__init__()
        self.seen: tuple[str, int, int] | None = None

    @hookimpl
    def after_run(self, algorithm, status: str, error) -> None:
        self.seen = (status, algorithm.exit_code, algorithm.global_step)


def test_a_nan_loss_stops_the_run_at_the_next_log_point_with_exit_code_3(tmp_path: Path) -> None:
    from semilearn import TrainingError

    ending = Ending()
    with pytest.raises(TrainingError, match=r"the loss became NaN or infinite at step 8: .*no checkpoint was written"):
        train_in_process(tmp_path, plugins=[Poison(step=7), ending], blocked=["checkpoint"])
    assert ending.seen == ("failed", 3, 10)  # FAST logs every 5 steps: the NaN of step 8 is read at step 10


def test_nonfinite_loss_warn_trains_on_and_counts_the_steps(tmp_path: Path, caplog) -> None:
    with caplog.at_level("WARNING", logger="semilearn"):
        result = train_in_process(tmp_path, "nonfinite_loss=warn", plugins=[Poison(step=7)])
    assert result.status == "completed" and result.exit_code == 0
    warnings = [record.getMessage() for record in caplog.records if "NaN or infinite" in record.getMessage()]
    assert warnings == [
        "the loss became NaN or infinite at step 8 (nonfinite_loss: warn: training goes on; the end of the run "
        "tells how many steps were affected)",
        "the loss was NaN or infinite at 13 of 20 steps (first at step 8)",
    ]


@pytest.mark.parametrize("fast", [True, False])
def test_amp_on_a_cpu_without_native_bfloat16_trains_in_float32_with_one_warning(
    fast: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import semilearn.algorithm

    monkeypatch.setattr(semilearn.algorithm, "cpu_has_fast_bfloat16", lambda: fast)
    result = train_in_process(tmp_path, "num_train_iter=2", "amp=true", "device=cpu")
    assert result.status == "completed"
    assert result.algorithm.amp is fast
    warnings = [record.getMessage() for record in caplog.records if "no native bfloat16" in record.getMessage()]
    assert warnings == ([] if fast else ["amp: this CPU has no native bfloat16 (AVX2 only), where bfloat16 autocast "
                                          "runs about ten times slower than float32: training in float32 instead"])
    with result.algorithm.autocast():
        assert torch.is_autocast_enabled("cpu") is fast
