"""What calling the SSL policies through the registry costs, against the same torch operations.

FixMatch's policy calls of one step (the ``"fixed"`` mask and the pseudo-labels, through
``SSLAlgorithm.mask`` and ``SSLAlgorithm.pseudo_label``) are timed against the bare torch
operations they run, on the same probabilities, in one process: the difference is the
dispatch (registry look-up, argument selection). Best of 7 rounds of 5,000 calls each.

    python benchmarks/policy_dispatch.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_overhead import build  # noqa: E402


def best_microseconds(function: Callable[[], object], rounds: int = 7, calls: int = 5000) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - started) / calls * 1e6)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=448, help="unlabelled samples (64 x uratio 7)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        algorithm, config = build(argparse.Namespace(dataset="digits", batch_size=64, uratio=7), folder, 10)
        probs = torch.softmax(torch.randn(args.batch, 10), dim=-1)
        cutoff = float(config.p_cutoff)

        def through_registry() -> object:
            return algorithm.mask("fixed", probs, p_cutoff=cutoff), algorithm.pseudo_label(probs)

        def bare() -> object:
            return (probs.max(dim=-1).values >= cutoff).to(probs.dtype), probs.argmax(dim=-1)

        for _ in range(2000):
            through_registry()
            bare()
        registry, direct = best_microseconds(through_registry), best_microseconds(bare)
    print(f"policy calls of a FixMatch step: {registry:.2f} us through the registry, {direct:.2f} us bare torch: "
          f"dispatch {registry - direct:.2f} us per step ({registry / direct:.3f}x)")


if __name__ == "__main__":
    main()
