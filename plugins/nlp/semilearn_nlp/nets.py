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

from typing import cast

import torch
from torch import nn

from .names import POOLINGS

__all__ = ["TextClassifier", "MultiHeadTextClassifier"]


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
        self.classifier = self._classifier(width, num_classes)
        self.pooling = pooling

    def _classifier(self, width: int, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, num_classes))

    def forward(self, x: dict[str, torch.Tensor], return_embed: bool = False) -> dict[str, torch.Tensor]:
        """``logits`` and ``feat`` of a view: ``input_ids`` (or ``inputs_embeds``, word
        embeddings ``[B, L, hidden]`` given in their place, as VAT's ``vat_embed`` perturbs
        them) and ``attention_mask``. With ``return_embed``, also ``embed``: the output of
        the encoder's embedding layer (its ``hidden_states[0]``, as USB's ``return_embed``)."""
        feat, embed = self.encode(x, return_embed)
        outputs = self.outputs(feat)
        if embed is not None:
            outputs["embed"] = embed
        return outputs

    def encode(self, x: dict[str, torch.Tensor], return_embed: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The pooled features of a view (dropout on the last hidden states, then pooling), and
        with ``return_embed`` the embedding layer's output."""
        mask = x["attention_mask"]
        tokens = {"inputs_embeds": x["inputs_embeds"]} if "inputs_embeds" in x else {"input_ids": x["input_ids"]}
        encoded = self.bert(**tokens, attention_mask=mask, output_hidden_states=return_embed, return_dict=True)
        hidden = self.dropout(encoded.last_hidden_state)
        if self.pooling == "mean":
            feat = hidden.mean(dim=1)
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            feat = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        return feat, (encoded.hidden_states[0] if return_embed else None)

    def outputs(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the network returns for the pooled features ``feat``."""
        return {"logits": self.classifier(feat), "feat": feat}


class MultiHeadTextClassifier(TextClassifier):
    """USB's ``bert_base_*_multihead`` (MultiMatch's network): the pooled encoder of
    :class:`TextClassifier` and ``num_heads`` classifiers of its layout.

    Outputs ``head_logits`` (``[B, num_heads, num_classes]``) for MultiMatch, and ``logits``,
    the mean of the heads, which evaluation and prediction read, as USB's MultiMatch
    evaluates. The heads are ``classifier.<head>.*``, USB's parameter names.

    Args:
        num_heads: classifier heads (USB: 3).
        adjust_clf_size: heads of width ``hidden // num_heads`` instead of ``hidden``
            (USB's ``adjust_clf_size``).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, pooling: str = "mean", dropout: float = 0.1,
                 num_heads: int = 3, adjust_clf_size: bool = False) -> None:
        # the heads are the only classifier built (as USB builds them, right after the encoder), so
        # that a torch seed gives USB's heads
        self.num_heads, self._adjust_clf_size = num_heads, adjust_clf_size
        super().__init__(backbone, num_classes, pooling, dropout)

    def _classifier(self, width: int, num_classes: int) -> nn.Module:
        hidden = width // self.num_heads if self._adjust_clf_size else width
        return nn.ModuleList(
            nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, num_classes))
            for _ in range(self.num_heads)
        )

    def outputs(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        heads = torch.stack([head(feat) for head in cast(nn.ModuleList, self.classifier)], dim=1)
        return {"logits": heads.mean(dim=1), "head_logits": heads, "feat": feat}
