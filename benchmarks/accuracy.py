"""Accuracy of every algorithm on digits with 40 labels, at one step budget for all.

Each algorithm trains with its default hyperparameters (USB's CIFAR-10 values) on the
default digits setup (small_cnn, batch 64, ``uratio`` 7, EMA evaluation), for the same
number of steps and the same seeds, one run after another in this process; the test
accuracy of the last evaluation (the EMA model at the last step) is reported as the mean
over seeds and per seed, with the mean wall time of a run. Only the options that are
schedule lengths are rescaled to the budget (see ``SCHEDULE_OVERRIDES``). The result is
a Markdown table, written to ``docs/algorithms-benchmark.md`` by default::

    python benchmarks/accuracy.py                                  # every algorithm, 2 seeds
    python benchmarks/accuracy.py --steps 1500 --seeds 0 1 --algorithms fixmatch flexmatch
    python benchmarks/accuracy.py --output -                       # print the table only
    python benchmarks/accuracy.py --jobs 2                         # two runs at a time (one thread each)

Runs are CPU-bound; keep other work off the machine (``nice -n 5`` yields to it) or
expect the times to move. With ``--jobs N`` that many runs train at once, each in its own
process with one thread (``--threads`` to change); times are then those of parallel runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from semilearn.algorithms import BUILTIN_ALGORITHMS
from semilearn.plugins import PluginManager
from semilearn.runner import load_config, run

DOCS = Path(__file__).resolve().parent.parent / "docs"
DEFAULT_OUTPUT = DOCS / "algorithms-benchmark.md"
GUIDE = DOCS / "algorithms.md"  # its block between these markers gets the table too
MARKERS = ("<!-- benchmark:start -->", "<!-- benchmark:end -->")
DEFAULT_STEPS = 1500
DEFAULT_SEEDS = (0, 1)

# Options that are lengths of a schedule in steps (not fractions of the run): scaled to the budget
# so that they keep the proportion they have in USB's 1,048,576-step runs.
SCHEDULE_OVERRIDES = {
    # USB: 2048 warm-up steps of ~1M; here 10% of the run, so that Dash trains on unlabelled data.
    "dash": lambda steps: [f"num_wu_iter={steps // 10}"],
}


@dataclass
class Outcome:
    algorithm: str
    seed: int
    accuracy: float
    best: float
    seconds: float


def train(algorithm: str, seed: int, steps: int, folder: Path) -> Outcome:
    """One run without logging or checkpoint plugins; returns its final and best accuracy."""
    manager = PluginManager().load(blocked=["logging", "checkpoint"])
    overrides = [
        f"algorithm={algorithm}", "dataset=digits", "num_labels=40", f"seed={seed}", f"num_train_iter={steps}",
        f"num_eval_iter={max(steps // 5, 1)}", f"num_log_iter={steps}", f"save_dir={folder}",
        *SCHEDULE_OVERRIDES.get(algorithm, lambda steps: [])(steps),
    ]
    config = load_config(manager, None, overrides).config
    started = time.perf_counter()
    result = run(config, manager)
    seconds = time.perf_counter() - started
    final = result.final_metrics or {}
    best = result.best_metrics or {}
    return Outcome(algorithm, seed, float(final.get("top1_acc", float("nan"))),
                   float(best.get("top1_acc", float("nan"))), seconds)


def table(outcomes: Sequence[Outcome], steps: int, seeds: Sequence[int], command: str,
          total_seconds: float | None = None) -> str:
    """The Markdown table, sorted by mean accuracy, with its legend and how to reproduce it.

    ``total_seconds``, when given, is the wall time of the whole benchmark.
    """
    by_algorithm: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_algorithm.setdefault(outcome.algorithm, []).append(outcome)
    baseline = by_algorithm.get("supervised")
    baseline_mean = statistics.mean(o.accuracy for o in baseline) if baseline else None
    rows = sorted(by_algorithm.items(), key=lambda item: -statistics.mean(o.accuracy for o in item[1]))
    seed_columns = " | ".join(f"seed {seed}" for seed in seeds)
    lines = [
        f"Test accuracy (%) of the EMA model after {steps} steps; default digits setup (small_cnn, batch 64, "
        "uratio 7), each algorithm with its default hyperparameters (USB's CIFAR-10 values; Dash's 2048-step "
        "warm-up scaled to 10% of the run), "
        f"seeds {', '.join(str(seed) for seed in seeds)}. "
        "Time: mean wall time of one run on this machine's CPU (shared with other work, whose load changes "
        "during the benchmark: compare times with care).",
        "",
        f"| algorithm | mean | vs supervised | {seed_columns} | time |",
        "|---|---:|---:|" + "---:|" * len(seeds) + "---:|",
    ]
    for name, runs in rows:
        per_seed = {o.seed: o.accuracy for o in runs}
        mean = statistics.mean(o.accuracy for o in runs)
        delta = "" if baseline_mean is None or name == "supervised" else f"{100 * (mean - baseline_mean):+.1f}"
        cells = " | ".join(f"{100 * per_seed[seed]:.1f}" if seed in per_seed else "" for seed in seeds)
        seconds = statistics.mean(o.seconds for o in runs)
        lines.append(f"| {name} | {100 * mean:.1f} | {delta} | {cells} | {seconds / 60:.1f} min |")
    if total_seconds is not None:
        lines += ["", f"Wall time of the whole benchmark: {total_seconds / 60:.0f} min."]
    lines += ["", "Reproduce:", "", "```bash", command, "```"]
    return "\n".join(lines)


def write(body: str, output: str) -> None:
    """Write the page, and refresh the marked block of the algorithms guide when writing the default page."""
    Path(output).write_text("# Accuracy of the algorithms on digits, 40 labels\n\n" + body + "\n", encoding="utf-8")
    if Path(output).resolve() != DEFAULT_OUTPUT or not GUIDE.exists():
        return
    guide = GUIDE.read_text(encoding="utf-8")
    start, end = MARKERS
    if start in guide and end in guide:
        before, rest = guide.split(start, 1)
        after = rest.split(end, 1)[1]
        GUIDE.write_text(f"{before}{start}\n{body}\n{end}{after}", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="training steps of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--algorithms", nargs="+", default=list(BUILTIN_ALGORITHMS),
                        help="algorithms to run (default: every built-in one)")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="Markdown file to write, or - for stdout")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run (default: torch's choice; 1 with --jobs above 1)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    parser.add_argument("--results", default=None,
                        help="JSON-lines file of finished runs: runs already in it (same steps) are not repeated, "
                             "new ones are appended (continue a cut-off benchmark, or rerun some algorithms)")
    args = parser.parse_args(argv)
    threads = args.threads or (1 if args.jobs > 1 else None)

    command = "python benchmarks/accuracy.py --steps {} --seeds {}".format(args.steps, " ".join(map(str, args.seeds)))
    if args.algorithms != list(BUILTIN_ALGORITHMS):
        command += " --algorithms " + " ".join(args.algorithms)
    if args.jobs > 1:
        command += f" --jobs {args.jobs}"
    started = time.perf_counter()
    done = {(o.algorithm, o.seed): o for o in load_results(args.results, args.steps)}
    jobs = [(algorithm, seed, args.steps, threads) for algorithm in args.algorithms for seed in args.seeds
            if (algorithm, seed) not in done]
    outcomes = [done[key] for key in ((a, s) for a in args.algorithms for s in args.seeds) if key in done]
    body = table(outcomes, args.steps, args.seeds, command) if outcomes else ""
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for outcome in pool.map(run_job, jobs):  # in submission order, so the table grows row by row
            outcomes.append(outcome)
            save_result(args.results, outcome, args.steps)
            print(f"{outcome.algorithm:<12} seed {outcome.seed}: {100 * outcome.accuracy:.2f}% "
                  f"(best {100 * outcome.best:.2f}%) in {outcome.seconds:.0f} s", file=sys.stderr, flush=True)
            body = table(outcomes, args.steps, args.seeds, command)
            if args.output != "-":  # rewritten after every run, so a cut-off benchmark leaves its part
                write(body, args.output)
    if outcomes:  # the total is known only when this invocation ran every run
        body = table(outcomes, args.steps, args.seeds, command, None if done else time.perf_counter() - started)
        if args.output != "-":
            write(body, args.output)
    if args.output == "-":
        print(body)
    return 0


def load_results(path: str | None, steps: int) -> list[Outcome]:
    """The runs of ``steps`` steps recorded in ``path`` (none when it is absent)."""
    if not path or not Path(path).exists():
        return []
    records = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Outcome(r["algorithm"], r["seed"], r["accuracy"], r["best"], r["seconds"])
            for r in records if r["steps"] == steps]


def save_result(path: str | None, outcome: Outcome, steps: int) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({**dataclasses.asdict(outcome), "steps": steps}) + "\n")


def run_job(job: tuple[str, int, int, int | None]) -> Outcome:
    """One run in a worker process (its own temporary run directory)."""
    algorithm, seed, steps, threads = job
    if threads:
        torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as folder:
        return train(algorithm, seed, steps, Path(folder))


if __name__ == "__main__":
    raise SystemExit(main())
