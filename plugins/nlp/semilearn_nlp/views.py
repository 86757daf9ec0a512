"""The ``text`` modality: token ids stored once, views padded per batch.

Samples (what a text data set stores, see :mod:`semilearn_nlp.data`) are a dict:

* ``input_ids``: ``[N, T, L]`` int32 token ids, padded with the tokenizer's pad id: text 0
  is the original text, texts 1 .. T-1 its stored strong views (USB: the back-translations
  ``aug_0`` and ``aug_1``; the evaluation split stores the original only, ``T = 1``);
* ``length``: ``[N, T]`` the number of tokens of each text (special tokens included).

Views (what the network takes) are dicts ``input_ids`` ``[B, W]`` (int64) and
``attention_mask`` ``[B, W]`` (int64, 1 on tokens), ``W`` the longest text of the batch:

* weak and plain: the original text (USB feeds the original as the weak view);
* strong: one stored strong view per sample, drawn uniformly from the generator (USB draws
  ``aug_0`` or ``aug_1`` for each sample, each time it is loaded); a data set without
  strong views gives the original;
* strong_views: several strong views, different stored ones per sample (ReMixMatch's two);
* join: the views padded to the longest of them and concatenated, for one forward pass.

Trimming a batch to its longest text reads that length on the host: one synchronisation
per view, small beside a transformer's forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as functional

if TYPE_CHECKING:
    from semilearn.data.base import SSLData

__all__ = ["TextSpec", "TextViews"]


@dataclass(frozen=True)
class TextSpec:
    """How a text data set was tokenised (its :attr:`SSLData.augment`).

    Attributes:
        pad_token_id: the id padding fills with.
        max_length: the longest a text was cut to, in tokens (USB's ``max_length``).
        tokenizer: where the tokenizer came from (a folder or a hub name).
    """

    pad_token_id: int
    max_length: int
    tokenizer: str


class TextViews:
    """The views of the ``text`` modality; every random draw comes from ``generator``."""

    def __init__(self, data: SSLData, generator: torch.Generator) -> None:
        spec = data.augment
        self.pad_token_id = int(spec.pad_token_id) if isinstance(spec, TextSpec) else 0
        self.generator = generator

    def _view(self, ids: torch.Tensor, length: torch.Tensor) -> dict[str, torch.Tensor]:
        width = int(length.max()) if length.numel() else 0  # the host synchronisation
        positions = torch.arange(width, device=ids.device)
        mask = (positions[None, :] < length[:, None]).long()
        return {"input_ids": ids[:, :width].long(), "attention_mask": mask}

    def weak(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._view(samples["input_ids"][:, 0], samples["length"][:, 0])

    def plain(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.weak(samples)

    def strong(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids, length = samples["input_ids"], samples["length"]
        stored = ids.shape[1]
        if stored == 1:
            return self.weak(samples)
        rows = torch.arange(ids.shape[0], device=ids.device)
        choice = torch.randint(1, stored, (ids.shape[0],), generator=self.generator, device=ids.device)
        return self._view(ids[rows, choice], length[rows, choice])

    def strong_views(self, samples: dict[str, torch.Tensor], number: int) -> list[dict[str, torch.Tensor]]:
        """``number`` strong views that are different stored views of each sample, in an
        order drawn per sample (USB's text data set shuffles ``aug_0`` and ``aug_1`` into
        ReMixMatch's two strong views); beyond the stored ones, they repeat in that order."""
        ids, length = samples["input_ids"], samples["length"]
        stored = ids.shape[1]
        if stored == 1:
            return [self.weak(samples) for _ in range(number)]
        rows = torch.arange(ids.shape[0], device=ids.device)
        keys = torch.rand((ids.shape[0], stored - 1), generator=self.generator, device=ids.device)
        order = keys.argsort(dim=1) + 1
        return [self._view(ids[rows, order[:, index % (stored - 1)]], length[rows, order[:, index % (stored - 1)]])
                for index in range(number)]

    def join(self, views: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        width = max(view["input_ids"].shape[1] for view in views)
        ids = [functional.pad(view["input_ids"], (0, width - view["input_ids"].shape[1]), value=self.pad_token_id)
               for view in views]
        masks = [functional.pad(view["attention_mask"], (0, width - view["attention_mask"].shape[1]), value=0)
                 for view in views]
        return {"input_ids": torch.cat(ids), "attention_mask": torch.cat(masks)}

