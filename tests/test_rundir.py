"""Run directories: a new run never shares one with another run, also when many start at once."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

from conftest import FAST
from semilearn.config import resolve_config
from semilearn.rundir import CLAIM_FILE, claim_run_directory


def _claim(save_dir: str, barrier, results) -> None:  # noqa: ANN001 - multiprocessing objects
    config = resolve_config({"save_dir": save_dir, "save_name": "r"}, algorithm_options={"flexmatch": ()},
                            plugin_sections={}).config
    barrier.wait()  # every process claims at the same moment
    results.put(str(claim_run_directory(config)))


def test_processes_released_by_one_barrier_each_claim_a_directory_of_their_own(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    count = 8
    barrier, results = context.Barrier(count), context.Queue()
    (tmp_path / "race" / "r-3").mkdir(parents=True)  # an empty directory is free
    (tmp_path / "race" / "r-4").mkdir()
    (tmp_path / "race" / "r-4" / "config.yaml").write_text("a: 1\n")  # a run from before: never taken
    processes = [context.Process(target=_claim, args=(str(tmp_path / "race"), barrier, results)) for _ in range(count)]
    for process in processes:
        process.start()
    claimed = sorted(Path(results.get(timeout=120)).name for _ in range(count))
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert claimed == sorted(["r", "r-2", "r-3", *(f"r-{n}" for n in range(5, 10))])
    for name in claimed:
        assert (tmp_path / "race" / name / CLAIM_FILE).read_text().startswith("pid ")
    assert not (tmp_path / "race" / "r-4" / CLAIM_FILE).exists()


def test_runs_started_together_with_one_name_train_in_separate_directories(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "semilearn", "run", *FAST, "--set", "save_dir=race", "--set", "save_name=r"]
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEMILEARN_")}
    processes = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(3)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    directories = sorted(line.split("run directory: ")[1] for out, _ in outputs for line in out.splitlines()
                         if line.startswith("run directory: "))
    assert directories == ["race/r", "race/r-2", "race/r-3"]
    for directory in directories:
        assert (tmp_path / directory / "config.yaml").is_file()
        metrics = tmp_path / directory / "metrics.jsonl"
        if metrics.exists():  # one run's lines only
            steps = [line for line in metrics.read_text().splitlines() if '"split": "train"' in line]
            assert len(steps) == len(set(steps))
