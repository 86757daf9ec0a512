"""Steps per second of one FixMatch step on synthetic 32x32x3 images with WRN-28-2, on this machine.

The real training step of the engine (sample, augment on the device, one forward pass over
labelled + weak + strong views, backward, SGD, EMA), for USB's batch (64 labelled,
uratio 7) and a small one (8, uratio 2). The first steps are warm-up.

    python benchmarks/cpu_step_rate.py
    python benchmarks/cpu_step_rate.py --steps 10 --device cuda --amp
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
import time
from pathlib import Path

import torch

from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config


def rate(batch_size: int, uratio: int, steps: int, warmup: int, extra: list[str]) -> float:
    manager = PluginManager().load(blocked=["logging", "checkpoint", "wandb", "aim"])
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(manager, None, [
            "algorithm=fixmatch", "dataset=synthetic", "net=wrn_28_2", f"batch_size={batch_size}", f"uratio={uratio}",
            f"num_train_iter={steps + warmup}", "num_eval_iter=1000000", "num_log_iter=1000000",
            f"save_dir={folder}", *extra,
        ]).config
        algorithm = build_algorithm(config, manager, Path(folder) / "run")
        manager.hook.before_run(algorithm=algorithm)
        for step in range(1, warmup + 1):
            algorithm._one_step(step)
        if algorithm.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for step in range(warmup + 1, warmup + steps + 1):
            algorithm._one_step(step)
        if algorithm.device.type == "cuda":
            torch.cuda.synchronize()
        return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    args = parser.parse_args()
    logging.getLogger("semilearn").addHandler(logging.StreamHandler(io.StringIO()))
    logging.getLogger("semilearn").propagate = False
    extra = [f"device={args.device}"] + (["amp=true"] if args.amp else [])
    print(f"## FixMatch step, WRN-28-2, synthetic 32x32x3, {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads{', amp' if args.amp else ''}\n")
    print("| batch | uratio | images per step | steps/s |")
    print("|---|---|---|---|")
    for batch_size, uratio in ((64, 7), (8, 2)):
        value = rate(batch_size, uratio, args.steps, args.warmup, extra)
        print(f"| {batch_size} | {uratio} | {batch_size * (1 + 2 * uratio)} | {value:.3f} |")


if __name__ == "__main__":
    main()
