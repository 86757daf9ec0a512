"""Extra heads around a network, and the one way algorithms read a network's outputs.

Every network returns a dict from ``forward(x)`` (see :mod:`semilearn.nets`):
``logits`` ``[B, num_classes]`` and ``feat`` ``[B, num_features]``. An algorithm that
needs more -- a projection for contrastive or similarity losses, a rotation classifier
for self-supervision -- wraps the network in :class:`NetWithHeads` before handing it to
:class:`~semilearn.AlgorithmBase`; each head reads ``feat`` and adds its own entry to
the same dict::

    outputs = self.model(images)
    outputs["logits"], outputs["feat"]      # always
    outputs["proj"]                        # ProjectionHead: L2-normalised embedding
    outputs["logits_rot"]                  # RotationHead: scores of the 4 rotations

Because the wrapper is the model the engine trains, the heads' weights are in the
optimizer, the EMA model and every checkpoint, and evaluation still reads ``logits``.
Algorithms wrap in ``__init__`` before calling the base initialiser::

    def __init__(self, config, data, model, manager, run_dir, device):
        model = NetWithHeads(model, {"proj": ProjectionHead(model.num_features, config.proj_size)})
        super().__init__(config, data, model, manager, run_dir, device)

:func:`unwrap` returns the network inside a ``DistributedDataParallel`` (or similar)
wrapper, for the passes that must not go through it; :func:`frozen_batch_norm_stats`
runs extra forward passes without moving the batch-norm running statistics;
:func:`feature_classifier` is the network's map from ``feat`` to ``logits``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["NetWithHeads", "ProjectionHead", "RotationHead", "FeatureMapHead", "unwrap", "frozen_batch_norm_stats",
           "feature_map_size", "feature_classifier"]


class ProjectionHead(nn.Module):
    """Two-layer MLP (``in -> in -> out``, ReLU between) whose output is L2-normalised.

    CoMatch and SimMatch compare samples by the dot products of these embeddings. With
    ``ensemble`` 3 (EPASS, Nguyen et al., 2024) three such MLPs are averaged before the
    normalisation, as USB's ``use_epass`` does.
    """

    def __init__(self, in_features: int, out_features: int, ensemble: int = 1) -> None:
        super().__init__()
        if ensemble not in (1, 3):
            raise ValueError("a projection head has 1 MLP, or 3 (EPASS)")
        self.mlp = self._mlp(in_features, out_features)
        if ensemble == 3:  # USB's names mlp_proj_2, mlp_proj_3
            self.mlp_2 = self._mlp(in_features, out_features)
            self.mlp_3 = self._mlp(in_features, out_features)
        self.ensemble = ensemble

    @staticmethod
    def _mlp(in_features: int, out_features: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Linear(in_features, in_features), nn.ReLU(inplace=False), nn.Linear(in_features, out_features)
        )

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        projected = self.mlp(feat)
        if self.ensemble == 3:
            projected = (projected + self.mlp_2(feat) + self.mlp_3(feat)) / 3
        return projected / projected.pow(2).sum(dim=1, keepdim=True).pow(0.5)  # USB's l2norm, to the last bit


class RotationHead(nn.Module):
    """Classifies which of the four rotations (0, 90, 180, 270 degrees) an image underwent.

    ``hidden=None`` is one linear layer (ReMixMatch); an integer adds a hidden layer with
    ReLU (CRMatch uses the feature width).
    """

    def __init__(self, in_features: int, hidden: int | None = None) -> None:
        super().__init__()
        self.net: nn.Module
        if hidden is None:
            self.net = nn.Linear(in_features, 4)
        else:
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=False), nn.Linear(hidden, 4))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat)  # type: ignore[no-any-return]


class FeatureMapHead(nn.Linear):
    """A linear map of the flattened feature map before pooling (CR-Match's feature-distance head).

    NetWithHeads hands it the backbone's ``extract(x)`` (``[B, C, h, w]``), flattened in
    channel-major order as USB does; ``in_features`` is ``C * h * w``.
    """

    takes_feature_map = True

    def forward(self, feat_map: torch.Tensor) -> torch.Tensor:
        return super().forward(feat_map.reshape(feat_map.shape[0], -1))


def feature_map_size(backbone: nn.Module, in_channels: int, image_size: int) -> int | None:
    """``C * h * w`` of ``backbone.extract`` for one image of that size; None without ``extract`` or when it
    returns no ``[B, C, h, w]`` map (a ViT's tokens: there USB's CR-Match head reads ``feat``).

    Measured with one forward pass in evaluation mode, which changes nothing in the network.
    """
    extract = getattr(backbone, "extract", None)
    if extract is None:
        return None
    parameter = next(backbone.parameters())
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            feature_map = extract(torch.zeros(1, in_channels, image_size, image_size, device=parameter.device,
                                              dtype=parameter.dtype))
    finally:
        backbone.train(was_training)
    return int(feature_map[0].numel()) if feature_map.ndim == 4 else None


class NetWithHeads(nn.Module):
    """A network plus named heads on its features.

    Args:
        backbone: a network following the :mod:`semilearn.nets` interface.
        heads: output name -> module applied to ``feat``; the name becomes a key of the
            returned dict (it must not be ``logits`` or ``feat``).

    ``num_features`` is the backbone's. The backbone's weights are under ``backbone.``
    and each head's under ``heads.<name>.`` in the state dict.
    """

    def __init__(self, backbone: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        reserved = {"logits", "feat"} & set(heads)
        if reserved:
            raise ValueError(f"a head cannot be named {sorted(reserved)[0]!r}: the network returns it already")
        self.backbone = backbone
        self.heads = nn.ModuleDict(dict(heads))
        self.num_features: int = int(backbone.num_features)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat_map = None
        if any(getattr(head, "takes_feature_map", False) for head in self.heads.values()):
            # As USB's CRMatch_Net: the feature map, its mean over space, the classifier on that.
            feat_map = self.backbone.extract(x)  # type: ignore[operator]
            feat = torch.mean(feat_map, dim=(2, 3))
            outputs = {"logits": self.backbone.classifier(feat), "feat": feat}  # type: ignore[operator]
        else:
            outputs = dict(self.backbone(x))
            feat = outputs["feat"]
        for name, head in self.heads.items():
            outputs[name] = head(feat_map if getattr(head, "takes_feature_map", False) else feat)
        return outputs

    @property
    def classifier(self) -> nn.Module:
        """The backbone's classifier (``feat`` to ``logits``; see :func:`feature_classifier`)."""
        return feature_classifier(self.backbone)

    def layer_key(self, name: str) -> tuple[int, ...] | None:
        """The backbone's layers for layer-wise learning-rate decay; the heads sit with its classifier (as USB's)."""
        layer_key = getattr(self.backbone, "layer_key", None)
        if layer_key is None or not name.startswith("backbone."):
            return None
        return layer_key(name[len("backbone."):])  # type: ignore[no-any-return]


def feature_classifier(network: nn.Module, purpose: str = "") -> nn.Module:
    """The module that maps ``network``'s ``feat`` to its ``logits`` (its ``classifier``).

    ``ConfigError`` naming ``purpose`` (what needs it, such as ``mixup_manifold``) when the
    network has none.
    """
    classifier = getattr(unwrap(network), "classifier", None)
    if not isinstance(classifier, nn.Module):
        needs = f"{purpose} needs" if purpose else "this needs"
        raise ConfigError(f"{needs} the network's classifier of its features, and network "
                          f"'{type(unwrap(network)).__name__}' has no 'classifier' module (see semilearn.nets)")
    return classifier


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper, else ``model``."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module  # type: ignore[no-any-return]
    return model


@contextlib.contextmanager
def frozen_batch_norm_stats(model: nn.Module) -> Iterator[None]:
    """Forward passes inside do not update batch-norm running statistics.

    Batch norm still normalises with the batch's own statistics (the model stays in
    training mode); only the running estimates used at evaluation are left alone, so an
    auxiliary pass (label guessing, adversarial probing) does not count a batch twice.
    Implemented by setting each batch-norm momentum to 0 for the duration.
    """
    layers = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    saved = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        yield
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
