"""The training step of two checkouts of semilearn, side by side: is one slower than the other?

Each round starts one process per checkout, in alternating order; each process builds
the same FixMatch run (data set, network, batch, every installed plugin active), warms
up, then times ``steps`` calls of the engine's step. Reported per checkout: the median
over rounds of the step time, as CPU time of the process (robust to other work on the
machine; with ``--threads 1`` it counts the step's work alone) and as wall time, and the
ratio of the second checkout to the first.

    git worktree add /tmp/before HEAD~1
    python benchmarks/side_by_side.py /tmp/before .                      # digits, batch 8, uratio 2
    python benchmarks/side_by_side.py /tmp/before . --dataset synthetic --net wrn_28_2 --batch-size 64 --uratio 7

A checkout is the root of a source tree (its ``core/`` and ``plugins/*/`` go first on
``PYTHONPATH``), so uncommitted work can be compared with a commit.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import io, json, logging, sys, tempfile, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config
args = json.loads(sys.argv[2])
logging.getLogger("semilearn").addHandler(logging.StreamHandler(io.StringIO()))
manager = PluginManager().load(blocked=["wandb", "aim"])
with tempfile.TemporaryDirectory() as folder:
    settings = ["algorithm=fixmatch", f"dataset={args['dataset']}", f"batch_size={args['batch_size']}",
                f"uratio={args['uratio']}", f"num_train_iter={args['steps'] + args['warmup'] + 1}",
                "num_eval_iter=1000000000", f"save_dir={folder}", "device=cpu"]
    if args["net"]:
        settings.append(f"net={args['net']}")
    config = load_config(manager, None, settings).config
    algorithm = build_algorithm(config, manager, __import__("pathlib").Path(folder) / "run")
    for step in range(args["warmup"]):
        algorithm._seed_step(step)
        algorithm.run_train_step()
    cpu, wall = time.process_time(), time.perf_counter()
    for step in range(args["warmup"], args["warmup"] + args["steps"]):
        algorithm._seed_step(step)
        algorithm.run_train_step()
    print(json.dumps({"cpu": (time.process_time() - cpu) / args["steps"],
                      "wall": (time.perf_counter() - wall) / args["steps"]}))
"""


def measure(root: Path, args: argparse.Namespace) -> dict[str, float]:
    paths = [str(root / "core"), *(str(folder) for folder in sorted((root / "plugins").glob("*")) if folder.is_dir())]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    settings = {"dataset": args.dataset, "net": args.net, "batch_size": args.batch_size, "uratio": args.uratio,
                "steps": args.steps, "warmup": args.warmup}
    done = subprocess.run([sys.executable, "-c", CHILD, str(args.threads), json.dumps(settings)], env=env,
                          capture_output=True, text=True, check=True, cwd=root)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="the baseline checkout")
    parser.add_argument("second", type=Path, help="the checkout compared with it")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--net", default="")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--uratio", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    roots = [args.first.resolve(), args.second.resolve()]
    results: dict[int, list[dict[str, float]]] = {0: [], 1: []}
    for turn in range(args.rounds):
        for side in ((0, 1) if turn % 2 == 0 else (1, 0)):
            results[side].append(measure(roots[side], args))
            print(f"round {turn + 1}, {roots[side]}: {results[side][-1]['cpu'] * 1e3:.2f} ms CPU, "
                  f"{results[side][-1]['wall'] * 1e3:.2f} ms wall per step", file=sys.stderr)
    print(f"## Step time side by side: fixmatch on {args.dataset}{' / ' + args.net if args.net else ''}, batch "
          f"{args.batch_size}, uratio {args.uratio}, {args.threads} thread(s), {args.rounds} alternated rounds of "
          f"{args.steps} steps\n")
    print("| checkout | CPU ms/step (median) | wall ms/step (median) |")
    print("|---|---|---|")
    medians = []
    for side, root in enumerate(roots):
        cpu = statistics.median(entry["cpu"] for entry in results[side])
        wall = statistics.median(entry["wall"] for entry in results[side])
        medians.append((cpu, wall))
        print(f"| {root} | {cpu * 1e3:.3f} | {wall * 1e3:.3f} |")
    print(f"\n**ratio second / first: CPU {medians[1][0] / medians[0][0]:.3f}, wall {medians[1][1] / medians[0][1]:.3f}**")


if __name__ == "__main__":
    main()
