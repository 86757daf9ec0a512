"""Distributed training on CPU: two processes with gloo, through torchrun's launcher.

Every test starts ``semilearn run --nproc-per-node 2`` (which hands over to
``torch.distributed.run``) as a real subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import FAST, installed

pytestmark = [
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available"),
    pytest.mark.together,  # one writer per plugin, whichever are installed
]

TWO = ("--nproc-per-node", "2")


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def _run(tmp_path: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "semilearn", "run", *args], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _wait_for_file(root: Path, pattern: str, process: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list(root.glob(pattern)):
        assert process.poll() is None, "the run ended early"
        assert time.monotonic() < deadline, f"no {pattern} in {root} after {timeout} s"
        time.sleep(0.05)


def _no_test_plugins() -> tuple[str, ...]:
    return ("-p", "no:recorder", "-p", "no:recorder_late") if installed("semilearn-test-recorder") else ()


def test_two_processes_train_with_one_writer(tmp_path: Path) -> None:
    result = _run(tmp_path, *TWO, *FAST, "--set", "num_train_iter=30", "--set", "save_dir=runs", *_no_test_plugins())
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("run directory:") == 1  # one process prints
    assert "device: cpu x 2 processes" in out and "completed at step 30/30" in out
    (run_dir,) = [path for path in (tmp_path / "runs").iterdir() if not path.name.startswith(".")]
    if installed("semilearn-logging"):
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        keys = [(record["step"], record["split"]) for record in records]
        assert len(keys) == len(set(keys))  # one writer: no line twice
        assert keys[-1] == (30, "eval")
        assert (run_dir / "log.txt").read_text().count("run directory:") == 1
    if installed("semilearn-checkpoint"):
        state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
        assert state["world_size"] == 2 and state["step"] == 30
        assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    if installed("semilearn-wandb"):
        assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1
    if installed("semilearn-aim"):
        from test_aim import read_repo

        runs = read_repo(tmp_path / "runs" / ".aim")["runs"]
        assert len(runs) == 1 and not runs[0]["active"]


@pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="resume needs semilearn-checkpoint")
def test_sigterm_to_the_launcher_saves_and_the_run_resumes(tmp_path: Path) -> None:
    args = (*TWO, *FAST, "--set", "num_train_iter=100000", "--set", "num_eval_iter=100000",
            "--set", "checkpoint.interval=5", "--set", "save_dir=runs", *_no_test_plugins())
    launcher = subprocess.Popen([sys.executable, "-m", "semilearn", "run", *args], cwd=tmp_path, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert launcher.stdout is not None
        for line in launcher.stdout:
            if line.startswith("run directory:"):
                break
        _wait_for_file(tmp_path / "runs", "*/checkpoints/step_*.pt", launcher)  # training is under way
        launcher.send_signal(signal.SIGTERM)
        out, err = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode == 143, err
    assert "SIGTERM received: finishing step" in out
    (run_dir,) = [path for path in (tmp_path / "runs").iterdir() if not path.name.startswith(".")]
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert saved["world_size"] == 2 and saved["step"] > 0
    assert f"interrupted at step {saved['step']}/100000" in out

    resumed = _run(tmp_path, *TWO, "--resume", str(run_dir), "--set", f"stop_step={saved['step'] + 5}",
                   *_no_test_plugins())
    assert resumed.returncode == 0, resumed.stderr
    assert f"(step {saved['step']})" in resumed.stdout
    assert f"interrupted at step {saved['step'] + 5}/100000" in resumed.stdout
    one_process = _run(tmp_path, "--resume", str(run_dir), *_no_test_plugins())
    assert one_process.returncode != 0
    assert "written by 2 process(es); resume it with the same number (this run has 1)" in one_process.stderr


@pytest.mark.skipif(not installed("semilearn-test-recorder"), reason="needs the test plugin distribution")
def test_one_rank_raising_ends_the_job_with_a_clear_error(tmp_path: Path) -> None:
    """The other rank stops at once, not when a collective times out: that timeout is set to an
    hour, past the subprocess's own limit, so waiting for it would fail the test on any machine."""
    started = time.monotonic()
    result = _run(tmp_path, *TWO, *FAST, "--set", "num_train_iter=100000", "--set", "save_dir=runs",
                  "--set", "dist_timeout=3600", "--set", "recorder.fail_at=before_train_step",
                  "--set", "recorder.fail_rank=1", "--set", "recorder.fail_step=20", timeout=600)
    seconds = time.monotonic() - started
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "error: [rank 1] RuntimeError: recorder failing in before_train_step as asked" in lines[0]
    assert "error: [rank 0] stopped because another process of the run failed" in result.stderr
    assert lines[-1] == "error: the distributed run failed: rank 1 exited with code 1 (its error is above)"
    assert "Traceback" not in result.stderr
    assert "\nfailed at step " in result.stdout
    print(f"\nthe job ended {seconds:.1f} s after it started (failure at step 20)")


