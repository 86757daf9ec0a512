"""Pretrained weights for a network (``use_pretrain``, ``pretrain_path``), read as USB reads them.

``pretrain_path`` is a local file or an http(s) URL. A URL is fetched once into the
weights cache, ``$SEMILEARN_CACHE/weights/<file name>`` (``~/.cache/semilearn/weights``
without the variable), through the data sets' resumable downloader
(:func:`semilearn.data.download.fetch_file`); a file already in the cache is used without
any network, so an offline machine takes a copy put there by hand (or a local path).
USB publishes no checksums: a weight file counts as complete when PyTorch reads it with
``weights_only=True``. A download that does not read is deleted; a cached file that does
not read is renamed ``<file>.bad`` and fetched again. A complete file that holds Python
objects beyond tensors (and ``argparse.Namespace``, training arguments) is kept but
refused, with the way out (save the state dict alone).

What is loaded, as USB's ``load_checkpoint`` for networks does:

* the state dict under ``model`` in the file (a file that is itself a state dict is taken
  as it is); a leading ``module.`` (a distributed run's prefix) is dropped from each key;
* keys starting with ``fc``, ``classifier``, ``mlp`` or ``head`` are left out whatever
  their shapes: the classifier (and any projection head) starts from its initialisation;
* a ViT's ``pos_embed`` of another patch grid is resized to the network's, the class
  token kept and the grid interpolated bicubically (USB's weights for 224x224 images in
  a network for 96x96 ones);
* the rest is loaded non-strictly: network tensors the file lacks keep their
  initialisation, file tensors the network lacks are ignored; one line says what was
  loaded and what was left out. A tensor of another shape is an error naming it, and
  so is a file none of whose tensors fit the network (USB goes on silently there).

torch is imported only when weights are loaded.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError, DataError
from ..paths import url_file_name

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["CACHE_ENV", "UnsafeWeightFile", "weights_cache", "weight_file", "read_weights", "load_pretrained",
           "usb_state_dict", "resize_position_embedding"]

CACHE_ENV = "SEMILEARN_CACHE"
DROPPED_PREFIXES = ("fc", "classifier", "mlp", "head")  # USB's: never loaded from a pretrained file


def weights_cache() -> Path:
    """``$SEMILEARN_CACHE/weights``, else ``~/.cache/semilearn/weights``."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/semilearn").expanduser() / "weights"


def _is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


class UnsafeWeightFile(CheckpointError):
    """A complete weight file that holds Python objects ``weights_only`` does not unpickle."""


def read_weights(path: Path, url: str | None = None) -> Any:
    """What ``path`` holds, read with ``weights_only=True`` on the CPU.

    Raises :class:`UnsafeWeightFile` for a file holding other Python objects than tensors
    (and the training arguments USB's files may carry), else
    :class:`~semilearn.errors.CheckpointError` for a file that does not read (truncated,
    corrupted, not PyTorch's).
    """
    import argparse

    import torch

    origin = f" (from {url})" if url else ""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # training arguments saved beside the weights
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a truncated or foreign file fails in many ways
        text = str(error).strip()
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if unsafe:
            raise UnsafeWeightFile(
                f"{path}{origin} holds Python objects beyond tensors ({unsafe.group(1)}), which are not unpickled "
                "(weights_only): save its state dict alone with torch.save and set pretrain_path to that file"
            ) from None
        reason = text.splitlines()[0].split(". ", 1)[0].rstrip(".") if text else type(error).__name__
        raise CheckpointError(f"{path}{origin} is not a complete PyTorch weight file ({reason})") from None


