"""semilearn-nlp: USB's text benchmarks as a plugin.

It registers, through the registration hook points:

* the ``text`` modality (:mod:`semilearn_nlp.views`): token ids of each text and of its
  stored back-translations, tokenised once; views ``input_ids`` + ``attention_mask``
  padded per batch; the strong view is a back-translation drawn per sample;
* the networks ``bert_base_cased`` and ``bert_base_uncased`` (:mod:`semilearn_nlp.nets`):
  USB's pooled BERT classifier on transformers, its weights from ``nlp.pretrain_path`` or
  the Hugging Face hub (:mod:`semilearn_nlp.pretrained`), and their three-head versions
  ``bert_base_cased_multihead`` and ``bert_base_uncased_multihead`` for MultiMatch;
* the data sets ``aclImdb``, ``ag_news``, ``amazon_review``, ``dbpedia``,
  ``yahoo_answers`` and ``yelp_review`` (:mod:`semilearn_nlp.data`): USB's json files.

Configuration section ``nlp``: ``max_length``, ``pretrain_path``, ``pooling``,
``eval_split``. transformers is imported when a run builds its data or network, never at
plugin discovery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from semilearn import Hook, Option, hookimpl

from .names import DATASETS, HUB_NAMES, MULTIHEAD, NET_DESCRIPTIONS, POOLINGS, TEXT

if TYPE_CHECKING:
    import torch

    from semilearn.config import Config
    from semilearn.data import InputSpec
    from semilearn.data.base import SSLData

    from .nets import TextClassifier
    from .views import TextViews

__all__ = ["NlpPlugin", "__version__"]
__version__ = "0.1.0"


class NlpPlugin(Hook):
    """Text: the ``text`` modality, USB's BERT networks and its six text data sets."""

    name = "nlp"
    config_options = (
        Option("max_length", int, 512, "Tokens a text is cut to, special tokens included (USB's max_length).",
               minimum=2),
        Option("pretrain_path", str, None, "Folder with the network's weights and tokenizer (save_pretrained); "
               "null: the network's checkpoint on the Hugging Face hub (bert-base-uncased ...), from the local "
               "cache when offline.", nullable=True),
        Option("pooling", str, "mean", "Token features to text features: `mean` over every position of the "
               "padded batch (USB), or `masked_mean` over the real tokens.", choices=POOLINGS),
        Option("eval_split", str, "dev", "The json file evaluation reads: `dev` (USB's eval split) or `test`.",
               choices=("dev", "test")),
    )

    def _section(self, config: Config | None = None) -> Any:
        section = config.section(self.name) if config is not None else None
        return section if section else self.config

    _adjust_clf_size = False  # MultiMatch's adjust_clf_size, read by the multi-head networks

    @hookimpl
    def configure(self, config: Config) -> None:
        self._adjust_clf_size = bool(config.get("adjust_clf_size", False))

    def _net_builder(self, net: str) -> Callable[[int, InputSpec], TextClassifier]:
        def build(num_classes: int, spec: InputSpec) -> TextClassifier:
            from .nets import MultiHeadTextClassifier, TextClassifier
            from .pretrained import load_backbone

            section = self._section()
            backbone = load_backbone(net, section.pretrain_path)
            if net in MULTIHEAD:
                return MultiHeadTextClassifier(backbone, num_classes, section.pooling,
                                               adjust_clf_size=self._adjust_clf_size)
            return TextClassifier(backbone, num_classes, section.pooling)

        return build

    def _dataset_builder(self, name: str) -> Callable[[Config, torch.device], SSLData]:
        def build(config: Config, device: torch.device) -> SSLData:
            from .data import build_text_dataset

            section = self._section(config)
            data = build_text_dataset(name, config, section.pretrain_path, section.max_length, section.eval_split)
            return data.to(device)

        return build

    @hookimpl
    def register_modalities(self, register: Callable[..., None]) -> None:
        register(TEXT, _text_views, "token ids of texts and their back-translations; input_ids + attention_mask "
                 "padded per batch, a back-translation as the strong view")

    @hookimpl
    def register_nets(self, register: Callable[..., None]) -> None:
        for net in HUB_NAMES:
            register(net, self._net_builder(net), NET_DESCRIPTIONS[net])

    @hookimpl
    def register_datasets(self, register: Callable[..., None]) -> None:
        for name, (num_classes, description) in DATASETS.items():
            register(name, self._dataset_builder(name), f"{description}, {num_classes} classes (data_dir)")


def _text_views(data: SSLData, generator: torch.Generator) -> TextViews:
    from .views import TextViews

    return TextViews(data, generator)
