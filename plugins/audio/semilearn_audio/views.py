"""The ``audio`` modality: waveforms stored once, views cropped and augmented on the device.

Samples (what an audio data set stores, see :mod:`semilearn_audio.data`) are a dict:

* ``wave``: ``[N, T]`` float32 (or float16, ``audio.storage``) waveforms at the data set's
  sample rate, padded with zeros to the longest of the split;
* ``length``: ``[N]`` int64, the number of real samples of each waveform.

Views (what HuBERT and wav2vec 2.0 take) are dicts ``input_values`` ``[B, W]`` (float32)
and ``attention_mask`` ``[B, W]`` (int64, 1 on real samples). ``C`` below is
``round(sample_rate * max_length_seconds)``, USB's crop:

* weak: a random crop of ``C`` samples (USB's ``random_subsample``: offset uniform in
  ``0 .. length - C - 1``; a waveform no longer than ``C`` is kept whole), width
  ``min(C, T)``;
* plain (evaluation): the first ``C`` samples (USB's collator truncates to ``C``), width
  ``min(C, T)``;
* strong: USB's strong transform, then a random crop, width ``C`` (USB pads strong views to
  ``C``). USB draws two effects per sample with replacement from four sox effects; here:

  - ``gain -n A`` (A an integer dB from ``int(-5 + 10 u)``): scale to a peak of A dB, as sox;
  - ``speed S`` (S = 0.5 .. 2.0): resampling by linear interpolation, the length divided by
    S, as sox's speed followed by its ``rate`` back to the sample rate (sox resamples with
    a band-limited filter: interpolation here aliases a little more);
  - ``pitch P`` (P = -2 .. 2 cents): sox keeps the tempo (a phase vocoder); here it is a
    resampling by ``2 ** (P / 1200)``, which also changes the length by at most 0.12 %;
  - ``reverb -w`` (wet only): a convolution (FFT) with an exponentially decaying noise
    impulse response of 0.25 s drawn from the generator (sox runs Freeverb's comb and
    allpass filters), applied to the cropped window rather than to the whole waveform.

  An effect drawn twice is applied twice (speed, pitch, gain) or once (reverb).
* join: the views padded with zeros to the widest and concatenated, for one forward pass.

Every view is then normalised to zero mean and unit variance per waveform, as the
feature extractor of USB's networks does (``Wav2Vec2FeatureExtractor``, ``do_normalize``):
``audio.normalize: padded`` (USB: its extractor returns no attention mask, so the mean and
variance run over the padded width, zeros included) or ``masked`` (the real samples only,
padding left at 0). Every random draw comes from the generator; there is no host
synchronisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as functional

if TYPE_CHECKING:
    from semilearn.data.base import SSLData

__all__ = ["AudioSpec", "AudioViews", "NORMALIZATIONS", "EFFECTS"]

NORMALIZATIONS = ("padded", "masked")
EFFECTS = ("gain", "pitch", "speed", "reverb")  # USB's list, in its order
REVERB_SECONDS = 0.25


@dataclass(frozen=True)
class AudioSpec:
    """How an audio data set is cut into views (its :attr:`SSLData.augment`).

    Attributes:
        sample_rate: samples per second of the stored waveforms (USB: 16000).
        max_length_seconds: the crop, in seconds (USB's ``max_length_seconds``).
        normalize: ``"padded"`` (USB) or ``"masked"``, see the module.
        effects: effects the strong view draws per sample (USB: 2).
    """

    sample_rate: int
    max_length_seconds: float
    normalize: str = "padded"
    effects: int = 2

    @property
    def crop(self) -> int:
        return max(1, int(round(self.sample_rate * self.max_length_seconds)))


def normalise(values: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Zero mean, unit variance per row (``1e-7`` added to the variance, as transformers does)."""
    if how == "padded":
        mean = values.mean(dim=1, keepdim=True)
        var = values.var(dim=1, unbiased=False, keepdim=True)
        return (values - mean) / torch.sqrt(var + 1e-7)
    weights = mask.to(values.dtype)
    count = weights.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (values * weights).sum(dim=1, keepdim=True) / count
    var = ((values - mean).square() * weights).sum(dim=1, keepdim=True) / count
    return (values - mean) / torch.sqrt(var + 1e-7) * weights


class AudioViews:
    """The views of the ``audio`` modality; every random draw comes from ``generator``."""

    def __init__(self, data: SSLData, generator: torch.Generator) -> None:
        spec = data.augment
        self.spec = spec if isinstance(spec, AudioSpec) else AudioSpec(16000, 1.0)
        self.generator = generator

    def _uniform(self, *shape: int, device: torch.device) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, device=device)

    def _finish(self, values: torch.Tensor, valid: torch.Tensor) -> dict[str, torch.Tensor]:
        positions = torch.arange(values.shape[1], device=values.device)
        mask = positions[None, :] < valid[:, None]
        values = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device))
        return {"input_values": normalise(values, mask, self.spec.normalize), "attention_mask": mask.long()}

    def _crop(self, wave: torch.Tensor, length: torch.Tensor, random: bool) -> dict[str, torch.Tensor]:
        width = min(self.spec.crop, wave.shape[1])
        room = (length - self.spec.crop).clamp(min=0)
        if random:  # USB: randint(0, length - C - 1), i.e. uniform over `room` offsets
            offset = (self._uniform(wave.shape[0], device=wave.device) * room).long().clamp(max=(room - 1).clamp(min=0))
        else:
            offset = torch.zeros_like(length)
        index = (offset[:, None] + torch.arange(width, device=wave.device)[None, :]).clamp(max=wave.shape[1] - 1)
        values = wave.gather(1, index).float()
        return self._finish(values, torch.minimum(length, torch.full_like(length, width)))

    def weak(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._crop(samples["wave"], samples["length"], random=True)

    def plain(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self._crop(samples["wave"], samples["length"], random=False)

    def strong(self, samples: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        wave, length = samples["wave"], samples["length"]
        rows, device = wave.shape[0], wave.device
        crop = self.spec.crop
        # the draws: effects (with replacement), then each effect's parameter, then the crop
        chosen = (self._uniform(rows, self.spec.effects, device=device) * len(EFFECTS)).long().clamp(max=len(EFFECTS) - 1)
        times = torch.stack([(chosen == effect).sum(dim=1) for effect in range(len(EFFECTS))], dim=1)  # [B, 4]
        speed = 0.5 + 1.5 * self._uniform(rows, device=device)
        cents = -2.0 + 4.0 * self._uniform(rows, device=device)
        attenuation = torch.trunc(-5.0 + 10.0 * self._uniform(rows, device=device))
        crop_draw = self._uniform(rows, device=device)
        impulse = self._impulse(device)

        # speed and pitch: one resampling by the product of their factors
        factor = speed.pow(times[:, 2]) * torch.pow(2.0, cents / 1200.0).pow(times[:, 1])
        stretched = torch.floor(length.to(factor.dtype) / factor).long().clamp(min=1)
        room = (stretched - crop).clamp(min=0)
        offset = (crop_draw * room).long().clamp(max=(room - 1).clamp(min=0))
        position = (offset[:, None] + torch.arange(crop, device=device)[None, :]).to(factor.dtype)
        source = position * factor[:, None]
        low = source.floor().long()
        fraction = (source - low).to(torch.float32)
        last = (length - 1).clamp(min=0)[:, None]
        left = wave.gather(1, low.clamp(max=last).clamp(max=wave.shape[1] - 1)).float()
        right = wave.gather(1, (low + 1).clamp(max=last).clamp(max=wave.shape[1] - 1)).float()
        values = left + (right - left) * fraction
        valid = (stretched - offset).clamp(max=crop)
        values = values * (torch.arange(crop, device=device)[None, :] < valid[:, None])

        if impulse is not None:  # reverb, wet only: a causal convolution, cut to the window
            size = crop + impulse.shape[0]
            wet = torch.fft.irfft(torch.fft.rfft(values, n=size) * torch.fft.rfft(impulse, n=size)[None, :], n=size)
            values = torch.where(times[:, 3:4] > 0, wet[:, :crop], values)
        # gain -n A: the peak brought to A dB (applied as often as it was drawn; the last one counts)
        peak = values.abs().amax(dim=1).clamp(min=1e-8)
        scale = torch.pow(10.0, attenuation / 20.0) / peak
        values = torch.where(times[:, 0:1] > 0, values * scale[:, None], values)
        return self._finish(values, valid)

    def _impulse(self, device: torch.device) -> torch.Tensor | None:
        """A decaying noise impulse response, -60 dB at its end, of unit energy (drawn every call)."""
        size = max(1, int(self.spec.sample_rate * REVERB_SECONDS))
        noise = torch.randn(size, generator=self.generator, device=device)
        decay = torch.exp(-math.log(1000.0) * torch.arange(size, device=device, dtype=torch.float32) / size)
        impulse = noise * decay
        return impulse / impulse.square().sum().sqrt().clamp(min=1e-8)

    def join(self, views: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        width = max(view["input_values"].shape[1] for view in views)
        values = [functional.pad(view["input_values"], (0, width - view["input_values"].shape[1])) for view in views]
        masks = [functional.pad(view["attention_mask"], (0, width - view["attention_mask"].shape[1])) for view in views]
        return {"input_values": torch.cat(values), "attention_mask": torch.cat(masks)}
