"""Vision transformers as USB builds them (Dosovitskiy et al., 2021), weight for weight.

A patch embedding (one strided convolution), a class token and learnt position
embeddings, ``depth`` pre-norm transformer blocks (multi-head self-attention, then a
two-layer GELU MLP of four times the width, each in a residual branch with stochastic
depth), a final layer norm and a linear classifier on the class token. Layer norms use
eps 1e-6; the query-key-value projection has a bias.

The parameter names and shapes are those of USB's ``semilearn/nets/vit/vit.py``
(``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.<i>.attn.qkv``,
``blocks.<i>.mlp.fc1``, ``norm``, ``head`` ...), so that USB's released weight files
load as they are (:mod:`semilearn.nets.pretrained`), and the modules are created in
USB's order, so the same seed gives the same initial weights: PyTorch's default
initialisation, with zero class token and position embeddings (USB's class initialises
nothing itself). Attention runs through ``scaled_dot_product_attention``, which computes
USB's explicit ``softmax(q k^T / sqrt(d)) v`` to float rounding.

The builders are USB's ``net:`` names: ``vit_tiny_patch2_32``, ``vit_small_patch2_32``
(32x32 images, patches of 2), ``vit_small_patch16_224``, ``vit_base_patch16_224`` (224x224,
patches of 16) and ``vit_base_patch16_96`` (96x96, patches of 16). Each takes images of
its own size only, as the position embeddings are learnt per patch.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ..data.modality import InputSpec

__all__ = [
    "VisionTransformer",
    "vit_tiny_patch2_32",
    "vit_small_patch2_32",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "vit_base_patch16_96",
]

_NORM_EPS = 1e-6
_BLOCK = re.compile(r"blocks\.(\d+)\.")


class _DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual branch with probability ``rate``
    and scale the kept ones by ``1 / (1 - rate)``; the identity at evaluation."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)


class _PatchEmbed(nn.Module):
    """Cuts the image into ``patch_size`` squares and maps each to an ``embed_dim`` vector."""

    def __init__(self, img_size: int, patch_size: int, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, C, h, w] -> [B, h * w, C]


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError("the embedding width must be a multiple of the number of heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, width // self.num_heads).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        attended = F.scaled_dot_product_attention(query, key, value)
        return self.proj(attended.transpose(1, 2).reshape(batch, tokens, width))  # type: ignore[no-any-return]


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))  # type: ignore[no-any-return]


class _Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=_NORM_EPS)
        self.attn = _Attention(dim, num_heads)
        self.drop_path1: nn.Module = _DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=_NORM_EPS)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))
        self.drop_path2: nn.Module = _DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))  # type: ignore[no-any-return]


class VisionTransformer(nn.Module):
    """A ViT classifying by its class token (see the module docstring).

    Args:
        num_classes: classifier outputs.
        img_size: side of the (square) images it takes.
        patch_size: side of a patch; ``img_size`` must be a multiple.
        in_channels: image channels.
        embed_dim: token width (``num_features``).
        depth: transformer blocks.
        num_heads: attention heads per block.
        mlp_ratio: hidden width of the MLP over ``embed_dim``.
        drop_path_rate: stochastic depth of the last block; block ``i`` of ``n`` gets
            ``rate * i / (n - 1)``.

    ``forward`` returns ``logits`` and ``feat`` (the class token after the final norm);
    :meth:`extract` all tokens.
    """

    def __init__(self, num_classes: int, img_size: int = 224, patch_size: int = 16, in_channels: int = 3,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError("the image side must be a multiple of the patch side")
        self.num_features = self.embed_dim = embed_dim
        self.depth = depth
        self.patch_embed = _PatchEmbed(img_size, patch_size, in_channels, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        rates = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()  # float32 values, as USB's
        self.blocks = nn.Sequential(*(_Block(embed_dim, num_heads, mlp_ratio, rate) for rate in rates))
        self.norm = nn.LayerNorm(embed_dim, eps=_NORM_EPS)
        self.head = nn.Linear(embed_dim, num_classes)

    @property
    def classifier(self) -> nn.Module:
        """The head that maps ``feat`` to ``logits`` (named ``head``, as USB's, in the state dict)."""
        return self.head

    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the final norm, ``[B, 1 + patches, embed_dim]`` (the class token first)."""
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        return self.norm(self.blocks(x))  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feat = self.extract(x)[:, 0]
        return {"logits": self.head(feat), "feat": feat}

    def no_weight_decay(self) -> set[str]:
        """Parameters with more than one dimension that still get no weight decay (USB's list)."""
        return {"pos_embed", "cls_token"}

    def layer_key(self, name: str) -> tuple[int, ...] | None:
        """Where parameter ``name`` sits for layer-wise learning-rate decay (see :mod:`semilearn.optim`).

        As USB: the embeddings first, then each block, the final norm with the last
        block; the classifier (None) last.
        """
        if name.startswith(("cls_token", "pos_embed", "patch_embed")):
            return (0,)
        block = _BLOCK.match(name)
        if block:
            return (1, int(block.group(1)))
        if name.startswith("norm"):
            return (1, self.depth - 1)
        return None


def _vit(name: str, num_classes: int, spec: InputSpec, img_size: int, patch_size: int,
         embed_dim: int, num_heads: int, drop_path_rate: float) -> VisionTransformer:
    in_channels, image_size, _ = spec.image_shape
    if image_size != img_size:
        from ..errors import ConfigError

        raise ConfigError(f"network '{name}' takes {img_size}x{img_size} images, the data set's are "
                          f"{image_size} pixels high (set img_size: {img_size}, or choose another network)")
    return VisionTransformer(num_classes, img_size=img_size, patch_size=patch_size, in_channels=in_channels,
                             embed_dim=embed_dim, depth=12, num_heads=num_heads, drop_path_rate=drop_path_rate)


def vit_tiny_patch2_32(num_classes: int, spec: InputSpec) -> VisionTransformer:
    """ViT-Ti/2 for 32x32 images: width 192, 3 heads, stochastic depth 0.1."""
    return _vit("vit_tiny_patch2_32", num_classes, spec, 32, 2, 192, 3, 0.1)


def vit_small_patch2_32(num_classes: int, spec: InputSpec) -> VisionTransformer:
    """ViT-S/2 for 32x32 images: width 384, 6 heads, stochastic depth 0.2."""
    return _vit("vit_small_patch2_32", num_classes, spec, 32, 2, 384, 6, 0.2)


def vit_small_patch16_224(num_classes: int, spec: InputSpec) -> VisionTransformer:
    """ViT-S/16 for 224x224 images: width 384, 6 heads, stochastic depth 0.2."""
    return _vit("vit_small_patch16_224", num_classes, spec, 224, 16, 384, 6, 0.2)


def vit_base_patch16_224(num_classes: int, spec: InputSpec) -> VisionTransformer:
    """ViT-B/16 for 224x224 images: width 768, 12 heads, stochastic depth 0.2."""
    return _vit("vit_base_patch16_224", num_classes, spec, 224, 16, 768, 12, 0.2)


def vit_base_patch16_96(num_classes: int, spec: InputSpec) -> VisionTransformer:
    """ViT-B/16 for 96x96 images: width 768, 12 heads, stochastic depth 0.2."""
    return _vit("vit_base_patch16_96", num_classes, spec, 96, 16, 768, 12, 0.2)
