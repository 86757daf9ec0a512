"""How fast the lazy data path reads, and what it costs a training step.

1. **Reading.** ``--images`` synthetic JPEG files (``--side`` pixels, 10 classes) are read in
   batches of ``--batch`` by the lazy path (:class:`semilearn.data.lazy.StreamLoader`: a seeded
   stream's batches read ahead by ``--workers`` processes, decoded and resized to ``--resize``)
   and by a plain ``torch.utils.data.DataLoader`` doing the same (a ``Dataset`` that opens,
   converts and resizes each file with Pillow, a ``RandomSampler``, the same batch size and
   worker count), side by side, alternating, ``--rounds`` times each; images per second and
   the ratio.
2. **Training.** The engine trains FixMatch on WRN-28-2 on the same folder (32x32 after
   resizing; batch 16, uratio 7: 128 images a step) for ``--steps`` steps, fed lazily and from
   memory, alternating; steps per second of each and the ratio (the data set's build is not
   timed: the training loop is).

    python benchmarks/lazy_throughput.py
    python benchmarks/lazy_throughput.py --images 4000 --side 96 --resize 64 --workers 2

On two cores the workers and the step share the CPU: the ratio is what a user of such a
machine gets.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def write_folder(root: Path, count: int, side: int, classes: int = 10) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    colours = rng.integers(30, 226, size=(classes, 3))
    files = []
    for split, number in (("train", count), ("test", 200)):
        for index in range(number):
            label = index % classes
            folder = root / split / f"c{label}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = np.clip(colours[label] + rng.integers(-40, 41, size=(side, side, 3)), 0, 255).astype(np.uint8)
            path = folder / f"{index:06d}.jpg"
            Image.fromarray(pixels).save(path, quality=90)
            if split == "train":
                files.append(path)
    return files


class PlainFolder(torch.utils.data.Dataset):
    """What a PyTorch user writes: open, convert, resize, to a uint8 tensor."""

    def __init__(self, files: list[Path], side: int) -> None:
        self.files, self.side = files, side

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        with Image.open(self.files[index]) as image:
            image = image.convert("RGB").resize((self.side, self.side), Image.Resampling.BILINEAR)
            array = np.asarray(image)
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))), index % 10


def read_lazily(files: list[Path], args: argparse.Namespace, batches: int) -> float:
    from semilearn.data.imagefiles import ResizeExactly
    from semilearn.data.lazy import ImageFileReader, LazySamples, StreamLoader
    from semilearn.data.sampler import SampleStream

    samples = LazySamples(ImageFileReader(files, ResizeExactly(args.resize, args.resize), (args.resize, args.resize)),
                          (3, args.resize, args.resize))
    stream = SampleStream(len(files), args.batch, 0, torch.device("cpu"))
    loader = StreamLoader(stream, samples, args.workers)
    loader.batch(stream.next())  # the workers start
    started = time.perf_counter()
    for _ in range(batches):
        loader.batch(stream.next())
    seconds = time.perf_counter() - started
    loader.close()
    return batches * args.batch / seconds


def read_plainly(files: list[Path], args: argparse.Namespace, batches: int) -> float:
    dataset = PlainFolder(files, args.resize)
    sampler = torch.utils.data.RandomSampler(dataset, num_samples=(batches + 1) * args.batch)  # passes in a row
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, sampler=sampler, num_workers=args.workers,
                                         drop_last=True)
    iterator = iter(loader)
    next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    seconds = time.perf_counter() - started
    del iterator
    return batches * args.batch / seconds


def train(folder: Path, loading: str, args: argparse.Namespace) -> float:
    from semilearn.plugins import PluginManager
    from semilearn.runner import build_algorithm, load_config

    manager = PluginManager().load(environ={"SEMILEARN_DISABLE_PLUGIN_AUTOLOAD": "1"})
    with tempfile.TemporaryDirectory() as runs:
        config = load_config(manager, None, [
            "dataset=image_folder", f"data_dir={folder}", "num_labels=40", "algorithm=fixmatch", "net=wrn_28_2",
            "img_size=32", "batch_size=16", "uratio=7", f"num_train_iter={args.steps}",
            f"num_eval_iter={args.steps * 10}", f"data_loading={loading}", f"num_workers={args.workers}",
            f"save_dir={runs}", "channels_last=false"]).config
        algorithm = build_algorithm(config, manager, Path(runs) / "run")
        started = time.perf_counter()
        algorithm.fit()
        return args.steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--side", type=int, default=96, help="side of the JPEG files")
    parser.add_argument("--resize", type=int, default=64, help="side they are read at (reading benchmark)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=40, help="batches timed per reading round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="training steps timed per round")
    parser.add_argument("--only", choices=("reading", "training"), help="run one of the two measurements")
    args = parser.parse_args()
    logging.getLogger("semilearn").setLevel(logging.WARNING)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
          f"{torch.get_num_threads()} threads; {args.workers} workers", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        files = write_folder(root, args.images, args.side)
        lazy, plain = [], []
        for _ in range(args.rounds if args.only != "training" else 0):
            lazy.append(read_lazily(files, args, args.batches))
            plain.append(read_plainly(files, args, args.batches))
        if lazy:
            lazy_rate, plain_rate = statistics.median(lazy), statistics.median(plain)
            print(f"reading {args.side}px JPEG files at {args.resize}px, batches of {args.batch}: lazy path "
                  f"{lazy_rate:.0f} images/s, plain DataLoader {plain_rate:.0f} images/s, ratio {lazy_rate / plain_rate:.2f} "
                  f"(medians of {args.rounds} rounds: {[round(v) for v in lazy]} / {[round(v) for v in plain]})",
                  flush=True)
        if args.only == "reading":
            return
        fed_lazily, from_memory = [], []
        for _ in range(args.rounds):
            fed_lazily.append(train(root, "lazy", args))
            from_memory.append(train(root, "memory", args))
        lazy_steps, memory_steps = statistics.median(fed_lazily), statistics.median(from_memory)
        print(f"training WRN-28-2, 32px, 128 images a step: fed lazily {lazy_steps:.2f} steps/s, from memory "
              f"{memory_steps:.2f} steps/s, ratio {lazy_steps / memory_steps:.2f} "
              f"(medians of {args.rounds}: {[round(v, 2) for v in fed_lazily]} / {[round(v, 2) for v in from_memory]})",
              flush=True)


if __name__ == "__main__":
    main()
