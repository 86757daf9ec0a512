"""Does splitting the batch over two processes train as well as one process? Final accuracy, 1 vs 2.

Runs FixMatch on digits with the default settings (the same global batch: 64 labelled and 448
unlabelled images per step) for ``--steps`` steps with one process and with
``--nproc-per-node 2``, for each seed, and prints the final eval accuracies. The two
runs draw different samples and augmentations (the streams are split per process), so
they are not equal step for step; they should end within a point or two of each other.
This was a test once; an accuracy depends on the CPU's arithmetic, so it is measured here.

    python benchmarks/distributed_accuracy.py                  # 1000 steps, seed 0
    python benchmarks/distributed_accuracy.py --steps 3000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile


def final_accuracy(processes: int, steps: int, seed: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "semilearn", "run", "--set", "algorithm=fixmatch", "--set", f"num_train_iter={steps}",
                   "--set", f"num_eval_iter={steps}", "--set", f"seed={seed}", "--set", f"save_dir={folder}",
                   "-p", "no:checkpoint"]
        threads = "2"
        if processes > 1:
            command += ["--nproc-per-node", str(processes)]
            threads = "1"
        result = subprocess.run(command, check=True, capture_output=True, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS=threads))
    match = re.search(r"final eval accuracy ([\d.]+)%", result.stdout)
    assert match, result.stdout[-2000:]
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    print(f"## One process against two (digits, FixMatch, {args.steps} steps, same global batch)\n")
    print("| seed | 1 process | 2 processes | difference |")
    print("|---|---|---|---|")
    differences = []
    for seed in args.seeds:
        one, two = final_accuracy(1, args.steps, seed), final_accuracy(2, args.steps, seed)
        differences.append(two - one)
        print(f"| {seed} | {one:.2f}% | {two:.2f}% | {two - one:+.2f} |", flush=True)
    print(f"\nmean difference (2 - 1): {statistics.mean(differences):+.2f} points")


if __name__ == "__main__":
    main()
