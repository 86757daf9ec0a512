"""How long `semilearn run` takes to print its first line, against the whole start-up.

Each round starts ``python -m semilearn run`` (a one-step digits run, every installed
plugin active, trackers offline) and notes when its first line arrives, when the line
after the banner does (data, network and run directory built, trackers started) and when
the process ends. Beside it, ``python -c "import torch"`` in the same round: the start-up a
first line printed after torch would wait for. Medians over the rounds.

    python benchmarks/first_line.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def timed_run(folder: str) -> tuple[float, float, float]:
    """Seconds to the first line, to the first line after the banner, and to the end."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_MODE="offline")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "semilearn", "run", "--set", "num_train_iter=1", "--set", f"save_dir={folder}",
         "--set", "logging.progress=off"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=folder,
    )
    assert process.stdout is not None
    first = after_banner = None
    for line in process.stdout:
        now = time.perf_counter() - started
        if first is None:
            first = now
        if after_banner is None and line.startswith("run directory:"):
            after_banner = now
    process.wait()
    total = time.perf_counter() - started
    if process.returncode != 0 or first is None:
        raise SystemExit(f"the run failed (exit code {process.returncode})")
    return first, after_banner if after_banner is not None else total, total


def import_torch() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows: list[tuple[float, float, float, float]] = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            rows.append((*timed_run(folder), import_torch()))
    first, banner, total, torch_alone = (statistics.median(column) for column in zip(*rows, strict=True))
    print(f"## Time to the first line: `semilearn run`, {args.rounds} rounds, medians\n")
    print("| first line | banner done (trackers started) | process ends | `import torch` alone |")
    print("|---|---|---|---|")
    print(f"| {first:.2f} s | {banner:.2f} s | {total:.2f} s | {torch_alone:.2f} s |")


if __name__ == "__main__":
    main()
