"""The names this plugin registers, and USB's facts about them; imports nothing heavy."""

from __future__ import annotations

__all__ = ["AUDIO", "HUB_NAMES", "NET_DESCRIPTIONS", "DATASETS", "DEFAULT_NET", "SAMPLE_RATE"]

AUDIO = "audio"

# network name (USB's spelling, ``wave2vecv2`` included) -> its checkpoint on the Hugging Face hub
HUB_NAMES: dict[str, str] = {
    "hubert_base": "facebook/hubert-base-ls960",
    "wave2vecv2_base": "facebook/wav2vec2-base-960h",
}
NET_DESCRIPTIONS: dict[str, str] = {
    "hubert_base": "HuBERT base (USB's audio network: mean-pooled, dropout 0.1, 2-layer head; transformers)",
    "wave2vecv2_base": "wav2vec 2.0 base (USB's audio network: mean-pooled, dropout 0.1, 2-layer head; transformers)",
}

# data set -> (classes, USB's max_length_seconds, the net of USB's fixmatch file, description)
DATASETS: dict[str, tuple[int, float, str, str]] = {
    "esc50": (50, 5.0, "hubert_base", "ESC-50 environmental sounds (USB's pickled waveforms)"),
    "fsdnoisy": (20, 5.0, "hubert_base", "FSDnoisy18k sound events, noisy unlabelled set (USB's pickled waveforms)"),
    "gtzan": (10, 3.0, "wave2vecv2_base", "GTZAN music genres (USB's pickled waveforms)"),
    "superbks": (10, 1.0, "wave2vecv2_base", "SUPERB keyword spotting (USB's pickled waveforms)"),
    "urbansound8k": (10, 4.0, "hubert_base", "UrbanSound8K urban sounds (USB's pickled waveforms)"),
}
DEFAULT_NET = "hubert_base"
SAMPLE_RATE = 16000  # every usb_audio configuration
