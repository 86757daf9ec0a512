"""Vision transformers against USB's own class (fixtures by tests/parity/usb_generate_vit.py).

``vit.pt`` holds a small ViT of USB's class (width 24, 2 blocks, 32x32 images in patches
of 4) built at seed 0: its state dict and its outputs for fixed images. ``names.json``
holds the parameter names and shapes of USB's ``vit_*`` builders. See tests/parity/README.md.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from parity.compare import Comparison
from parity.sketch import PRECISION, default_dtype

from semilearn.data import InputSpec
from semilearn.errors import ConfigError
from semilearn.nets import BUILTIN_NETS
from semilearn.nets import vit as vit_module
from semilearn.nets.vit import VisionTransformer

FIXTURES = Path(__file__).resolve().parent / "parity" / "fixtures" / "vit"  # apart from the algorithms' fixtures


@functools.cache
def _fixture() -> dict[str, Any]:
    return torch.load(FIXTURES / "vit.pt", weights_only=True)  # type: ignore[no-any-return]


def _tiny(**overrides: Any) -> VisionTransformer:
    config = dict(_fixture()["config"])
    config.update(overrides)
    return VisionTransformer(config.pop("num_classes"), img_size=config["img_size"],
                             patch_size=config["patch_size"], embed_dim=config["embed_dim"],
                             depth=config["depth"], num_heads=config["num_heads"])


def test_usbs_weights_load_strictly_and_give_usbs_outputs() -> None:
    """USB's float32 weights; both sides compute the outputs in float64 (the parity rule, tests/parity/compare.py)."""
    fixture = _fixture()
    net = _tiny()
    net.load_state_dict(fixture["state_dict"], strict=True)
    net.to(PRECISION).eval()
    with torch.no_grad(), default_dtype(PRECISION):
        output = net(fixture["images"].to(PRECISION))
    assert set(output) == {"logits", "feat"}
    comparison = Comparison()
    comparison.tensor(output["logits"], fixture["logits"], "logits")
    comparison.tensor(output["feat"], fixture["feat"], "feat")
    assert not comparison.failures, comparison.report()
    assert net.num_features == 24


def test_the_same_seed_gives_usbs_initial_weights() -> None:
    torch.manual_seed(0)
    net = _tiny()
    expected = _fixture()["state_dict"]
    assert list(net.state_dict()) == list(expected)
    for name, value in net.state_dict().items():
        assert torch.equal(value, expected[name]), name


@pytest.mark.parametrize("builder", ["vit_tiny_patch2_32", "vit_small_patch2_32", "vit_small_patch16_224",
                                     "vit_base_patch16_224", "vit_base_patch16_96"])
def test_builders_have_usbs_names_shapes_and_stochastic_depth(builder: str) -> None:
    usb = json.loads((FIXTURES / "names.json").read_text())[builder]
    size = int(builder.rsplit("_", 1)[1])
    with torch.device("meta"):  # shapes only: nothing allocated
        net = getattr(vit_module, builder)(usb["num_classes"], InputSpec("image", (3, size, size)))
    assert [[name, list(value.shape)] for name, value in net.state_dict().items()] == usb["state_dict"]
    assert [name for name, _ in net.named_parameters()] == usb["parameters"]
    rates = [module.rate for module in net.modules() if type(module).__name__ == "_DropPath"]
    assert rates == pytest.approx(usb["drop_path"], abs=0)
    assert BUILTIN_NETS[builder][0] == f"semilearn.nets.vit:{builder}"


def test_a_builder_refuses_images_of_another_size() -> None:
    with pytest.raises(ConfigError, match=r"'vit_tiny_patch2_32' takes 32x32 images.*96 pixels"):
        vit_module.vit_tiny_patch2_32(10, InputSpec("image", (3, 96, 96)))


def test_stochastic_depth_acts_in_training_only() -> None:
    torch.manual_seed(0)
    net = VisionTransformer(4, img_size=8, patch_size=4, embed_dim=8, depth=2, num_heads=2, drop_path_rate=0.5)
    images = torch.randn(16, 3, 8, 8)
    net.eval()
    with torch.no_grad():
        first, second = net(images)["logits"], net(images)["logits"]
    assert torch.equal(first, second)
    net.train()
    torch.manual_seed(1)
    with torch.no_grad():
        trained = net(images)["logits"]
    assert not torch.allclose(trained, first)


def test_a_small_vit_builds_and_trains_one_step_through_the_registry() -> None:
    from semilearn.plugins import PluginManager

    manager = PluginManager().load(blocked=["logging", "checkpoint"])
    builder = manager.registry("net").get("vit_tiny_patch2_32")
    net = builder(10, InputSpec("image", (3, 32, 32)))
    output = net(torch.zeros(2, 3, 32, 32))
    assert output["logits"].shape == (2, 10) and output["feat"].shape == (2, 192)
    output["logits"].sum().backward()
    assert net.head.weight.grad is not None and net.patch_embed.proj.weight.grad is not None


@pytest.mark.parametrize("algorithm", ["crmatch", "comatch", "simmatch", "remixmatch", "fixmatch"])
def test_algorithms_with_heads_train_a_vit(tmp_path: Path, algorithm: str) -> None:
    """As USB's wrappers: CR-Match's feature-distance head reads the class token, not a feature map."""
    from test_algorithms import make

    torch.manual_seed(0)
    net = VisionTransformer(10, img_size=8, patch_size=4, in_channels=1, embed_dim=8, depth=1, num_heads=2)
    built = make(tmp_path, algorithm, "layer_decay=0.5", model=net)
    loss, _ = built.train_step(**built.sample_batch())
    loss.backward()
    assert torch.isfinite(loss) and net.patch_embed.proj.weight.grad is not None
    rates = sorted({group["lr"] for group in built.optimizer.param_groups})
    assert rates == pytest.approx([built.config.lr * 0.5 ** k for k in (2, 1, 0)])  # embeddings, block, top
