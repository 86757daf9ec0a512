"""The example distribution (examples/early-stopping) works as a third-party plugin.

It is installed with pip like any distribution: when the nox session ``example`` has
installed it, as it is; otherwise into a temporary folder (``pip install --target``) put
on ``PYTHONPATH`` of the ``semilearn`` processes only, so other tests never see it.
Resume tests need semilearn-checkpoint and skip without it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Result, installed, run_process

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "early-stopping"

# 40 steps, an evaluation every 4. min_delta 1.0: no evaluation after the first improves,
# so with patience P the run stops at step 4 * (P + 1), whatever the accuracies are.
TINY = ("--set", "num_train_iter=40", "--set", "num_eval_iter=4", "--set", "num_log_iter=4", "--set", "epoch=2",
        "--set", "batch_size=16", "--set", "uratio=2", "--set", "early_stopping.min_delta=1.0")

needs_checkpoint = pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="semilearn-checkpoint is not installed")


@pytest.fixture(scope="module")
def example_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment variables under which ``semilearn`` finds the example plugin."""
    if installed("semilearn-early-stopping"):
        return {}
    root = tmp_path_factory.mktemp("example")
    source = root / "source"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    return {"PYTHONPATH": str(target)}


def _semilearn(env: dict[str, str], cwd: Path, *args: str) -> Result:
    return run_process(args, cwd=cwd, env=env)


def _stopped_at(result: Result) -> int:
    match = re.search(r"^(?:completed|interrupted) at step (\d+)/40", result.out, re.M)
    assert match is not None, result.out + result.err
    return int(match.group(1))


def _final_accuracy(result: Result) -> str:
    match = re.search(r"final eval accuracy ([\d.]+%) \(step (\d+)\)", result.out)
    assert match is not None, result.out
    return f"{match.group(1)} at {match.group(2)}"


def test_it_is_listed_like_any_installed_plugin(example_env: dict[str, str], tmp_path: Path) -> None:
    result = _semilearn(example_env, tmp_path, "plugins", "--json")
    assert result.code == 0, result.err
    listing = json.loads(result.out)
    record = {entry["name"]: entry for entry in listing["plugins"]}["early_stopping"]
    assert record["distribution"] == "semilearn-early-stopping" and record["version"] == "0.1.0"
    assert record["status"] == "active" and record["builtin"] is False
    assert record["hooks"] == ["after_evaluate", "load_checkpoint", "save_checkpoint"]
    assert "early_stopping" in listing["call_order"]["after_evaluate"]
    schema = _semilearn(example_env, tmp_path, "config", "show", "--schema")
    assert "early_stopping.patience: integer or null = 5" in schema.out


def test_a_run_stops_early(example_env: dict[str, str], tmp_path: Path) -> None:
    result = _semilearn(example_env, tmp_path, "run", *TINY, "--set", "early_stopping.patience=2")
    assert result.code == 0, result.err
    assert _stopped_at(result) == 12
    assert "early stopping: top1_acc has not improved for 2 evaluations" in result.out
    assert not re.search(r"^step 1[3-9]/40", result.out, re.M)  # no step after the stop


@needs_checkpoint
def test_early_stopping_survives_resume(example_env: dict[str, str], tmp_path: Path) -> None:
    import torch

    patience = ("--set", "early_stopping.patience=3")
    # the uninterrupted run: best at step 4, three evaluations without improvement, stop at 16
    through = _semilearn(example_env, tmp_path, "run", *TINY, *patience, "--set", "save_name=through")
    assert through.code == 0, through.err
    assert _stopped_at(through) == 16

    # the same run split into two processes: stop at step 10, then resume
    first = _semilearn(example_env, tmp_path, "run", *TINY, *patience, "--set", "save_name=split",
                       "--set", "stop_step=10")
    assert first.code == 0, first.err
    assert _stopped_at(first) == 10
    saved = torch.load(tmp_path / "saved_models" / "split" / "checkpoints" / "last.pt", weights_only=True)
    assert saved["plugins"]["early_stopping"]["bad_evaluations"] == 1  # evaluations at steps 4 and 8
    resumed = _semilearn(example_env, tmp_path, "run", "--resume", "saved_models/split")
    assert resumed.code == 0, resumed.err
    # counters restored: it stops where the uninterrupted run stopped (fresh counters would run to 24)
    assert _stopped_at(resumed) == 16
    assert "early stopping: top1_acc has not improved for 3 evaluations" in resumed.out
    assert _final_accuracy(resumed) == _final_accuracy(through)  # and it is the same run, bit for bit

    # resuming a run that stopped early does not train further
    again = _semilearn(example_env, tmp_path, "run", "--resume", "saved_models/split")
    assert again.code == 0, again.err
    assert _stopped_at(again) == 16
    assert not re.search(r"^step \d+/40", again.out, re.M)
    # unless the user asks for more patience
    more = _semilearn(example_env, tmp_path, "run", "--resume", "saved_models/split",
                      "--set", "early_stopping.patience=4")
    assert more.code == 0, more.err
    assert _stopped_at(more) == 20
