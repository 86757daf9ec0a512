"""``semilearn predict TARGET INPUT... --output FILE``: label new data with a trained model.

INPUT is an image file, a folder of images or an ``.npz`` with an ``images`` array
(:mod:`.inputs`). The output's format follows its extension: ``.csv`` or ``.jsonl``
(``-``: jsonl on stdout), one row per input in the order given: ``input`` (the file;
``FILE.npz[i]`` for an npz), ``class`` (its name), ``prob``, ``index`` (the class index)
and, with ``--top-k K``, the K most probable classes (csv: ``top2_class``, ``top2_prob``,
``top2_index``, ...; jsonl: a ``top_k`` list). The file is written whole or not at all.

In Python, :func:`predict_paths` gives the same predictions: ``names, prediction =
predict_paths(semilearn.load(run), ["new/"])``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from ..errors import InputError

WEIGHTS = ("auto", "ema", "model")  # predictor.WEIGHTS, without importing torch for --help

if TYPE_CHECKING:
    import torch

    from .inputs import Source
    from .predictor import Prediction, Predictor

__all__ = ["predict_command", "predict_inputs", "predict_paths", "resolve_device", "FORMATS"]

FORMATS = (".csv", ".jsonl")
_STDOUT = "-"


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``), when this machine has it."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device '{name}' is not a device (cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise InputError(f"--device {name}: {why}; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise InputError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {name}: MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        backend = getattr(torch, device.type, None)
        if backend is None or not getattr(backend, "is_available", lambda: False)():
            raise InputError(f"--device {name}: not available here; use --device cpu")
    return device


def predict_inputs(predictor: Predictor, inputs: Sequence[str | Path | Source],
                   batch_size: int = 256) -> Iterator[tuple[list[str], Prediction]]:
    """Predictions for ``inputs`` (paths, see :mod:`.inputs`), a batch of at most
    ``batch_size`` inputs at a time: ``(names, prediction)``. Each input is resized to the
    network's size on its own (:meth:`Predictor.prepare`), so sizes may differ."""
    import torch

    from .inputs import iter_inputs

    names: list[str] = []
    pending: list[torch.Tensor] = []
    count = 0
    for block_names, block in iter_inputs(inputs, predictor.card.input_shape[0]):
        for start in range(0, len(block), batch_size):
            piece = predictor.prepare(block[start : start + batch_size], name=block_names[start])
            names += block_names[start : start + batch_size]
            pending.append(piece)
            count += len(piece)
            if count >= batch_size:
                images = torch.cat(pending)
                yield names[:batch_size], predictor.predict(images[:batch_size], batch_size)
                names, pending, count = names[batch_size:], [images[batch_size:]], count - batch_size
    if count:
        yield names, predictor.predict(torch.cat(pending), batch_size)


def predict_paths(predictor: Predictor, inputs: Sequence[str | Path], batch_size: int = 256
                  ) -> tuple[list[str], Prediction]:
    """Every prediction for ``inputs`` at once: the inputs' names and one :class:`Prediction`."""
    import torch

    from .predictor import Prediction

    names: list[str] = []
    probs: list[torch.Tensor] = []
    for batch_names, prediction in predict_inputs(predictor, inputs, batch_size):
        names += batch_names
        probs.append(prediction.probs)
    joined = torch.cat(probs) if probs else torch.empty(0, predictor.card.num_classes)
    return names, Prediction(joined, joined.argmax(dim=-1), predictor.card.classes)


def _ranked(prediction: Prediction, k: int) -> Iterator[list[tuple[int, str, float]]]:
    """The ``k`` most probable classes of each input, (index, name, probability), most
    probable first; equal probabilities in class order, so the first is ``labels``'."""
    values, indices = prediction.probs.sort(dim=-1, descending=True, stable=True)
    for row_values, row_indices in zip(values[:, :k].tolist(), indices[:, :k].tolist(), strict=True):
        yield [(index, prediction.classes[index], float(f"{value:.6g}")) for index, value in
               zip(row_indices, row_values, strict=True)]


def _csv_header(k: int) -> list[str]:
    return ["input", "class", "prob", "index"] + [f"top{rank}_{field}" for rank in range(2, k + 1)
                                                  for field in ("class", "prob", "index")]


