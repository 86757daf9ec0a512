"""``semilearn export TARGET --output PATH``: a trained model as one self-contained file.

The exported model takes what the data set delivers, uint8 images ``[N, C, H, W]``, and
returns the logits ``[N, K]`` (float32): resizing to the network's size (bilinear,
antialiased, rounded to whole grey levels, as :meth:`Predictor.prepare` does) and the
normalisation are inside it. Beside it, ``PATH.json`` is its model card: class names,
input shape and dtype, normalisation, algorithm, data set, evaluations, package versions
and the hash of the run's configuration.

* ``torchscript`` (``.pt`` / ``.ts``): loads with ``torch.jit.load`` in a Python that has
  torch and nothing of semilearn, and gives the logits :meth:`Predictor.logits` gives;
* ``onnx`` (``.onnx``): torch's ONNX exporter, which needs ``onnx`` and ``onnxscript``
  (``pip install 'semilearn-core[onnx]'``); the batch size, height and width are dynamic.

Both files are written to a temporary name beside the output and renamed into place, so
an error leaves nothing at the output path.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import inspect
import json
import logging
import os
import platform
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import InputError, format_bytes, no_space

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..plugins import PluginManager
    from .predictor import Predictor

__all__ = ["FORMATS", "EXTENSIONS", "ONNX_HINT", "export", "export_predictor", "export_card", "config_sha256",
           "export_command", "exported_module", "output_format"]

FORMATS = ("torchscript", "onnx")
# What --format defaults to, from the output's extension.
EXTENSIONS = {".pt": "torchscript", ".ts": "torchscript", ".onnx": "onnx"}
ONNX_HINT = "pip install 'semilearn-core[onnx]'"
CARD_SUFFIX = ".json"


def output_format(output: Path, format: str | None) -> str:
    """The format to write: ``format`` when given (checked), else from ``output``'s extension."""
    if format is not None:
        if format not in FORMATS:
            raise InputError(f"--format is one of {', '.join(FORMATS)}, not '{format}'")
        return format
    chosen = EXTENSIONS.get(output.suffix.lower())
    if chosen is None:
        known = ", ".join(f"{suffix} ({name})" for suffix, name in EXTENSIONS.items())
        raise InputError(f"{output}: cannot tell the format from the extension (one of {known}); give --format")
    return chosen


def _checked_output(output: Path, format: str | None) -> str:
    """The format to write ``output`` in, once the output can be written (and the format is available)."""
    _check_output(output)
    chosen = output_format(output, format)
    if chosen == "onnx":
        _check_onnx()
    return chosen


def _check_output(output: Path) -> None:
    folder = output.parent
    if not folder.is_dir():
        raise InputError(f"{output}: the folder {folder} does not exist")
    if output.is_dir():
        raise InputError(f"{output} is a directory; give a file name (for example {output / 'model.pt'})")
    card = _card_path(output)
    if card.is_dir():
        raise InputError(f"{card} is a directory; the model card is written there")


def _check_onnx() -> None:
    import torch

    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(f"--format onnx needs {' and '.join(missing)}: {ONNX_HINT}")
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise InputError(f"--format onnx needs torch 2.5 or newer (its ONNX exporter); this is torch {torch.__version__}")


def _card_path(output: Path) -> Path:
    return output.with_name(output.name + CARD_SUFFIX)


# --------------------------------------------------------------------------------------
# The exported module.


