"""Audio networks: a pretrained speech encoder, mean-pooled, and USB's two-layer classifier.

USB's ``hubert_base`` (its ``ClassificationHubert``) and ``wave2vecv2_base`` (its
``ClassificationWave2Vec``): the encoder (``HubertModel`` / ``Wav2Vec2Model``) called with
the waveform alone, its last hidden states, dropout (p = 0.1), the mean over the frames,
then ``Linear(hidden, hidden)``, GELU and ``Linear(hidden, num_classes)``. The parameters
are named as USB names them (``model.*``, ``classifier.0.*``, ``classifier.2.*``), so USB's
fine-tuned weights load into these networks.

USB passes no attention mask (the feature extractors of both checkpoints return none);
``audio.attention_mask: true`` passes the views' mask to the encoder, so that padding does
not reach the features (the frames are still all averaged).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AudioClassifier"]


class AudioClassifier(nn.Module):
    """A speech encoder (``model``), pooled frame features (``feat``) and a classifier.

    Args:
        backbone: the encoder, called with ``input_values`` (and ``attention_mask`` when
            ``use_attention_mask``); its ``config.hidden_size`` is the width of the features.
        num_classes: outputs of the classifier.
        use_attention_mask: pass the views' attention mask to the encoder (USB: no).
        dropout: dropout on the last hidden states before pooling (USB: 0.1).
    """

    def __init__(self, backbone: nn.Module, num_classes: int, use_attention_mask: bool = False,
                 dropout: float = 0.1) -> None:
        super().__init__()
        width = int(getattr(backbone, "config").hidden_size)  # noqa: B009 - a transformers model
        self.model = backbone
        self.dropout = nn.Dropout(p=dropout)
        self.num_features = width
        self.classifier = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, num_classes))
        self.use_attention_mask = use_attention_mask
        # As USB ("for vat"): the feature encoder no longer marks the waveform as needing a
        # gradient (which it does for gradient checkpointing, and which fails on a waveform
        # that already has one: VAT's perturbed input). Its parameters still train.
        encoder = getattr(backbone, "feature_extractor", None)
        if encoder is not None and hasattr(encoder, "_requires_grad"):
            encoder._requires_grad = False

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mask = x["attention_mask"] if self.use_attention_mask else None
        hidden = self.model(x["input_values"], attention_mask=mask, return_dict=True).last_hidden_state
        feat = self.dropout(hidden).mean(dim=1)
        return {"logits": self.classifier(feat), "feat": feat}
