"""The best evaluation: one function (``semilearn.metrics.best_evaluation``) and the engine keys
``monitor`` and ``mode`` behind every line that names a best, with real runs on digits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import installed, train_in_process
from semilearn import Hook, hookimpl
from semilearn.config import CORE_OPTIONS, Option, resolve_config
from semilearn.errors import ConfigError
from semilearn.metrics import best_evaluation, format_metric, last_evaluation, missing_monitor_message

HISTORY = [
    {"step": 5, "top1_acc": 0.50, "loss": 1.5},
    {"step": 10, "top1_acc": 0.70, "loss": 0.9},
    {"step": 15, "loss": 0.4},  # an evaluation without top1_acc
    {"step": 20, "top1_acc": 0.70, "loss": 0.4},  # ties with step 10 on top1_acc, with step 15 on loss
    {"step": 25, "top1_acc": 0.60, "loss": 0.8},
]


def test_max_and_min_pick_the_largest_and_the_smallest() -> None:
    assert best_evaluation(HISTORY, "top1_acc", "max")["step"] == 10
    assert best_evaluation(HISTORY, "top1_acc", "min")["step"] == 5
    assert best_evaluation(HISTORY, "loss", "min")["step"] == 15
    assert best_evaluation(HISTORY, "loss", "max")["step"] == 5
    assert best_evaluation(HISTORY, "top1_acc") == {"step": 10, "top1_acc": 0.70, "loss": 0.9}  # max by default


def test_ties_keep_the_earlier_evaluation() -> None:
    assert best_evaluation(HISTORY, "top1_acc", "max")["step"] == 10  # not 20
    assert best_evaluation(HISTORY, "loss", "min")["step"] == 15  # not 20
    same = [{"step": step, "error_rate": 0.25} for step in (3, 6, 9)]
    assert best_evaluation(same, "error_rate", "min")["step"] == best_evaluation(same, "error_rate", "max")["step"] == 3


def test_evaluations_without_the_metric_or_with_nan_are_passed_over() -> None:
    assert best_evaluation(HISTORY, "f1", "max") is None
    assert best_evaluation([], "top1_acc", "max") is None
    with_nan = [{"step": 1, "loss": math.nan}, {"step": 2, "loss": 2.0}, {"step": 3, "loss": math.nan}]
    assert best_evaluation(with_nan, "loss", "min")["step"] == best_evaluation(with_nan, "loss", "max")["step"] == 2
    assert last_evaluation(HISTORY, "top1_acc")["step"] == 25 and last_evaluation(with_nan, "loss")["step"] == 2
    assert last_evaluation(HISTORY, "f1") is None
    with pytest.raises(ValueError, match="mode must be 'max' or 'min'"):
        best_evaluation(HISTORY, "loss", "lowest")


def test_fractions_print_as_percentages_other_metrics_as_numbers() -> None:
    assert format_metric("top1_acc", 0.9311) == "93.11%" and format_metric("balanced_acc", 0.5) == "50.00%"
    assert format_metric("error_rate", 0.0689) == "0.0689" and format_metric("loss", 2.31406) == "2.3141"


SECTIONS = {"checkpoint": (Option("interval", int, 500, "steps"),)}


def _resolve(raw: dict, sections: dict = SECTIONS):
    return resolve_config(raw, algorithm_options={"flexmatch": ()}, plugin_sections=sections)


def test_monitor_and_mode_are_engine_keys() -> None:
    config = _resolve({}).config
    assert (config.monitor, config.mode) == ("top1_acc", "max")
    assert {"monitor", "mode"} <= {option.name for option in CORE_OPTIONS}
    with pytest.raises(ConfigError, match="configuration key 'mode' must be one of 'max', 'min', got 'lowest'"):
        _resolve({"mode": "lowest"})


def test_the_former_checkpoint_keys_set_them_with_one_warning_each() -> None:
    resolution = _resolve({"checkpoint": {"monitor": "loss", "mode": "min", "interval": 7}})
    config = resolution.config
    assert (config.monitor, config.mode, config.checkpoint.interval) == ("loss", "min", 7)
    assert "monitor" not in config.checkpoint
    assert resolution.warnings == [
        "configuration key 'checkpoint.monitor' is deprecated: write the top-level key 'monitor' instead "
        "(monitor: loss)",
        "configuration key 'checkpoint.mode' is deprecated: write the top-level key 'mode' instead (mode: min)",
    ]
    # without the checkpoint plugin the keys still count, and the emptied section is not reported
    alone = _resolve({"checkpoint": {"monitor": "loss"}}, sections={})
    assert alone.config.monitor == "loss" and len(alone.warnings) == 1
    with pytest.raises(ConfigError, match=r"configuration keys 'monitor' and 'checkpoint.monitor' set the same "
                                          r"option: keep 'monitor' \('checkpoint.monitor' is its former name\)"):
        _resolve({"monitor": "loss", "checkpoint": {"monitor": "loss"}})
    with pytest.raises(ConfigError, match="configuration key 'checkpoint.mode' must be one of 'max', 'min'"):
        _resolve({"checkpoint": {"mode": "lowest"}})


class ErrorRate(Hook):
    """Replaces the built-in evaluation: an error rate, fixed per step, without top1_acc."""

    name = "error_rate"
    RATES = {5: 0.5, 10: 0.2, 15: 0.2, 20: 0.3}  # the lowest at step 10, tied at 15

    @hookimpl(tryfirst=True)
    def evaluate(self, algorithm, step: int) -> dict[str, float]:
        return {"error_rate": self.RATES[step]}


def _console(capsys: pytest.CaptureFixture[str]) -> None:
    from semilearn.cli import setup_console

    setup_console()
    capsys.readouterr()


def test_the_final_line_names_the_monitored_metric_of_a_replaced_evaluate(tmp_path: Path, capsys) -> None:
    _console(capsys)
    result = train_in_process(tmp_path, "num_eval_iter=5", "monitor=error_rate", "mode=min", plugins=[ErrorRate()],
                              blocked=["logging", "checkpoint", "wandb", "aim"])
    out = capsys.readouterr().out
    assert result.best_metrics == {"step": 10, "error_rate": 0.2}
    assert "completed at step 20/20 in " in out
    assert "· final eval error_rate 0.3000 (step 20) · best 0.2000 (step 10)" in out
    assert "is not among the eval metrics" not in out


def test_a_monitor_no_evaluation_reports_is_said_once(tmp_path: Path, capsys) -> None:
    _console(capsys)
    result = train_in_process(tmp_path, "num_eval_iter=5", "monitor=f1", blocked=["logging", "checkpoint", "wandb",
                                                                                   "aim"])
    out = capsys.readouterr().out
    assert len(result.algorithm.eval_history) == 4 and result.best_metrics is None
    warning = "warning: " + missing_monitor_message("f1", ["balanced_acc", "loss", "top1_acc"])
    assert out.count(warning) == 1 and out.count("is not among the eval metrics") == 1
    assert "monitor 'f1' is not among the eval metrics (balanced_acc, loss, top1_acc)" in warning
    (final,) = [line for line in out.splitlines() if line.startswith("completed at step 20/20")]
    assert "best" not in final and "final" not in final


@pytest.mark.together
@pytest.mark.skipif(not (installed("semilearn-logging") and installed("semilearn-checkpoint")),
                    reason="needs semilearn-logging and semilearn-checkpoint")
def test_logging_checkpoint_and_inspect_name_the_same_best(tmp_path: Path, capsys, cli) -> None:
    _console(capsys)
    result = train_in_process(tmp_path, "num_eval_iter=5", "monitor=error_rate", "mode=min", plugins=[ErrorRate()],
                              blocked=["wandb", "aim"])
    out = capsys.readouterr().out
    assert result.status == "completed"
    assert "eval step 5/20 · error_rate 0.5000 · time " in out and out.count(" · best error_rate 0.2000") == 3
    # one summary line, on the console and in log.txt
    summary = "· final eval error_rate 0.3000 (step 20) · best 0.2000 (step 10)"
    assert out.count(summary) == 1
    assert (result.run_dir / "log.txt").read_text(encoding="utf-8").count(summary) == 1
    folder = result.run_dir / "checkpoints"
    assert f"checkpoints: {folder / 'last.pt'} (step 20), best.pt (step 10, eval error_rate 0.2000)" in out
    assert "not among the eval metrics" not in out

    best = torch.load(folder / "best.pt", map_location="cpu", weights_only=True)
    assert best["step"] == 10
    assert best["plugins"]["checkpoint"] == {"best_value": 0.2, "best_step": 10, "monitor": "error_rate",
                                             "mode": "min"}
    shown = cli("checkpoint", "inspect", str(folder / "last.pt"))
    assert shown.code == 0
    assert "  last eval: step 20, error_rate 0.3000\n" in shown.out
    assert "  best eval (min error_rate): step 10, error_rate 0.2000\n" in shown.out
