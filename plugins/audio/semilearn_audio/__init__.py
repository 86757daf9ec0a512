"""semilearn-audio: USB's audio benchmarks as a plugin.

It registers, through the registration hook points:

* the ``audio`` modality (:mod:`semilearn_audio.views`): waveforms stored once, padded;
  views ``input_values`` + ``attention_mask`` cropped and augmented batched on the device
  (USB's random crop; its strong sox effects with on-device equivalents);
* the networks ``hubert_base`` and ``wave2vecv2_base`` (USB's names,
  :mod:`semilearn_audio.nets`): USB's mean-pooled classifier on transformers' HuBERT and
  wav2vec 2.0, weights from ``audio.pretrain_path`` or the Hugging Face hub
  (:mod:`semilearn_audio.pretrained`);
* the data sets ``esc50``, ``fsdnoisy``, ``gtzan``, ``superbks`` and ``urbansound8k``
  (:mod:`semilearn_audio.data`): USB's pickled waveforms.

Configuration section ``audio``: ``pretrain_path``, ``max_length_seconds``,
``sample_rate``, ``normalize``, ``attention_mask``, ``storage``, ``eval_split``.
transformers is imported when a run builds its network, never at plugin discovery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from semilearn import Hook, Option, hookimpl

from .names import AUDIO, DATASETS, HUB_NAMES, NET_DESCRIPTIONS, SAMPLE_RATE

if TYPE_CHECKING:
    import torch

    from semilearn.config import Config
    from semilearn.data import InputSpec
    from semilearn.data.base import SSLData

    from .nets import AudioClassifier
    from .views import AudioViews

__all__ = ["AudioPlugin", "__version__"]
__version__ = "0.1.0"


class AudioPlugin(Hook):
    """Audio: the ``audio`` modality, USB's HuBERT and wav2vec 2.0 networks and its five audio data sets."""

    name = "audio"
    config_options = (
        Option("pretrain_path", str, None, "Folder with the network's weights (save_pretrained); null: the "
               "network's checkpoint on the Hugging Face hub (facebook/hubert-base-ls960 ...), from the local cache "
               "when offline.", nullable=True),
        Option("max_length_seconds", float, None, "Seconds a training view is cropped to and an evaluation view "
               "cut to (USB's max_length_seconds); null: USB's value for the data set (esc50 5, fsdnoisy 5, "
               "gtzan 3, superbks 1, urbansound8k 4).", nullable=True, minimum=0.01),
        Option("sample_rate", int, SAMPLE_RATE, "Samples per second of the stored waveforms (USB's sample_rate; "
               "nothing is resampled).", minimum=1),
        Option("normalize", str, "padded", "Zero mean, unit variance per view over the `padded` width, zeros "
               "included (USB: its feature extractor has no attention mask), or over the `masked` real samples.",
               choices=("padded", "masked")),
        Option("attention_mask", bool, False, "Pass the views' attention mask to the encoder (USB: no)."),
        Option("storage", str, "float32", "How waveforms are stored: `float32`, or `float16` (half the memory).",
               choices=("float32", "float16")),
        Option("eval_split", str, "dev", "The pickle evaluation reads: `dev` (USB's eval split) or `test`.",
               choices=("dev", "test")),
    )

    def _section(self, config: Config | None = None) -> Any:
        section = config.section(self.name) if config is not None else None
        return section if section else self.config

    def _net_builder(self, net: str) -> Callable[[int, InputSpec], AudioClassifier]:
        def build(num_classes: int, spec: InputSpec) -> AudioClassifier:
            from .nets import AudioClassifier
            from .pretrained import load_backbone

            section = self._section()
            return AudioClassifier(load_backbone(net, section.pretrain_path), num_classes, section.attention_mask)

        return build

    def _dataset_builder(self, name: str) -> Callable[[Config, torch.device], SSLData]:
        def build(config: Config, device: torch.device) -> SSLData:
            from .data import build_audio_dataset

            return build_audio_dataset(name, config, self._section(config)).to(device)

        return build

    @hookimpl
    def register_modalities(self, register: Callable[..., None]) -> None:
        register(AUDIO, _audio_views, "waveforms padded once; input_values + attention_mask, a random crop as the "
                 "weak view, USB's sox effects (on-device equivalents) and a crop as the strong view")

    @hookimpl
    def register_nets(self, register: Callable[..., None]) -> None:
        for net in HUB_NAMES:
            register(net, self._net_builder(net), NET_DESCRIPTIONS[net])

    @hookimpl
    def register_datasets(self, register: Callable[..., None]) -> None:
        for name, (num_classes, seconds, _, description) in DATASETS.items():
            register(name, self._dataset_builder(name), f"{description}, {num_classes} classes, {seconds:g} s crops "
                     "(data_dir)")


def _audio_views(data: SSLData, generator: torch.Generator) -> AudioViews:
    from .views import AudioViews

    return AudioViews(data, generator)
