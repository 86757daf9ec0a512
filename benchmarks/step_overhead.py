"""What the engine costs per training step, against a bare PyTorch loop doing the same math.

Both sides train the same network on the same data with the same batch, the same batched
augmentation, the same optimizer, schedule and EMA update. The semilearn side is the
engine's step with every installed plugin active and every per-step hook point fired
(logging to files at log points, timing, EMA; evaluation and checkpoint writing off, so
that the test split and the disk do not enter); the bare side is a plain loop. They run
in alternating blocks in one process and each engine block is compared with the bare
block beside it, so the machine's noise hits both alike. Also reported: the cost of one
hook call at the per-step hook points, with the plugins installed here.

    python benchmarks/step_overhead.py                   # digits, the default FixMatch run
    python benchmarks/step_overhead.py --dataset synthetic --batch-size 8 --uratio 2
"""

from __future__ import annotations

import argparse
import copy
import io
import logging
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from semilearn.builtin.ema import ema_decay
from semilearn.optim import build_optimizer, cosine_schedule_with_warmup
from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config


def build(args: argparse.Namespace, folder: str, total_steps: int, manager: PluginManager | None = None):
    manager = manager or PluginManager().load()
    config = load_config(manager, None, [
        "algorithm=fixmatch", f"dataset={args.dataset}", f"batch_size={args.batch_size}", f"uratio={args.uratio}",
        f"num_train_iter={total_steps}", "num_eval_iter=1000000000", "num_log_iter=50", f"save_dir={folder}",
        # sections of plugins that are not installed are ignored with a warning
        "checkpoint.interval=0", "checkpoint.save_best=false", "logging.progress=off",
    ]).config
    return build_algorithm(config, manager, Path(folder) / "run"), config


