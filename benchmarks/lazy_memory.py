"""Peak memory of a run on the lazy data path, against the data set's size.

Writes synthetic JPEG image folders (``dataset: image_folder``: ``train/<class>/`` and
``test/<class>/``, 32x32 colour images of 10 classes) of ``--sizes`` training images (5,000
and 50,000 by default; the test split stays at 500), then trains on each with
``semilearn run`` in a subprocess, lazily (``data_loading: lazy``, ``--workers`` worker
processes per stream), and samples every 0.1 s the memory of all the run's processes (the
training process and its workers): the sum of their resident sets (RSS: what the operating
system reports per process, shared pages counted in each) and of their proportional sets
(PSS: shared pages split between the processes, the honest total). ``--memory`` also runs
each size held in memory (``data_loading: memory``), for the contrast.

    python benchmarks/lazy_memory.py                          # 5,000 and 50,000 images, lazy
    python benchmarks/lazy_memory.py --memory --steps 100     # and held in memory

Each run builds the data set (its file list, the statistics pass over every image), trains
``--steps`` steps of FixMatch on WRN-28-2 (batch 16, uratio 7: 128 images read a step) and
evaluates at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def write_folder(root: Path, train: int, test: int, size: int = 32, classes: int = 10) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = rng.integers(30, 226, size=(classes, 3))
    for split, count in (("train", train), ("test", test)):
        for index in range(count):
            label = index % classes
            folder = root / split / f"c{label}"
            if index < classes:
                folder.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(colours[label] + rng.integers(-40, 41, size=(size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{index:06d}.jpg", quality=90)


def _children(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as handle:
                kids = [int(value) for value in handle.read().split()]
        except OSError:
            kids = []
        found += kids
        frontier += kids
    return found


def _field(pid: int, path: str, name: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}") as handle:
            for line in handle:
                if line.startswith(name):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def measure(args: list[str], cwd: Path) -> tuple[int, int, float, str]:
    """Peak summed RSS and PSS (bytes) of the process tree, seconds, and the run's last line."""
    process = subprocess.Popen([sys.executable, "-m", "semilearn", "run", *args], cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    peaks = [0, 0]

    def sample() -> None:
        while process.poll() is None:
            pids = [process.pid, *_children(process.pid)]
            peaks[0] = max(peaks[0], sum(_field(pid, "status", "VmRSS:") for pid in pids))
            peaks[1] = max(peaks[1], sum(_field(pid, "smaps_rollup", "Pss:") for pid in pids))
            time.sleep(0.1)

    started = time.perf_counter()
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out, _ = process.communicate()
    seconds = time.perf_counter() - started
    watcher.join()
    if process.returncode:
        raise SystemExit(f"the run failed ({process.returncode}):\n{out}")
    return peaks[0], peaks[1], seconds, out.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="also run each size held in memory")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {args.steps} steps, {args.workers} workers "
          "per stream", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for size in args.sizes:
            data = root / f"folder{size}"
            started = time.perf_counter()
            write_folder(data, size, 500)
            print(f"wrote {size} + 500 JPEG images in {time.perf_counter() - started:.0f} s", flush=True)
            for loading in ("lazy", "memory") if args.memory else ("lazy",):
                settings = ["--set", "dataset=image_folder", "--set", f"data_dir={data}", "--set", "num_labels=40",
                            "--set", "algorithm=fixmatch", "--set", "batch_size=16", "--set", "uratio=7",
                            "--set", f"num_train_iter={args.steps}", "--set", f"num_eval_iter={args.steps}",
                            "--set", f"data_loading={loading}", "--set", f"num_workers={args.workers}",
                            "--set", f"save_dir={root / 'runs'}", "-p", "no:checkpoint"]
                rss, pss, seconds, last = measure(settings, root)
                rows.append((size, loading, rss, pss, seconds))
                print(f"{size:>6} images, {loading:<6}: peak RSS {rss / 2**20:7.0f} MiB, peak PSS {pss / 2**20:7.0f} MiB,"
                      f" {seconds:5.0f} s ({last})", flush=True)
    print("\n| training images | path | peak RSS, all processes | peak PSS, all processes | run |")
    print("|---|---|---|---|---|")
    for size, loading, rss, pss, seconds in rows:
        print(f"| {size:,} | {loading} | {rss / 2**20:.0f} MiB | {pss / 2**20:.0f} MiB | {seconds:.0f} s |")
    for loading in ("lazy", "memory"):
        chosen = [row for row in rows if row[1] == loading]
        if len(chosen) >= 2:
            first, last = chosen[0], chosen[-1]
            print(f"{loading}: {last[0]:,} images against {first[0]:,}: RSS x{last[2] / first[2]:.3f}, "
                  f"PSS x{last[3] / first[3]:.3f}")


if __name__ == "__main__":
    main()
