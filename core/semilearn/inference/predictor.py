"""A trained network outside its run: :func:`load` gives a :class:`Predictor`.

A checkpoint holds the network's weights (the model's and, with the ``ema`` plugin, the
averaged ones evaluation used) and a *model card*: the registered network name, the input
it takes (uint8 images ``[C, H, W]``), its normalisation and the class names. From those
the network is rebuilt through the network registry, without the training data.
Checkpoints written before the card existed are read too: the card is then rebuilt from
the data set of the checkpoint's configuration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data.common import resize_images
from ..data.modality import IMAGE, InputSpec
from ..errors import CheckpointError, DataError, InputError
from ..rundir import read_checkpoint, run_checkpoint

if TYPE_CHECKING:
    from torch import nn

    from ..config import Config
    from ..plugins import PluginManager

__all__ = ["ModelCard", "Predictor", "Prediction", "load", "WEIGHTS", "network_weights"]

WEIGHTS = ("auto", "ema", "model")


@dataclass(frozen=True)
class ModelCard:
    """What using the network needs (see :meth:`semilearn.AlgorithmBase.model_card`)."""

    net: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    dataset: str
    algorithm: str
    input_dtype: str = "uint8"

    @property
    def input_spec(self) -> InputSpec:
        """The sample the network takes (what its builder reads)."""
        return InputSpec(IMAGE, self.input_shape, self.input_dtype)

    @classmethod
    def from_mapping(cls, card: Mapping[str, Any]) -> ModelCard:
        spec = InputSpec.from_dict(card["input"]) if isinstance(card.get("input"), Mapping) \
            else InputSpec(str(card.get("modality", IMAGE)), tuple(int(size) for size in card.get("input_shape") or ()),
                           str(card.get("input_dtype", "uint8")))  # cards written before specs
        if spec.modality != IMAGE:
            raise InputError(f"the checkpoint's network takes {spec.modality} data (data set '{card.get('dataset')}'); "
                             "evaluate, predict, export and semilearn.load take image networks only so far")
        try:
            channels, height, width = spec.image_shape
        except DataError as error:
            raise InputError(f"the checkpoint's model card: {error}") from error
        num_classes = int(card["num_classes"])
        classes = card.get("classes") or [str(index) for index in range(num_classes)]
        return cls(str(card["net"]), num_classes, (channels, height, width),
                   tuple(float(v) for v in card["mean"]), tuple(float(v) for v in card["std"]),
                   tuple(str(name) for name in classes), str(card.get("dataset", "")),
                   str(card.get("algorithm", "")), spec.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"net": self.net, "num_classes": self.num_classes, "input_shape": list(self.input_shape),
                "input_dtype": self.input_dtype, "mean": list(self.mean), "std": list(self.std),
                "classes": list(self.classes), "dataset": self.dataset, "algorithm": self.algorithm}


@dataclass(frozen=True)
class Prediction:
    """Class probabilities ``probs [N, K]`` and the predicted class ``labels [N]``."""

    probs: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def top_k(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` most probable classes of each input: (probabilities, class indices), ``[N, k]``."""
        values, indices = self.probs.topk(min(k, self.probs.shape[-1]), dim=-1)
        return values, indices

    @property
    def names(self) -> list[str]:
        return [self.classes[int(index)] for index in self.labels]


def network_weights(state: Mapping[str, Any], weights: str = "auto") -> tuple[dict[str, torch.Tensor], str]:
    """The network's state dict in a checkpoint and which weights it is (``"ema"`` or ``"model"``).

    ``auto`` is what the run evaluated: the EMA weights when the ``ema`` plugin kept them,
    else the model's. Extra heads some algorithms train (rotation, projection) are left
    out; the classifier's logits do not use them.
    """
    if weights not in WEIGHTS:
        raise InputError(f"--weights is one of {', '.join(WEIGHTS)}, not '{weights}'")
    plugins = state.get("plugins") or {}
    ema = (plugins.get("ema") or {}).get("model") if isinstance(plugins, Mapping) else None
    if weights == "ema" and ema is None:
        raise InputError("the checkpoint holds no EMA weights (the ema plugin was off): use --weights model")
    chosen = "ema" if weights in ("auto", "ema") and ema is not None else "model"
    state_dict = ema if chosen == "ema" else state.get("model")
    if not isinstance(state_dict, Mapping):
        raise InputError("the checkpoint holds no model weights")
    if any(key.startswith("backbone.") for key in state_dict):  # NetWithHeads: the backbone alone
        state_dict = {key[len("backbone."):]: value for key, value in state_dict.items()
                      if key.startswith("backbone.")}
    return dict(state_dict), chosen