def weight_file(source: str, *, cache: Path | None = None, attempts: int = 3, timeout: float = 60.0,
                report: Callable[[str], None] = lambda message: None) -> tuple[Path, Any]:
    """The local weight file for ``source`` (a path or an http(s) URL) and what it holds.

    A URL's file is taken from the cache when it is there and reads, else downloaded
    into it (see the module docstring). Raises :class:`~semilearn.errors.CheckpointError`
    with one line: a missing file, a host that cannot be reached (and where to put the
    file by hand), a transfer that keeps breaking off, a file that does not read.
    """
    if not source:
        raise CheckpointError("use_pretrain is set but pretrain_path is empty: give a weight file or its URL")
    if not _is_url(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise CheckpointError(f"pretrain_path {path} is not a file")
        return path, read_weights(path)
    name = url_file_name(source, "pretrain_path", CheckpointError)  # becomes a file in the weights cache
    folder = cache if cache is not None else weights_cache()
    target = folder / name
    if target.is_file():
        try:
            return target, read_weights(target, source)
        except UnsafeWeightFile:
            raise
        except CheckpointError as error:
            bad = target.with_name(target.name + ".bad")
            target.replace(bad)
            report(f"{error}; moved it to {bad.name} and downloading it again")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(f"cannot make the weights cache {folder} ({error.strerror}); set {CACHE_ENV} to a "
                              "writable folder or give pretrain_path as a local file") from None
    loaded: list[Any] = []

    def verify(partial: Path) -> str | None:
        try:
            loaded.append(read_weights(partial))
        except UnsafeWeightFile:
            return None  # complete: kept in the cache, and refused below
        except CheckpointError as error:
            reason = str(error).split(" is not a complete PyTorch weight file ", 1)[-1]
            return (f"{source} is not a complete PyTorch weight file {reason}, so the download was deleted; run "
                    f"again to download it again, or put the file at {target} by hand")
        return None

    try:
        from ..data.download import fetch_file

        fetch_file(source, target, label=name, verify=verify, attempts=attempts, timeout=timeout, report=report,
                   resume_hint="run again to resume",
                   offline_hint=f"Download it elsewhere and put it at {target}, or set pretrain_path to a local copy")
    except DataError as error:
        message = str(error)
        if str(target) not in message:  # a server error: the file can still come by hand
            message += f"; or put the file at {target} by hand"
        raise CheckpointError(message) from None
    return target, loaded[0] if loaded else read_weights(target, source)


def usb_state_dict(content: Any, source: str) -> dict[str, torch.Tensor]:
    """The state dict of a weight file: under ``model`` (USB's files), else the file itself."""
    import torch

    state = content.get("model") if isinstance(content, Mapping) and "model" in content else content
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise CheckpointError(f"{source} holds no state dict (USB's weight files keep it under 'model')")
    return dict(state)


def resize_position_embedding(embedding: torch.Tensor, tokens: int) -> torch.Tensor:
    """``[1, 1 + g*g, C]`` position embeddings (the class token's first) for ``tokens`` tokens:
    the grid interpolated bicubically to the new square grid, as USB (after timm) does."""
    import torch
    import torch.nn.functional as F

    old_side, new_side = math.isqrt(embedding.shape[1] - 1), math.isqrt(tokens - 1)
    if old_side ** 2 != embedding.shape[1] - 1 or new_side ** 2 != tokens - 1:
        raise CheckpointError(f"position embeddings of {embedding.shape[1]} and {tokens} tokens are not both "
                              "a class token and a square grid")
    grid = embedding[0, 1:].reshape(1, old_side, old_side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_side, new_side), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_side * new_side, -1)
    return torch.cat([embedding[:, :1], grid], dim=1)


def load_pretrained(model: nn.Module, source: str, net_name: str, *, cache: Path | None = None,
                    report: Callable[[str], None] = lambda message: None) -> str:
    """Load ``source``'s weights into ``model`` (see the module docstring); the one-line summary.

    ``report`` receives the download's progress lines, if any.
    """
    path, content = weight_file(source, cache=cache, report=report)
    where = f"{path} (from {source})" if _is_url(source) else str(path)
    state = usb_state_dict(content, where)
    ours = model.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    resized = ""
    for key, value in state.items():
        if key.startswith("module"):
            key = key.split(".", 1)[1] if "." in key else ""
        if key.startswith(DROPPED_PREFIXES):
            dropped.append(key)
            continue
        if key not in ours:
            unknown.append(key)
            continue
        if key == "pos_embed" and value.ndim == 3 and ours[key].ndim == 3 and value.shape[1] != ours[key].shape[1]:
            resized = f"; pos_embed resized from {value.shape[1]} to {ours[key].shape[1]} tokens"
            value = resize_position_embedding(value.float(), ours[key].shape[1]).to(value.dtype)
        if tuple(value.shape) != tuple(ours[key].shape):
            raise CheckpointError(f"{where}: '{key}' is {tuple(value.shape)}, network '{net_name}' has "
                                  f"{tuple(ours[key].shape)} there: is it the weight file of this network?")
        loaded[key] = value
    if not loaded:
        raise CheckpointError(f"{where}: none of its {len(state)} tensors fits network '{net_name}' "
                              f"(it has e.g. '{next(iter(state))}'): is it the weight file of this network?")
    model.load_state_dict(loaded, strict=False)
    kept = [key for key in ours if key not in loaded]
    summary = f"pretrained: loaded {len(loaded)} of network '{net_name}''s {len(ours)} tensors from {where}{resized}"
    if kept:
        summary += f"; initialised, not loaded: {_names(kept)}"
    if dropped or unknown:
        summary += f"; left out of the file: {_names(dropped + unknown)}"
    return summary


def _names(keys: list[str], shown: int = 4) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def load_for_run(model: nn.Module, source: str, net_name: str, report: Callable[[str], None]) -> str:
    """:func:`load_pretrained` in a run: with several processes, global rank 0 fetches a URL
    into the cache first and the others then read it from there."""
    from ..distributed import broadcast_object, global_rank, is_distributed

    if is_distributed() and _is_url(source):
        failure = None
        if global_rank() == 0:
            try:
                weight_file(source, report=report)
            except CheckpointError as error:
                failure = str(error)
        failure = broadcast_object(failure)
        if failure is not None:
            raise CheckpointError(failure)
    return load_pretrained(model, source, net_name, report=report)