READ_LOG = '''
import os

import numpy as np
import torch


class Coloured(torch.utils.data.Dataset):
    """uint8 images [3, 10, 10] of 4 classes; every read is written down with the reading rank."""

    def __init__(self, count, seed, split):
        rng = np.random.default_rng(seed)
        self.targets = [index % 4 for index in range(count)]  # labels without reading the items
        self.noise = rng.integers(0, 40, size=(count, 3, 10, 10))
        self.split = split

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        with open(f"reads-{os.environ['RANK']}.txt", "a") as log:
            log.write(f"{self.split} {index}\\n")
        colour = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])[self.targets[index]]
        return torch.from_numpy((colour[:, None, None] + self.noise[index]).clip(0, 255).astype(np.uint8)), \\
            self.targets[index]


def make(config):
    return {"train": Coloured(48, 0, "train"), "test": Coloured(12, 1, "test")}
'''


def test_lazy_data_under_two_processes_each_reads_its_share_and_trains_as_from_memory(tmp_path: Path) -> None:
    """Two ranks read their half of each global batch (FAST: 16 labelled + 32 unlabelled): 20
    steps are 480 training reads a rank, where reading whole batches would be 960; the weights
    equal those of the same run with the samples in memory."""
    (tmp_path / "readlog.py").write_text(READ_LOG)
    runs = {}
    for loading in ("lazy", "memory"):
        folder = tmp_path / loading
        folder.mkdir()
        result = subprocess.run(
            [sys.executable, "-m", "semilearn", "run", *TWO, *FAST, "--set", "dataset=readlog:make",
             "--set", "num_labels=8", "--set", f"data_loading={loading}", "--set", "num_workers=1",
             "--set", "save_dir=runs", *_no_test_plugins()],
            cwd=folder, env=_env(PYTHONPATH=str(tmp_path)), capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        assert ("read from disk as steps need them, by 1 worker per stream" in result.stdout) == (loading == "lazy")
        runs[loading] = folder
    for rank in ("0", "1"):
        reads = (runs["lazy"] / f"reads-{rank}.txt").read_text().split()
        splits = reads[0::2]
        # building: item 0 (the shape) and one pass over the training set (the channel statistics)
        training = splits.count("train") - 1 - 48
        lookahead = 2 * (8 + 16)  # prefetch_factor batches of each stream, ahead of the steps
        assert 20 * (8 + 16) <= training <= 20 * (8 + 16) + lookahead, (rank, training)
        assert splits.count("test") == 12  # two evaluations of half the test set each
    if installed("semilearn-checkpoint"):
        lazy, memory = (torch.load(runs[loading] / "runs" / "flexmatch_readlog_make_8_0" / "checkpoints" / "last.pt",
                                   weights_only=True) for loading in ("lazy", "memory"))
        assert lazy["world_size"] == 2 and lazy["step"] == 20
        for name, tensor in memory["model"].items():
            assert torch.equal(lazy["model"][name], tensor), name
        assert lazy["eval_history"] == memory["eval_history"]