class Predictor:
    """A trained network with the input handling of its data set.

    ``predict(images)`` takes uint8 images ``[N, C, H, W]`` (a tensor or a NumPy array;
    also grey ``[N, H, W]``, channels-last ``[N, H, W, C]`` or one grey ``[H, W]``) and returns
    a :class:`Prediction`. Images of another size are resized as the data sets resize
    them (bilinear, antialiased); images with another number of channels are an error.
    """

    def __init__(self, model: nn.Module, card: ModelCard, device: torch.device | str = "cpu", *,
                 weights: str = "model", checkpoint: Path | None = None, step: int | None = None,
                 eval_history: Sequence[Mapping[str, float]] = (), config: Mapping[str, Any] | None = None) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.card = card
        self.weights = weights
        self.checkpoint = checkpoint
        self.step = step
        self.eval_history = [dict(entry) for entry in eval_history]
        self.config = dict(config or {})
        channels = card.input_shape[0]
        self._mean = torch.tensor(card.mean, device=self.device).view(1, channels, 1, 1)
        self._std = torch.tensor(card.std, device=self.device).view(1, channels, 1, 1)

    @property
    def classes(self) -> list[str]:
        return list(self.card.classes)

    @property
    def run_evaluation(self) -> dict[str, float] | None:
        """The run's own evaluation of these weights: the last one at the checkpoint's step."""
        return next((entry for entry in reversed(self.eval_history)
                     if self.step is not None and entry.get("step") == self.step), None)

    def prepare(self, images: Any, name: str = "the input") -> torch.Tensor:
        """``images`` as uint8 ``[N, C, H, W]`` of the network's size (on the CPU)."""
        tensor = torch.as_tensor(images)
        if tensor.dtype != torch.uint8:
            raise InputError(f"{name}: images must be uint8 (0-255), got {tensor.dtype}")
        channels, height, width = self.card.input_shape
        if tensor.ndim == 2:  # one grey image [H, W]
            tensor = tensor[None]
        if tensor.ndim == 3:  # grey images [N, H, W]
            tensor = tensor[:, None]
        if tensor.ndim != 4:
            raise InputError(f"{name}: expected images [N, C, H, W] or [N, H, W, C], got shape {list(tensor.shape)}")
        if tensor.shape[1] not in (1, 3) and tensor.shape[-1] in (1, 3):
            tensor = tensor.permute(0, 3, 1, 2)
        if tensor.shape[1] != channels:
            raise InputError(f"{name}: images have {tensor.shape[1]} channel(s); the network takes {channels}")
        return resize_images(tensor, (height, width)).contiguous()

    @torch.no_grad()
    def logits(self, images: Any, batch_size: int = 256) -> torch.Tensor:
        """Logits ``[N, K]`` (float32, on the CPU) for ``images`` (see :meth:`prepare`)."""
        prepared = self.prepare(images)
        chunks = []
        for start in range(0, len(prepared), batch_size):
            batch = prepared[start : start + batch_size].to(self.device)
            normalised = (batch.float().div_(255.0) - self._mean) / self._std
            chunks.append(self.model(normalised)["logits"].float().cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, self.card.num_classes)

    def predict(self, images: Any, batch_size: int = 256) -> Prediction:
        """Class probabilities and predicted classes of ``images``."""
        probs = torch.softmax(self.logits(images, batch_size), dim=-1)
        return Prediction(probs, probs.argmax(dim=-1), self.card.classes)


def load(target: str | Path, checkpoint: str = "best", weights: str = "auto", device: str = "cpu",
         manager: PluginManager | None = None) -> Predictor:
    """The trained network of ``target``: a run directory (its ``best.pt``, or ``last.pt``
    with ``checkpoint="last"``) or a checkpoint file.

    ``weights``: ``auto`` (what the run evaluated: EMA weights when kept), ``ema`` or
    ``model``. Errors are one line (:class:`~semilearn.errors.InputError`).
    """
    from ..plugins import PluginManager

    manager = manager or PluginManager().load()
    try:
        path = run_checkpoint(Path(target), checkpoint)
        state = read_checkpoint(path)
    except CheckpointError as error:
        raise InputError(str(error)) from error
    return predictor_of(state, manager, weights, device, path)


def predictor_of(state: Mapping[str, Any], manager: PluginManager, weights: str = "auto", device: str = "cpu",
                 path: Path | None = None) -> Predictor:
    """The predictor of a checkpoint's state (read from ``path``, or a run's state in memory)."""
    card = model_card(state, manager)
    state_dict, chosen = network_weights(state, weights)
    network = manager.registry("net").get(card.net)(card.num_classes, card.input_spec)
    try:
        network.load_state_dict(state_dict)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise InputError(f"{path or 'the run'}: the weights do not fit network '{card.net}': {first}") from error
    return Predictor(network, card, device, weights=chosen, checkpoint=path, step=state.get("step"),
                     eval_history=state.get("eval_history") or [], config=state.get("config"))


def model_card(state: Mapping[str, Any], manager: PluginManager) -> ModelCard:
    """The checkpoint's model card; for a checkpoint written before cards, the data set of
    its configuration is built to make one."""
    saved = state.get("model_card")
    if isinstance(saved, Mapping):
        return ModelCard.from_mapping(saved)
    config = saved_config(state, manager)
    from ..data.torchdata import builder_for
    data = builder_for(manager, config.dataset)(config, torch.device("cpu"))
    from ..algorithm import resolved_net_name

    channels, height, width = data.image_shape
    return ModelCard(resolved_net_name(config, data), data.num_classes, (channels, height, width),
                     tuple(data.augment.mean), tuple(data.augment.std), tuple(data.class_names), data.name,
                     str(state.get("algorithm", "")))


def saved_config(state: Mapping[str, Any], manager: PluginManager, overrides: Sequence[str] = ()) -> Config:
    """The checkpoint's resolved configuration, with ``overrides`` (``key=value``)."""
    from ..runner import load_config

    raw = state.get("config")
    if not isinstance(raw, Mapping):
        raise InputError("the checkpoint holds no configuration")
    raw = {key: value for key, value in raw.items() if key != "disable_plugins"}  # the run's, not this command's
    return load_config(manager, None, list(overrides), raw=raw).config