def exported_module(predictor: Predictor, always_resize: bool = False) -> nn.Module:
    """The network of ``predictor`` with its input handling: uint8 ``[N, C, H, W]`` in,
    logits ``[N, K]`` out (an eager module; :func:`export_predictor` scripts or exports it).

    ``always_resize``: resize every input, also one of the network's size (then the
    resize is the identity); the ONNX graph does so, having no branch on the input size.
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    card = predictor.card
    channels, height, width = card.input_shape

    class Logits(nn.Module):
        """The network's logits alone (it returns a dict)."""

        def __init__(self, network: nn.Module) -> None:
            super().__init__()
            self.network = network

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.network(x)["logits"].float()

    class ExportedClassifier(nn.Module):
        """uint8 images ``[N, C, H, W]`` -> logits ``[N, K]``: resize, normalise, classify."""

        if TYPE_CHECKING:  # the buffers' type, for mypy (TorchScript reads them from the module)
            mean: torch.Tensor
            std: torch.Tensor

        def __init__(self, network: nn.Module) -> None:
            super().__init__()
            self.network = network
            self.register_buffer("mean", torch.tensor(card.mean, dtype=torch.float32).view(1, channels, 1, 1))
            self.register_buffer("std", torch.tensor(card.std, dtype=torch.float32).view(1, channels, 1, 1))
            self.channels = channels
            self.height = height
            self.width = width
            self.always_resize = always_resize

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            if not self.always_resize:
                if images.dim() != 4 or images.size(1) != self.channels:
                    raise ValueError(f"expected uint8 images [N, {self.channels}, H, W]")
                if images.dtype != torch.uint8:
                    raise ValueError("expected uint8 images (0-255)")
            x = images.float()
            if self.always_resize or images.size(2) != self.height or images.size(3) != self.width:
                x = F.interpolate(x, size=[self.height, self.width], mode="bilinear", align_corners=False,
                                  antialias=True).round().clamp(0.0, 255.0)
            return self.network((x / 255.0 - self.mean) / self.std)

    # a copy on the CPU: the Predictor keeps its network where it is, with its gradients setting
    network = Logits(copy.deepcopy(predictor.model)).to("cpu").eval()
    module = ExportedClassifier(network).eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


@contextmanager
def _quiet_torch() -> Iterator[None]:
    """Without torch's deprecation notices of TorchScript and the ONNX exporter's chatter."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx.experimental.symbolic_shapes",
             "onnxscript")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", module="torch.*")
        warnings.filterwarnings("ignore", module="onnxscript.*")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _write_torchscript(predictor: Predictor, path: Path) -> None:
    import torch

    module = exported_module(predictor)
    channels, height, width = predictor.card.input_shape
    example = torch.zeros(2, channels, height, width)
    with _quiet_torch(), torch.no_grad():
        # The network is traced (any registered network, no TorchScript-typed code needed;
        # the batch size stays dynamic); the input handling around it is scripted, so its
        # branches (another size: resize) stay in the file.
        module.network = torch.jit.trace(module.network, example, check_trace=False)
        scripted = torch.jit.script(module)
        scripted.save(str(path))


def _write_onnx(predictor: Predictor, path: Path) -> None:
    import torch

    module = exported_module(predictor, always_resize=True)
    channels, height, width = predictor.card.input_shape
    example = torch.zeros(2, channels, height, width, dtype=torch.uint8)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    with _quiet_torch(), torch.no_grad():
        program = torch.onnx.export(module, (example,), None, input_names=["images"], output_names=["logits"],
                                    dynamic_shapes={"images": dims}, dynamo=True, verbose=False)
        if program is None:
            raise RuntimeError("torch.onnx.export returned no ONNX program")
        program.save(str(path), external_data=False)


# --------------------------------------------------------------------------------------
# The model card.


def config_sha256(config: Mapping[str, Any]) -> str:
    """SHA-256 of the configuration as canonical JSON (keys sorted, no spaces)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _versions() -> dict[str, str]:
    import torch

    from .. import __version__

    return {"semilearn-core": __version__, "torch": torch.__version__, "python": platform.python_version()}


def export_card(predictor: Predictor, format: str) -> dict[str, Any]:
    """The model card written beside an exported model (``PATH.json``)."""
    from ..metrics import best_evaluation, saved_monitor

    config = predictor.config
    monitor, mode = saved_monitor(config)
    history = predictor.eval_history
    return {
        **predictor.card.to_dict(),
        "format": format,
        "input": {"name": "images", "shape": ["N", *predictor.card.input_shape], "dtype": predictor.card.input_dtype,
                  "other_sizes": "resized inside (bilinear, antialiased, rounded)"},
        "output": {"name": "logits", "shape": ["N", predictor.card.num_classes], "dtype": "float32"},
        "weights": predictor.weights,
        "step": predictor.step,
        "monitor": monitor,
        "mode": mode,
        "evaluation": predictor.run_evaluation,
        "final_evaluation": history[-1] if history else None,
        "best_evaluation": best_evaluation(history, monitor, mode),
        "versions": _versions(),
        "config_sha256": config_sha256(config) if config else None,
        "source_checkpoint": str(Path(predictor.checkpoint).resolve()) if predictor.checkpoint is not None else None,
    }


