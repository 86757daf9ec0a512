"""Where a text network's weights and tokenizer come from: a local folder, or the hub.

One call loads both, as transformers does: ``nlp.pretrain_path`` names a folder written by
``save_pretrained`` (the model's ``config.json`` and weights, the tokenizer's files), and
without it the network's name picks its checkpoint on the Hugging Face hub (downloaded
once, then read from the local cache, also offline). When neither is there, the error is
one line that says how to provide the weights. The folder-or-hub logic and its messages
are the core's (:class:`semilearn.nets.hub.HubFiles`); which class loads what is here.

transformers is imported here, when a run builds its data or network, never at plugin
discovery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from semilearn.nets.hub import HubFiles

from .names import HUB_NAMES

if TYPE_CHECKING:
    from torch import nn

__all__ = ["HUB", "source_of", "load_backbone", "load_tokenizer"]

HUB = HubFiles(section="nlp", distribution="semilearn-nlp", hub_names=HUB_NAMES, contents="weights and tokenizer")


def source_of(net: str, pretrain_path: str | None) -> str:
    """What ``from_pretrained`` reads for ``net``: the folder ``pretrain_path`` or the hub name."""
    return HUB.source_of(net, pretrain_path)


def load_backbone(net: str, pretrain_path: str | None) -> nn.Module:
    """The pretrained encoder of ``net`` (``AutoModel``: a ``BertModel`` for USB's networks)."""
    model: nn.Module = HUB.load("AutoModel", net, pretrain_path, "weights")
    return model


def load_tokenizer(net: str, pretrain_path: str | None) -> Any:
    """The tokenizer of ``net`` (a fast tokenizer where one exists, as USB uses)."""
    return HUB.load("AutoTokenizer", net, pretrain_path, "tokenizer")
