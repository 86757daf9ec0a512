"""Where an audio network's weights come from: a local folder, or the hub.

``audio.pretrain_path`` names a folder written by
``save_pretrained`` (the model's ``config.json`` and weights), and
without it the network's name picks its checkpoint on the Hugging Face hub (downloaded
once, then read from the local cache, also offline). When neither is there, the error is
one line that says how to provide the weights. The folder-or-hub logic and its messages
are the core's (:class:`semilearn.nets.hub.HubFiles`); which class loads the encoder is here.

transformers is imported here, when a run builds its data or network, never at plugin
discovery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from semilearn.nets.hub import HubFiles

from .names import HUB_NAMES

if TYPE_CHECKING:
    from torch import nn

__all__ = ["HUB", "source_of", "load_backbone"]

HUB = HubFiles(section="audio", distribution="semilearn-audio", hub_names=HUB_NAMES, contents="weights")


def source_of(net: str, pretrain_path: str | None) -> str:
    """What ``from_pretrained`` reads for ``net``: the folder ``pretrain_path`` or the hub name."""
    return HUB.source_of(net, pretrain_path)


def load_backbone(net: str, pretrain_path: str | None) -> nn.Module:
    """The pretrained encoder of ``net`` (``AutoModel``: ``HubertModel`` or ``Wav2Vec2Model``)."""
    model: nn.Module = HUB.load("AutoModel", net, pretrain_path, "weights")
    return model