# --------------------------------------------------------------------------------------
# Writing.


def _temporary(output: Path, tag: str) -> Path:
    """An empty file beside ``output``, with the permissions a new file gets (mkstemp's are 0600)."""
    descriptor, name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=f".{tag}.tmp")
    os.close(descriptor)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(name, 0o666 & ~mask)
    return Path(name)


def export_predictor(predictor: Predictor, output: str | Path, format: str | None = None) -> tuple[Path, Path]:
    """Write ``predictor``'s model to ``output`` and its model card to ``output.json``.

    ``format``: ``torchscript`` or ``onnx`` (default: from the extension). Returns both
    paths. Errors are one line (:class:`~semilearn.errors.InputError`); nothing is left
    at the output paths then.
    """
    output = Path(output)
    chosen = _checked_output(output, format)
    card_path = _card_path(output)
    card = export_card(predictor, chosen)
    model_tmp = _temporary(output, "model")
    card_tmp = _temporary(output, "card")
    try:
        try:
            (_write_torchscript if chosen == "torchscript" else _write_onnx)(predictor, model_tmp)
        except (RuntimeError, ValueError, TypeError, NotImplementedError) as error:
            if no_space(error) is not None:
                raise
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise InputError(f"cannot export network '{predictor.card.net}' as {chosen}: {first}") from error
        with open(card_tmp, "w", encoding="utf-8") as handle:
            json.dump(card, handle, indent=2, default=str)
            handle.write("\n")
        os.replace(model_tmp, output)
        try:
            os.replace(card_tmp, card_path)
        except BaseException:
            output.unlink(missing_ok=True)
            raise
    finally:
        model_tmp.unlink(missing_ok=True)
        card_tmp.unlink(missing_ok=True)
    return output, card_path


def export(target: str | Path, output: str | Path, format: str | None = None, checkpoint: str = "best",
           weights: str = "auto", manager: PluginManager | None = None) -> tuple[Path, Path]:
    """Export the trained model of ``target`` (a run directory or a checkpoint file).

    The output is checked before the checkpoint is read, so a wrong output path costs
    nothing. See :func:`export_predictor`.
    """
    output = Path(output)
    chosen = _checked_output(output, format)
    from .predictor import load

    predictor = load(target, checkpoint=checkpoint, weights=weights, device="cpu", manager=manager)
    return export_predictor(predictor, output, chosen)


@click.command("export")
@click.argument("target", type=click.Path(path_type=str))
@click.option("--output", "-o", required=True, metavar="PATH",
              help="The model file (.pt/.ts: TorchScript, .onnx: ONNX); its model card goes to PATH.json.")
@click.option("--format", "format_", metavar="torchscript|onnx", default=None,
              help="The format, when the extension does not say it.")
@click.option("--checkpoint", default="best", show_default=True, metavar="best|last",
              help="Which checkpoint of a run directory.")
@click.option("--weights", default="auto", show_default=True, metavar="auto|ema|model",
              help="auto: what the run evaluated (the EMA weights when kept).")
@click.pass_obj
def export_command(state: Any, target: str, output: str, format_: str | None, checkpoint: str, weights: str) -> int:
    """Export the trained model of TARGET (a run directory or a checkpoint file) as one file
    that takes uint8 images [N, C, H, W] and returns logits, with PATH.json beside it."""
    manager = getattr(state, "manager", None)
    model, card = export(target, output, format_, checkpoint=checkpoint, weights=weights, manager=manager)
    with open(card, encoding="utf-8") as handle:
        written = json.load(handle)
    shape = ", ".join(str(size) for size in written["input_shape"])
    click.echo(f"exported {written['format']} model: {model} ({format_bytes(model.stat().st_size)}) · "
               f"uint8 [N, {shape}] -> logits [N, {written['num_classes']}] · "
               f"{written['weights']} weights of step {written['step']}")
    click.echo(f"model card: {card}")
    return 0
