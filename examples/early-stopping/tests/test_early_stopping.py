"""Tests of the early-stopping plugin, run against the installed distribution.

    pip install . pytest && pytest tests

The decision logic is tested directly on the hook object; the rest through real
``semilearn`` processes, which find the plugin through its entry point like a user's do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from semilearn_early_stopping import EarlyStopping

from semilearn.config import Section

# A run small enough for a test: a few seconds on two CPU cores, an evaluation every 4 steps.
TINY = ["--set", "num_train_iter=40", "--set", "num_eval_iter=4", "--set", "num_log_iter=4",
        "--set", "epoch=2", "--set", "batch_size=16", "--set", "uratio=2"]


def semilearn(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m semilearn ARGS`` with every installed plugin active."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEMILEARN_")}
    return subprocess.run([sys.executable, "-m", "semilearn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# --8<-- [start:unit]
def plugin(**settings: Any) -> EarlyStopping:
    """The hook with its section set as the engine sets it (defaults, then ``settings``)."""
    hook = EarlyStopping()
    hook.name = "early_stopping"
    values = {option.name: option.default for option in EarlyStopping.config_options}
    hook.bind_config(Section({**values, **settings}, "early_stopping"))
    return hook


def algorithm(step: int = 0) -> Any:
    """Stands in for the running algorithm: what the plugin uses (its step and request_stop)."""
    run = SimpleNamespace(global_step=step, stop_reason=None)
    run.request_stop = lambda reason: setattr(run, "stop_reason", run.stop_reason or reason)
    return run


def test_stops_after_patience_evaluations_without_improvement() -> None:
    hook, run = plugin(patience=2), algorithm()
    for step, accuracy in [(1, 0.50), (2, 0.60), (3, 0.60), (4, 0.70), (5, 0.65)]:
        hook.after_evaluate(run, step, {"top1_acc": accuracy})
        assert run.stop_reason is None  # never two evaluations in a row without improvement
    assert (hook.best, hook.best_step, hook.bad_evaluations) == (0.70, 4, 1)
    hook.after_evaluate(run, 6, {"top1_acc": 0.69})
    assert run.stop_reason == "early stopping: top1_acc has not improved for 2 evaluations (best 0.7 at step 4)"
# --8<-- [end:unit]


def test_min_mode_min_delta_and_no_patience() -> None:
    hook, run = plugin(patience=1, monitor="loss", mode="min", min_delta=0.1), algorithm()
    hook.after_evaluate(run, 1, {"loss": 1.0})
    hook.after_evaluate(run, 2, {"loss": 0.8})  # better by 0.2: an improvement
    assert run.stop_reason is None and hook.best == 0.8
    hook.after_evaluate(run, 3, {"loss": 0.75})  # better by less than min_delta: not one
    assert run.stop_reason is not None
    patient, run = plugin(patience=None), algorithm()
    for step in range(1, 20):
        patient.after_evaluate(run, step, {"top1_acc": 0.5})
    assert run.stop_reason is None and patient.bad_evaluations == 18


def test_counters_survive_a_checkpoint_and_a_stopped_run_stays_stopped() -> None:
    hook, run = plugin(patience=3), algorithm()
    for step, accuracy in [(1, 0.5), (2, 0.4), (3, 0.4)]:
        hook.after_evaluate(run, step, {"top1_acc": accuracy})
    state: dict[str, Any] = {}
    hook.save_checkpoint(run, state)
    assert state["plugins"]["early_stopping"]["bad_evaluations"] == 2

    restored, resumed = plugin(patience=3), algorithm(3)
    restored.load_checkpoint(resumed, state)
    assert (restored.best, restored.best_step, restored.bad_evaluations) == (0.5, 1, 2)
    restored.after_evaluate(resumed, 4, {"top1_acc": 0.45})
    assert resumed.stop_reason is not None  # the third evaluation in a row, counted across the resume

    restored.save_checkpoint(resumed, state)
    again = algorithm(4)
    plugin(patience=3).load_checkpoint(again, state)
    assert again.stop_reason is not None  # resuming an early-stopped run does not train on
    more_patient = algorithm(4)
    plugin(patience=10).load_checkpoint(more_patient, state)
    assert more_patient.stop_reason is None  # unless the user asks for more patience


def test_a_missing_metric_is_a_clear_error() -> None:
    from semilearn import ConfigError

    with pytest.raises(ConfigError, match="early_stopping.monitor is 'top5_acc'"):
        plugin(monitor="top5_acc").after_evaluate(algorithm(), 1, {"top1_acc": 0.5})


def test_semilearn_lists_the_plugin(tmp_path: Path) -> None:
    result = semilearn("plugins", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = {entry["name"]: entry for entry in json.loads(result.stdout)["plugins"]}["early_stopping"]
    assert record["distribution"] == "semilearn-early-stopping" and record["status"] == "active"
    assert record["hooks"] == ["after_evaluate", "load_checkpoint", "save_checkpoint"]
    assert record["config_section"] == ["patience", "monitor", "mode", "min_delta"]


def test_a_run_stops_early(tmp_path: Path) -> None:
    # min_delta 1.0: no evaluation after the first can improve, so the stop is certain.
    result = semilearn("run", *TINY, "--set", "early_stopping.patience=2", "--set", "early_stopping.min_delta=1.0",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "early stopping: top1_acc has not improved for 2 evaluations" in result.stdout
    assert "at step 12/40" in result.stdout.splitlines()[-1]


def test_wrong_settings_are_refused_before_training(tmp_path: Path) -> None:
    result = semilearn("run", "--set", "early_stopping.patience=0", cwd=tmp_path)
    assert result.returncode != 0
    assert "early_stopping.patience" in result.stderr and "got 0" in result.stderr
