"""Latency of an exported model against ``Predictor.predict``, in one process.

A short FlexMatch run on digits gives the checkpoint (or ``--run RUN_DIR``); its model is
loaded with ``semilearn.load`` and exported as TorchScript (and as ONNX, run with ONNX
Runtime, when ``onnx``, ``onnxscript`` and ``onnxruntime`` are installed). Each is timed
on 1,000 digits test images (the 450 of the test split, repeated) in one call, and on
one image at a time; the median of ``--repeats`` rounds, the calls of each round
alternated between the models, after warm-up calls. Prints a markdown table.

    python benchmarks/export_latency.py
    python benchmarks/export_latency.py --run saved_models/flexmatch_digits_40_0 --repeats 30
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch


def short_run(folder: Path) -> Path:
    from semilearn.plugins import PluginManager
    from semilearn.runner import load_config, run

    manager = PluginManager().load(blocked=["wandb", "aim"])
    settings = ["num_train_iter=40", "num_eval_iter=20", f"save_dir={folder}", "logging.progress=off"]
    return run(load_config(manager, None, settings).config, manager).run_dir


def mean_ms(function: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=None, help="a run directory (default: a 40-step run, ~30 s)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=15, help="rounds; the median is reported")
    parser.add_argument("--single", type=int, default=200, help="one-image calls per round")
    args = parser.parse_args()

    import semilearn
    from semilearn.data.digits import digits_arrays
    from semilearn.inference.export import export_predictor

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        run_dir = args.run or short_run(folder / "runs")
        predictor = semilearn.load(run_dir)
        test = torch.from_numpy(digits_arrays()[2])
        images = test.repeat((args.images + len(test) - 1) // len(test), 1, 1, 1)[: args.images].contiguous()
        one = images[:1].clone()

        model, _ = export_predictor(predictor, folder / "model.pt")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.load(str(model))

        candidates: dict[str, Callable[[torch.Tensor], object]] = {
            "`Predictor.predict` (semilearn.load)": lambda x: predictor.predict(x, batch_size=len(x)),
            "TorchScript, `torch.jit.load`": scripted,
        }
        worst = 0.0
        if all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime")):
            import onnxruntime

            onnx_model, _ = export_predictor(predictor, folder / "model.onnx")
            session = onnxruntime.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
            candidates["ONNX, ONNX Runtime (CPU)"] = lambda x: session.run(["logits"], {"images": x.numpy()})[0]
            onnx_logits = torch.from_numpy(session.run(["logits"], {"images": images.numpy()})[0])
            worst = max(worst, float((onnx_logits - predictor.logits(images)).abs().max()))

        with torch.no_grad():
            exported = scripted(images)
            difference = float((exported - predictor.logits(images)).abs().max())
            for function in candidates.values():  # warm-up (TorchScript optimises on its first calls)
                for _ in range(5):
                    function(images)
                    function(one)
            batch: dict[str, list[float]] = {name: [] for name in candidates}
            single: dict[str, list[float]] = {name: [] for name in candidates}
            for _ in range(args.repeats):
                for name, function in candidates.items():
                    batch[name].append(mean_ms(lambda function=function: function(images), 3))
                    single[name].append(mean_ms(lambda function=function: function(one), args.single))

    base_batch = statistics.median(batch[next(iter(batch))])
    base_single = statistics.median(single[next(iter(single))])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, Python {platform.python_version()}; "
          f"{args.images} images of {list(predictor.card.input_shape)} ({predictor.card.net}); "
          f"median of {args.repeats} rounds\n")
    print(f"| model | {args.images} images, one call | per image | ratio | 1 image | ratio |")
    print("|---|---|---|---|---|---|")
    for name in candidates:
        many, alone = statistics.median(batch[name]), statistics.median(single[name])
        print(f"| {name} | {many:.2f} ms | {many / args.images * 1e3:.1f} µs | {many / base_batch:.2f} | "
              f"{alone * 1e3:.0f} µs | {alone / base_single:.2f} |")
    print(f"\nlargest difference of the TorchScript logits from Predictor.logits: {difference:.2e}"
          + (f"; ONNX Runtime: {worst:.2e}" if worst else ""))


if __name__ == "__main__":
    main()