class _Writer:
    """Rows of one format into an open text file."""

    def __init__(self, handle: IO[str], fmt: str, k: int) -> None:
        self.fmt, self.k, self.handle = fmt, k, handle
        self.rows = 0
        if fmt == ".csv":
            self.csv = csv.writer(handle, lineterminator="\n")
            self.csv.writerow(_csv_header(k))

    def write(self, names: list[str], prediction: Prediction) -> None:
        for name, ranked in zip(names, _ranked(prediction, self.k), strict=True):
            (index, label, prob), rest = ranked[0], ranked[1:]
            if self.fmt == ".csv":
                self.csv.writerow([name, label, prob, index] + [cell for entry in rest
                                                                for cell in (entry[1], entry[2], entry[0])])
            else:
                row: dict[str, Any] = {"input": name, "class": label, "prob": prob, "index": index}
                if self.k > 1:
                    row["top_k"] = [{"class": c, "prob": p, "index": i} for i, c, p in ranked]
                self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.rows += 1


@contextlib.contextmanager
def _atomic_output(output: str) -> Iterator[IO[str]]:
    """A text file that becomes ``output`` only when the block ends without an error."""
    if output == _STDOUT:
        with tempfile.TemporaryFile("w+", encoding="utf-8", newline="") as handle:
            yield handle
            handle.seek(0)
            shutil.copyfileobj(handle, sys.stdout)
            sys.stdout.flush()
        return
    path = Path(output)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp made it private; the output is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _output_format(output: str) -> str:
    """The format ``output`` asks for, checked before any work."""
    if output == _STDOUT:
        return ".jsonl"
    path = Path(output)
    fmt = path.suffix.lower()
    if fmt not in FORMATS:
        raise InputError(f"--output {output}: the format follows the extension, .csv or .jsonl "
                         f"(or - for jsonl on stdout), not '{path.suffix or 'none'}'")
    if path.is_dir():
        raise InputError(f"--output {output} is a folder; name a file in it")
    if not path.parent.is_dir():
        raise InputError(f"--output {output}: the folder {path.parent} does not exist")
    return fmt


@click.command("predict")
@click.argument("target", type=click.Path(path_type=str))
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=str), metavar="INPUT...")
@click.option("-o", "--output", required=True, metavar="FILE",
              help="Where the rows go: a .csv or .jsonl file (written whole or not at all), or - for jsonl on stdout.")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Which checkpoint of a run directory (ignored for a checkpoint file).")
@click.option("--weights", type=click.Choice(WEIGHTS), default="auto", show_default=True,
              help="auto: what the run evaluated (the EMA weights when kept), ema or model.")
@click.option("--top-k", type=click.IntRange(min=1), default=1, show_default=True, metavar="K",
              help="Also give the K most probable classes (at most the number of classes).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True, metavar="N",
              help="Inputs read and run through the network at a time.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or mps.")
@click.pass_obj
def predict_command(state: Any, target: str, inputs: tuple[str, ...], output: str, checkpoint: str,
                    weights: str, top_k: int, batch_size: int, device: str) -> int:
    """Label INPUT (image files, folders of images, .npz files with an `images` array) with the
    trained model of TARGET (a run directory or a checkpoint file).

    Image files are converted to the network's channels (grey or RGB) and every input is
    resized to its size. One row per input, in order: input, class, prob, index, and the
    top-k with --top-k.
    """
    from .inputs import sources
    from .predictor import load

    fmt = _output_format(output)
    chosen_device = resolve_device(device)
    gathered = sources(inputs)
    predictor = load(target, checkpoint=checkpoint, weights=weights, device=str(chosen_device),
                     manager=getattr(state, "manager", None))
    k = min(top_k, predictor.card.num_classes)
    with _atomic_output(output) as handle:
        writer = _Writer(handle, fmt, k)
        for names, prediction in predict_inputs(predictor, gathered, batch_size):
            writer.write(names, prediction)
    where = "stdout" if output == _STDOUT else output
    click.echo(f"{writer.rows} input(s) labelled -> {where} ({predictor.checkpoint}, step {predictor.step}, "
               f"{predictor.weights} weights)", err=True)
    return 0
