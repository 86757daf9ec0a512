"""Where an audio network's weights come from: a local folder, or the hub.

``audio.pretrain_path`` names a folder written by
``save_pretrained`` (the model's ``config.json`` and weights), and
without it the network's name picks its checkpoint on the Hugging Face hub (downloaded
once, then read from the local cache, also offline). When neither is there, the error is
one line that says how to provide the weights.

transformers is imported here, when a run builds its data or network, never at plugin
discovery.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from semilearn.errors import ConfigError, DataError

from .names import HUB_NAMES

if TYPE_CHECKING:
    from torch import nn

__all__ = ["source_of", "load_backbone"]


def source_of(net: str, pretrain_path: str | None) -> str:
    """What ``from_pretrained`` reads for ``net``: the folder ``pretrain_path`` or the hub name."""
    if pretrain_path:
        folder = Path(pretrain_path).expanduser()
        if not folder.is_dir():
            raise ConfigError(
                f"audio.pretrain_path '{pretrain_path}' is not a folder: point it at the folder save_pretrained "
                f"wrote the weights of {net} to"
            )
        return str(folder)
    if net not in HUB_NAMES:
        raise ConfigError(
            f"net '{net}' has no checkpoint on the hub that semilearn-audio knows: set audio.pretrain_path to the "
            "folder holding its weights (save_pretrained)"
        )
    return HUB_NAMES[net]


def _quiet_transformers() -> None:
    """No progress bars or notices from transformers while it loads (a run logs its own lines)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _not_found(net: str, source: str, what: str, error: BaseException) -> DataError:
    if Path(source).is_dir():
        return DataError(
            f"{source} (audio.pretrain_path) holds no {what} of a transformers model for net '{net}' "
            f"({_first_line(error)}); write them there with save_pretrained"
        )
    return DataError(
        f"net '{net}' needs the {what} of {source}: not in the Hugging Face cache, and the hub cannot be reached "
        f"({_first_line(error)}); where online, run `hf download {source}` (or save_pretrained them to a folder "
        f"and set --set audio.pretrain_path=FOLDER)"
    )


def load_backbone(net: str, pretrain_path: str | None) -> nn.Module:
    """The pretrained encoder of ``net`` (``AutoModel``: ``HubertModel`` or ``Wav2Vec2Model``)."""
    source = source_of(net, pretrain_path)
    _quiet_transformers()
    from transformers import AutoModel

    try:
        model: nn.Module = AutoModel.from_pretrained(source)
    except Exception as error:  # noqa: BLE001 - transformers raises OSError, ValueError or the hub's errors
        raise _not_found(net, source, "weights", error) from error
    return model
