"""Write the vision-transformer parity fixtures with USB's own code (run beside USB 0.3.2).

    python tests/parity/usb_generate_vit.py --out tests/parity/fixtures/vit

Writes, with USB's classes and functions (see tests/parity/README.md):

* ``vit.pt``: a small ``VisionTransformer`` of USB's class (width 24, 2 blocks, 2 heads,
  32x32 images in patches of 4, 10 classes) built at seed 0: its state dict, and its
  logits and features for fixed images in evaluation mode; the learning rate and weight
  decay USB's ``get_optimizer`` gives each parameter (with and without ``layer_decay``,
  of the bare network, of CoMatch's wrapper around it and of ``wrn_28_2``); a state dict
  as USB's ``load_checkpoint`` leaves a small ViT for 24x24 images after reading a weight
  file saved from one for 16x16 images (nested under ``model``, with a ``module.``
  prefix and a classifier of another class count).
* ``names.json``: parameter and buffer names and shapes of USB's ``vit_*`` builders.

USB's ViT imports ``DropPath`` and ``to_2tuple`` from timm, which is not installed here:
stand-ins of the same behaviour are put in its place (``DropPath`` is only used by the
builders' stochastic depth, which is the identity in evaluation mode).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sketch import PRECISION, default_dtype  # noqa: E402
from usb_generate import SEED, VIEW_SEED, cpu_name, import_usb, seed_everything  # noqa: E402

TINY = {"img_size": 32, "patch_size": 4, "embed_dim": 24, "depth": 2, "num_heads": 2, "num_classes": 10}
BUILDERS = ["vit_tiny_patch2_32", "vit_small_patch2_32", "vit_small_patch16_224", "vit_base_patch16_224",
            "vit_base_patch16_96"]


def install_timm_stand_ins() -> None:
    class DropPath(torch.nn.Module):
        def __init__(self, drop_prob: float = 0.0) -> None:
            super().__init__()
            self.drop_prob = drop_prob

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training and self.drop_prob > 0:
                raise RuntimeError("the stand-in DropPath is for evaluation mode only")
            return x

    def to_2tuple(value: Any) -> Any:
        return tuple(value) if isinstance(value, (tuple, list)) else (value, value)

    for name in ("timm", "timm.models"):
        module = types.ModuleType(name)
        module.__path__ = []
        sys.modules[name] = module
    layers = types.ModuleType("timm.models.layers")
    layers.__path__ = []
    layers.DropPath = DropPath  # type: ignore[attr-defined]
    layers.to_2tuple = to_2tuple  # type: ignore[attr-defined]
    layers.trunc_normal_ = torch.nn.init.trunc_normal_  # type: ignore[attr-defined]
    sys.modules["timm.models.layers"] = layers


def optimizer_table(get_optimizer: Any, net: torch.nn.Module, **kwargs: Any) -> dict[str, list[float]]:
    """parameter name -> [lr, weight_decay] as USB's optimizer groups hold them."""
    optimizer = get_optimizer(net, **kwargs)
    by_id = {id(parameter): name for name, parameter in net.named_parameters()}
    table: dict[str, list[float]] = {}
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            table[by_id[id(parameter)]] = [float(group["lr"]), float(group["weight_decay"])]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "fixtures" / "vit")
    options = parser.parse_args()
    install_timm_stand_ins()
    usb = import_usb()
    torch.set_num_threads(2)
    from semilearn.algorithms.comatch.comatch import CoMatch_Net
    from semilearn.core.utils.build import get_optimizer
    from semilearn.nets import vit as usb_vit
    from semilearn.nets.utils import load_checkpoint
    from semilearn.nets.wrn import wrn

    provenance = {"semilearn (USB)": "0.3.2", "torch": str(torch.__version__), "python": platform.python_version(),
                  "precision": str(PRECISION), "cpu": cpu_name(),
                  "machine": platform.machine(), "usb_module": str(Path(usb.__file__).parent)}

    seed_everything(SEED)
    net = usb_vit.VisionTransformer(**TINY)
    state_dict = {name: value.clone() for name, value in net.state_dict().items()}  # float32, as built
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(VIEW_SEED))
    with torch.no_grad(), default_dtype(PRECISION):  # the outputs in float64: compared by the parity rule
        output = net.to(PRECISION).eval()(images.to(PRECISION))
    net.float()

    optimizers = {
        "vit_adamw_0.65": optimizer_table(get_optimizer, net, optim_name="AdamW", lr=5e-4, weight_decay=0.05,
                                          layer_decay=0.65),
        "vit_adamw_1.0": optimizer_table(get_optimizer, net, optim_name="AdamW", lr=5e-4, weight_decay=0.05,
                                         layer_decay=1.0),
    }
    wrapped = CoMatch_Net(net, proj_size=8)
    optimizers["comatch_vit_adamw_0.65"] = optimizer_table(get_optimizer, wrapped, optim_name="AdamW", lr=5e-4,
                                                           weight_decay=0.05, layer_decay=0.65)
    optimizers["comatch_vit_adamw_1.0"] = optimizer_table(get_optimizer, wrapped, optim_name="AdamW", lr=5e-4,
                                                          weight_decay=0.05, layer_decay=1.0)
    seed_everything(SEED)
    optimizers["wrn_28_2_sgd_0.5"] = optimizer_table(get_optimizer, wrn.wrn_28_2(num_classes=10), optim_name="SGD",
                                                     lr=0.03, weight_decay=5e-4, layer_decay=0.5)

    # load_checkpoint: a file from a 16x16 ViT (4x4 patches of 4), read into a 24x24 one (6x6)
    small = {"patch_size": 4, "embed_dim": 8, "depth": 1, "num_heads": 2}
    seed_everything(SEED + 1)
    source = usb_vit.VisionTransformer(img_size=16, num_classes=5, **small)
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.normal_()
    seed_everything(SEED + 2)
    target = usb_vit.VisionTransformer(img_size=24, num_classes=3, **small)
    saved = {"model": {f"module.{name}": value for name, value in source.state_dict().items()}}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.pth"
        torch.save(saved, path)
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            load_checkpoint(target, str(path))
    loading = {"small": small, "source_img_size": 16, "target_img_size": 24, "file": saved,
               "loaded": {name: value.clone() for name, value in target.state_dict().items()},
               "usb_printed": printed.getvalue().strip()}

    options.out.mkdir(parents=True, exist_ok=True)
    torch.save({"config": TINY, "state_dict": state_dict,
                "images": images, "logits": output["logits"].clone(), "feat": output["feat"].clone(),
                "optimizers": optimizers, "loading": loading, "provenance": provenance}, options.out / "vit.pt")

    names: dict[str, Any] = {"provenance": provenance}
    for builder in BUILDERS:
        model = getattr(usb_vit, builder)(num_classes=10)
        names[builder] = {"num_classes": 10,
                          "drop_path": [float(module.drop_prob) for module in model.modules()
                                        if type(module).__name__ == "DropPath"],
                          "state_dict": [[name, list(value.shape)] for name, value in model.state_dict().items()],
                          "parameters": [name for name, _ in model.named_parameters()]}
    (options.out / "names.json").write_text(json.dumps(names, indent=None, separators=(",", ":")) + "\n")
    print("vit.pt, names.json", flush=True)


if __name__ == "__main__":
    main()
