"""The names this plugin registers, and USB's facts about them; imports nothing heavy."""

from __future__ import annotations

__all__ = ["TEXT", "HUB_NAMES", "MULTIHEAD", "NET_DESCRIPTIONS", "POOLINGS", "DATASETS", "DEFAULT_NET"]

TEXT = "text"

# network name -> its checkpoint on the Hugging Face hub (USB's names for both)
HUB_NAMES: dict[str, str] = {
    "bert_base_cased": "bert-base-cased",
    "bert_base_uncased": "bert-base-uncased",
    "bert_base_cased_multihead": "bert-base-cased",
    "bert_base_uncased_multihead": "bert-base-uncased",
}
MULTIHEAD = ("bert_base_cased_multihead", "bert_base_uncased_multihead")  # MultiMatch's networks
NET_DESCRIPTIONS: dict[str, str] = {
    "bert_base_cased": "BERT base, cased (USB's text network: mean-pooled, dropout 0.1, 2-layer head; transformers)",
    "bert_base_uncased": "BERT base, uncased (USB's text network, its usb_nlp default; transformers)",
    "bert_base_cased_multihead": "BERT base, cased, with 3 classifier heads (MultiMatch's network; transformers)",
    "bert_base_uncased_multihead": "BERT base, uncased, with 3 classifier heads (USB's MultiMatch network; "
                                   "transformers)",
}
POOLINGS = ("mean", "masked_mean")

# data set -> (classes, description), as USB's usb_nlp configurations have them
DATASETS: dict[str, tuple[int, str]] = {
    "aclImdb": (2, "IMDb movie reviews, positive or negative (USB's json with back-translations)"),
    "ag_news": (4, "AG News topics (USB's json with back-translations)"),
    "amazon_review": (5, "Amazon review ratings, 1 to 5 stars (USB's json with back-translations)"),
    "dbpedia": (14, "DBpedia ontology classes (USB's json with back-translations)"),
    "yahoo_answers": (10, "Yahoo! Answers topics (USB's json with back-translations)"),
    "yelp_review": (5, "Yelp review ratings, 1 to 5 stars (USB's json with back-translations)"),
}
DEFAULT_NET = "bert_base_uncased"  # the net of every usb_nlp configuration but MultiMatch's
