"""Text networks: a pretrained transformer encoder, pooled, and USB's two-layer classifier.

USB's ``bert_base_cased`` and ``bert_base_uncased`` (its ``ClassificationBert``): the
encoder's last hidden states, dropout (p = 0.1), the mean over the token positions, then
``Linear(hidden, hidden)``, GELU and ``Linear(hidden, num_classes)``. The parameters are
named as USB names them (``bert.*``, ``classifier.0.*``, ``classifier.2.*``), so USB's
fine-tuned weights load into these networks.

USB's mean runs over every position of the padded batch, padding included
(``pooling: mean``, the default); ``pooling: masked_mean`` averages the real tokens only,
so that a text's features do not depend on the batch it is padded with.
"""

from __future__ import annotations

import torch
from torch import nn

from .names import POOLINGS

__all__ = ["TextClassifier"]


class TextClassifier(nn.Module):
    """A transformer encoder (``bert``), pooled token features (``feat``) and a classifier.

    Args:
        backbone: the encoder, called with ``input_ids`` and ``attention_mask``; its
            ``config.hidden_size`` is the width of the features.
        num_classes: outputs of the classifier.
        pooling: ``"mean"`` (USB: every position, padding included) or ``"masked_mean"``.
        dropout: dropout on the last hidden states before pooling (USB: 0.1).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, pooling: str = "mean", dropout: float = 0.1) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        width = int(getattr(backbone, "config").hidden_size)  # noqa: B009 - a transformers model
        self.bert = backbone
        self.dropout = nn.Dropout(p=dropout)
        self.num_features = width
        self.classifier = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, num_classes))
        self.pooling = pooling

    def forward(self, x: dict[str, torch.Tensor], return_embed: bool = False) -> dict[str, torch.Tensor]:
        """``logits`` and ``feat`` of a view: ``input_ids`` (or ``inputs_embeds``, word
        embeddings ``[B, L, hidden]`` given in their place, as VAT's ``vat_embed`` perturbs
        them) and ``attention_mask``. With ``return_embed``, also ``embed``: the output of
        the encoder's embedding layer (its ``hidden_states[0]``, as USB's ``return_embed``)."""
        mask = x["attention_mask"]
        tokens = {"inputs_embeds": x["inputs_embeds"]} if "inputs_embeds" in x else {"input_ids": x["input_ids"]}
        encoded = self.bert(**tokens, attention_mask=mask, output_hidden_states=return_embed, return_dict=True)
        hidden = self.dropout(encoded.last_hidden_state)
        if self.pooling == "mean":
            feat = hidden.mean(dim=1)
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            feat = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        outputs = {"logits": self.classifier(feat), "feat": feat}
        if return_embed:
            outputs["embed"] = encoded.hidden_states[0]
        return outputs