class BareLoop:
    """The same math with no engine: sample, augment, forward, backward, step, EMA."""

    def __init__(self, args: argparse.Namespace, folder: str, total_steps: int) -> None:
        algorithm, config = build(args, folder, total_steps, PluginManager().load(blocked=["logging", "checkpoint"]))
        self.config = config
        self.data, self.augment, self.model = algorithm.data, algorithm.augment, algorithm.module
        self.labelled, self.unlabelled = algorithm.labelled_stream, algorithm.unlabelled_stream
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = cosine_schedule_with_warmup(self.optimizer, total_steps)
        ema = copy.deepcopy(self.model)
        self.ema_parameters, self.parameters = list(ema.parameters()), list(self.model.parameters())
        self.ema_buffers = [b for b in ema.buffers() if b.dtype.is_floating_point]
        self.buffers = [b for b in self.model.buffers() if b.dtype.is_floating_point]
        self.generator = algorithm.augment_generator

    def step(self, step: int) -> None:
        channels_last = torch.channels_last
        self.generator.manual_seed(step)
        index = self.labelled.next()
        x_lb = self.augment.weak(self.data.labelled_samples[index]).contiguous(memory_format=channels_last)
        y_lb = self.data.labelled_targets[index]
        assert self.unlabelled is not None
        images = self.data.unlabelled_samples[self.unlabelled.next()]
        x_w = self.augment.weak(images).contiguous(memory_format=channels_last)
        x_s = self.augment.strong(images).contiguous(memory_format=channels_last)
        logits = self.model(torch.cat((x_lb, x_w, x_s)))["logits"]
        logits_lb = logits[: len(x_lb)]
        logits_w, logits_s = logits[len(x_lb):].chunk(2)
        confidence, pseudo = torch.softmax(logits_w.detach().float(), -1).max(-1)
        mask = (confidence >= self.config.p_cutoff).float()
        loss = F.cross_entropy(logits_lb, y_lb) + (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        decay = ema_decay(self.config.ema_m, step) if self.config.ema_warmup else self.config.ema_m
        with torch.no_grad():  # USB's arithmetic: ema * m + model * (1 - m)
            moved = torch._foreach_mul(self.parameters, 1.0 - decay)
            torch._foreach_mul_(self.ema_parameters, decay)
            torch._foreach_add_(self.ema_parameters, moved)
            torch._foreach_copy_(self.ema_buffers, self.buffers)
        if step % 50 == 0:
            loss.item()  # the engine reads its metrics at log points; so does this loop


def alternate(args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """Seconds per step of the engine and of the bare loop, in alternating blocks of steps."""
    total = args.warmup + args.blocks * args.block
    with tempfile.TemporaryDirectory() as folder:
        engine, _ = build(args, folder, total)
        engine.hook.before_run(algorithm=engine)  # plugins set up as in a run
        bare = BareLoop(args, folder, total)
        for step in range(1, args.warmup + 1):
            engine._one_step(step)
            bare.step(step)
        engine_times, bare_times = [], []
        step = args.warmup
        for _ in range(args.blocks):
            started = time.perf_counter()
            for offset in range(1, args.block + 1):
                engine._one_step(step + offset)  # every per-step hook point, log points included
            engine_times.append((time.perf_counter() - started) / args.block)
            started = time.perf_counter()
            for offset in range(1, args.block + 1):
                bare.step(step + offset)
            bare_times.append((time.perf_counter() - started) / args.block)
            step += args.block
        engine.hook.after_run(algorithm=engine, status="completed", error=None)
    return engine_times, bare_times


def dispatch_costs(calls: int = 20000) -> dict[str, float]:
    """Microseconds per call of each per-step hook point, with the installed plugins."""
    manager = PluginManager().load()
    config = load_config(manager, None, ["num_train_iter=10"]).config
    with tempfile.TemporaryDirectory() as folder:
        algorithm = build_algorithm(config, manager, Path(folder))
    algorithm.global_step = 1
    hook = manager.hook
    points = {
        "before_train_step": lambda: hook.before_train_step(algorithm=algorithm, step=2),
        "on_step_end": lambda: hook.on_step_end(algorithm=algorithm, step=3),
    }
    # after_train_step would update the EMA model (real work, not dispatch): time an empty point too
    points["empty hook point"] = lambda: hook.before_train_epoch(algorithm=algorithm, epoch=0)
    costs = {}
    for name, call in points.items():
        for _ in range(1000):
            call()
        started = time.perf_counter()
        for _ in range(calls):
            call()
        costs[name] = (time.perf_counter() - started) / calls * 1e6
    costs["_plugins"] = len(manager.active())  # type: ignore[assignment]
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--uratio", type=int, default=7)
    parser.add_argument("--blocks", type=int, default=12, help="alternating blocks of each loop")
    parser.add_argument("--block", type=int, default=50, help="steps per block")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("semilearn").addHandler(logging.StreamHandler(io.StringIO()))
    logging.getLogger("semilearn").propagate = False

    engine, bare = alternate(args)
    ratios = [e / b for e, b in zip(engine, bare, strict=True)]
    costs = dispatch_costs()
    plugins = costs.pop("_plugins")
    print(f"## Step overhead: {args.dataset}, batch {args.batch_size}, uratio {args.uratio}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(f"{args.blocks} alternating blocks of {args.block} steps each, after {args.warmup} warm-up steps.\n")
    print("| loop | median ms/step | min | max |")
    print("|---|---|---|---|")
    for label, values in (("semilearn (every installed plugin)", engine), ("bare PyTorch, same math", bare)):
        print(f"| {label} | {statistics.median(values) * 1e3:.2f} | {min(values) * 1e3:.2f} | "
              f"{max(values) * 1e3:.2f} |")
    print(f"\n**ratio semilearn / bare, median over adjacent blocks: {statistics.median(ratios):.3f}** "
          f"(blocks: {', '.join(f'{r:.3f}' for r in ratios)})\n")
    print(f"Hook dispatch ({plugins} active plugins), microseconds per call:\n")
    print("| hook point | us/call |")
    print("|---|---|")
    for name, value in costs.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
