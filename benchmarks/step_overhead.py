"""What the engine costs per training step, against a bare PyTorch loop doing the same math.

Both sides train the same network on the same data with the same batch, the same batched
augmentation, the same optimizer, schedule and EMA update. The semilearn side is a real
run with every installed plugin active (logging to files, timing, EMA, evaluation off,
checkpoint writing off so that disk speed does not enter); the bare side is a plain loop.
They alternate in rounds and the median seconds per step of each is compared, so machine
noise hits both alike. Also reported: the cost of one hook call at each per-step hook
point, with the plugins installed here.

    python benchmarks/step_overhead.py                   # digits, the default FixMatch run
    python benchmarks/step_overhead.py --dataset synthetic --batch-size 8 --uratio 2
"""

from __future__ import annotations

import argparse
import copy
import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from semilearn import hookimpl
from semilearn.builtin.ema import ema_decay
from semilearn.optim import build_optimizer, cosine_schedule_with_warmup
from semilearn.plugins import PluginManager
from semilearn.runner import build_algorithm, load_config


class StepClock:
    """A plugin timing a window of steps through the public hook points."""

    name = "step_clock"

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.started = self.finished = 0.0

    @hookimpl(tryfirst=True)
    def before_train_step(self, step: int) -> None:
        if step == self.first:
            self.started = time.perf_counter()

    @hookimpl(trylast=True)
    def on_step_end(self, step: int) -> None:
        if step == self.last:
            self.finished = time.perf_counter()


def settings(args: argparse.Namespace, steps: int, save_dir: str) -> list[str]:
    return [
        f"dataset={args.dataset}", f"batch_size={args.batch_size}", f"uratio={args.uratio}",
        f"num_train_iter={steps}", "num_eval_iter=1000000000", "num_log_iter=50", f"save_dir={save_dir}",
        "checkpoint.interval=0", "checkpoint.save_best=false", "logging.progress=off",
    ]


def semilearn_seconds_per_step(args: argparse.Namespace, steps: int, warmup: int) -> float:
    manager = PluginManager().load()
    clock = StepClock(warmup + 1, warmup + steps)
    manager.add(clock)
    with tempfile.TemporaryDirectory() as folder:
        # sections of plugins that are not installed are ignored with a warning
        config = load_config(manager, None, settings(args, warmup + steps, folder)).config
        algorithm = build_algorithm(config, manager, Path(folder) / "run")
        algorithm.fit()
    return (clock.finished - clock.started) / steps


def bare_seconds_per_step(args: argparse.Namespace, steps: int, warmup: int) -> float:
    """The same math with no engine: sample, augment, forward, backward, step, EMA."""
    manager = PluginManager().load()
    config = load_config(manager, None, [f"dataset={args.dataset}", f"batch_size={args.batch_size}",
                                         f"uratio={args.uratio}"]).config
    with tempfile.TemporaryDirectory() as folder:
        algorithm = build_algorithm(config, manager, Path(folder))  # only for its data, model and views
    data, augment, model = algorithm.data, algorithm.augment, algorithm.model
    labelled, unlabelled = algorithm.labelled_stream, algorithm.unlabelled_stream
    assert unlabelled is not None
    optimizer = build_optimizer(model, config)
    scheduler = cosine_schedule_with_warmup(optimizer, warmup + steps)
    ema = copy.deepcopy(model)
    ema_parameters, parameters = list(ema.parameters()), list(model.parameters())
    ema_buffers = [b for b in ema.buffers() if b.dtype.is_floating_point]
    buffers = [b for b in model.buffers() if b.dtype.is_floating_point]
    channels_last = torch.channels_last

    started = 0.0
    for step in range(1, warmup + steps + 1):
        if step == warmup + 1:
            started = time.perf_counter()
        index = labelled.next()
        x_lb = augment.weak(data.labelled_images[index]).contiguous(memory_format=channels_last)
        y_lb = data.labelled_targets[index]
        images = data.unlabelled_images[unlabelled.next()]
        x_w = augment.weak(images).contiguous(memory_format=channels_last)
        x_s = augment.strong(images).contiguous(memory_format=channels_last)
        logits = model(torch.cat((x_lb, x_w, x_s)))["logits"]
        logits_lb = logits[: len(x_lb)]
        logits_w, logits_s = logits[len(x_lb):].chunk(2)
        confidence, pseudo = torch.softmax(logits_w.detach().float(), -1).max(-1)
        mask = (confidence >= config.p_cutoff).float()
        loss = F.cross_entropy(logits_lb, y_lb) + (F.cross_entropy(logits_s, pseudo, reduction="none") * mask).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema_parameters, parameters, 1.0 - ema_decay(config.ema_m, step))
            torch._foreach_copy_(ema_buffers, buffers)
        if step % 50 == 0:
            loss.item()  # the engine reads its metrics at log points; so does this loop
    return (time.perf_counter() - started) / steps


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
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("semilearn").addHandler(logging.StreamHandler(io.StringIO()))
    logging.getLogger("semilearn").propagate = False

    engine, bare = [], []
    for round_number in range(args.rounds):
        engine.append(semilearn_seconds_per_step(args, args.steps, args.warmup))
        bare.append(bare_seconds_per_step(args, args.steps, args.warmup))
        print(f"round {round_number + 1}: semilearn {engine[-1] * 1e3:.2f} ms/step, bare {bare[-1] * 1e3:.2f} ms/step",
              file=sys.stderr)
    engine_median, bare_median = statistics.median(engine), statistics.median(bare)
    costs = dispatch_costs()
    plugins = costs.pop("_plugins")
    print(f"## Step overhead: {args.dataset}, batch {args.batch_size}, uratio {args.uratio}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| loop | median ms/step | rounds |")
    print("|---|---|---|")
    print(f"| semilearn (all installed plugins) | {engine_median * 1e3:.2f} | "
          f"{', '.join(f'{v * 1e3:.2f}' for v in engine)} |")
    print(f"| bare PyTorch, same math | {bare_median * 1e3:.2f} | {', '.join(f'{v * 1e3:.2f}' for v in bare)} |")
    print(f"\n**ratio semilearn / bare: {engine_median / bare_median:.3f}**\n")
    print(f"Hook dispatch ({plugins} active plugins), microseconds per call:\n")
    print("| hook point | us/call |")
    print("|---|---|")
    for name, value in costs.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
