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

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feat = self.features(x)
        return {"logits": self.classifier(feat), "feat": feat}

    def features(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """The pooled features of the token ids ``x`` (dropout on the hidden states, then pooling)."""
        mask = x["attention_mask"]
        hidden = self.bert(input_ids=x["input_ids"], attention_mask=mask, return_dict=True).last_hidden_state
        hidden = self.dropout(hidden)
        if self.pooling == "mean":
            feat = hidden.mean(dim=1)
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            feat = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        return feat


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

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feat = self.features(x)
        heads = torch.stack([head(feat) for head in self.classifier], dim=1)
        return {"logits": heads.mean(dim=1), "head_logits": heads, "feat": feat}
