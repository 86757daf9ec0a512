"""Does the work per process halve with two processes? Steps per second, 1 vs 2 processes.

Runs the same FixMatch configuration (the same global batch: 64 labelled, 448 unlabelled
per step) once with one process and once with ``--nproc-per-node 2``, each process on one
CPU thread, and reads the training throughput the ``timing`` plugin logs into
``metrics.jsonl`` (needs semilearn-logging). With two processes each one draws and
augments half the batch, so the time per step should approach half, plus the gradient
all-reduce. Alternating rounds; medians.

    python benchmarks/distributed_scaling.py              # digits, small_cnn
    python benchmarks/distributed_scaling.py --rounds 3 --steps 400
    python benchmarks/distributed_scaling.py --rounds 1 --steps 30 -- --set dataset=synthetic --set batch_size=16 --set uratio=2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def steps_per_second(processes: int, steps: int, extra: list[str]) -> float:
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "semilearn", "run", "--set", "algorithm=fixmatch", "--set", f"num_train_iter={steps}",
                   "--set", f"num_eval_iter={steps}", "--set", f"num_log_iter={max(1, steps // 6)}", "--set", f"save_dir={folder}",
                   "--set", "checkpoint.interval=0", "--set", "checkpoint.save_best=false", *extra]
        if processes > 1:
            command += ["--nproc-per-node", str(processes)]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        subprocess.run(command, check=True, capture_output=True, env=env)
        (run_dir,) = Path(folder).iterdir()
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["steps_per_sec"] for r in records if r["split"] == "train" and "steps_per_sec" in r]
    return statistics.median(rates[1:])  # the first interval holds start-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more --set overrides, e.g. --set dataset=synthetic")
    args = parser.parse_args()
    one, two = [], []
    for _ in range(args.rounds):
        one.append(steps_per_second(1, args.steps, args.extra))
        two.append(steps_per_second(2, args.steps, args.extra))
        print(f"1 process {one[-1]:.1f} steps/s, 2 processes {two[-1]:.1f} steps/s", file=sys.stderr)
    single, double = statistics.median(one), statistics.median(two)
    print("## Distributed scaling (CPU, gloo, one thread per process, same global batch)\n")
    print("| processes | steps/s (median) | rounds | seconds per step |")
    print("|---|---|---|---|")
    print(f"| 1 | {single:.1f} | {', '.join(f'{v:.1f}' for v in one)} | {1 / single * 1e3:.1f} ms |")
    print(f"| 2 | {double:.1f} | {', '.join(f'{v:.1f}' for v in two)} | {1 / double * 1e3:.1f} ms |")
    print(f"\n**time per step, 2 processes / 1 process: {single / double:.2f}** (ideal 0.50)")


if __name__ == "__main__":
    main()
