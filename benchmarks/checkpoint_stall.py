"""How long the training loop stalls when a checkpoint is saved, with and without async saving.

Builds a real run (WRN-28-2 on synthetic 32x32 images by default, the size of USB's
classic-CV checkpoints; ``--widen 8`` for a WRN-28-8-sized one), then times
``CheckpointHook.save`` (what ``on_step_end`` calls) for each mode: synchronous writing
(serialise, fsync, rename) against asynchronous writing (the loop only copies the state;
a background thread writes). Saves are spaced by ``--gap`` seconds of simulated training,
as they are in a run. The disk here is shared, so read the ratio more than the seconds.

    python benchmarks/checkpoint_stall.py
    python benchmarks/checkpoint_stall.py --widen 8 --saves 5
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import tempfile
import time
from pathlib import Path

from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config


def measure(async_save: bool, args: argparse.Namespace) -> tuple[list[float], float, float]:
    manager = PluginManager().load()
    info = manager.infos.get("checkpoint")
    if info is None or not info.active:
        raise SystemExit("semilearn-checkpoint is not installed")
    with tempfile.TemporaryDirectory() as folder:
        config = load_config(manager, None, [
            "dataset=synthetic", f"net=wrn_28_{args.widen}", "batch_size=4", "uratio=1", "num_train_iter=10",
            f"save_dir={folder}", f"checkpoint.async_save={str(async_save).lower()}", "checkpoint.keep=2",
        ]).config
        algorithm = build_algorithm(config, manager, Path(folder) / "run")
        manager.hook.before_run(algorithm=algorithm)
        hook = info.plugin
        stalls = []
        for index in range(args.saves):
            algorithm.global_step = index + 1
            started = time.perf_counter()
            hook.save(algorithm, periodic=True)  # type: ignore[union-attr]
            stalls.append(time.perf_counter() - started)
            time.sleep(args.gap)
        started = time.perf_counter()
        manager.hook.after_run(algorithm=algorithm, status="completed", error=None)
        drain = time.perf_counter() - started
        size = (Path(folder) / "run" / "checkpoints" / "last.pt").stat().st_size / 1e6
    return stalls, drain, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saves", type=int, default=8)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds of training between saves")
    parser.add_argument("--widen", type=int, default=2, choices=(2, 8))
    args = parser.parse_args()
    logging.getLogger("semilearn").addHandler(logging.StreamHandler(io.StringIO()))
    logging.getLogger("semilearn").propagate = False

    results = {}
    for mode in (False, True, False, True):  # interleaved: noise hits both
        stalls, drain, size = measure(mode, args)
        results.setdefault(mode, []).extend(stalls)
        results.setdefault(("drain", mode), []).append(drain)
    sync, asynchronous = statistics.median(results[False]), statistics.median(results[True])
    print(f"## Checkpoint stall: WRN-28-{args.widen}, {size:.1f} MB per checkpoint, {args.saves} saves x 2 runs\n")
    print("| mode | median stall (ms) | max stall (ms) | wait at the end (ms) |")
    print("|---|---|---|---|")
    for label, mode in (("synchronous", False), ("async_save: true", True)):
        print(f"| {label} | {statistics.median(results[mode]) * 1e3:.1f} | {max(results[mode]) * 1e3:.1f} | "
              f"{statistics.median(results[('drain', mode)]) * 1e3:.1f} |")
    print(f"\n**the loop stalls {sync / asynchronous:.1f}x less with async_save**")


if __name__ == "__main__":
    main()
