"""Write the ResNet-50 parity fixture with USB's own code (run beside USB 0.3.2).

    python tests/parity/usb_generate_resnet50.py --out tests/parity/fixtures/resnet50

Writes ``resnet50.pt``: USB's ``resnet50`` (``semilearn.nets.resnet``; bottleneck blocks
``[3, 4, 6, 3]``), 10 classes, built at seed 0 as USB's ``train.py`` seeds (python, torch,
numpy), in float32 as USB builds it. The weights are not stored (about 94 MB): the test
draws them from the same seed, and the fixture holds what checks that it did, the state
dict's names and shapes in order, the parameter count and a sketch of every tensor (sums,
two random projections and sampled values, ``sketch.py``). Then, converted exactly to
float64: the logits and features of two fixed 64x64 images (``randn``, generator seeded
1234) in training mode (batch statistics), the batch-norm statistics that pass leaves, and
then in evaluation mode (with those statistics).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sketch import PRECISION  # noqa: E402
from usb_generate import SEED, VIEW_SEED, cpu_name, import_usb, seed_everything, sketch, sketch_table  # noqa: E402

NUM_CLASSES = 10
IMAGE = 64  # the smallest side at which this project's resnet50 takes USB's ImageNet stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "fixtures" / "resnet50")
    options = parser.parse_args()
    usb = import_usb()
    torch.set_num_threads(2)
    from semilearn.nets.resnet import resnet50

    seed_everything(SEED)
    net = resnet50(num_classes=NUM_CLASSES)
    initial = sketch_table(dict(net.state_dict()))
    record = {
        "num_classes": NUM_CLASSES, "image_size": IMAGE,
        "parameters": sum(parameter.numel() for parameter in net.parameters()),
        "keys": [[name, list(value.shape)] for name, value in net.state_dict().items()],
        "named_parameters": [name for name, _ in net.named_parameters()],
        "num_features": int(net.num_features), "initial": initial,
    }
    images = torch.randn(2, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(VIEW_SEED)).to(PRECISION)
    net.to(PRECISION)
    with torch.no_grad():
        net.train()
        output = net(images)
        record["train"] = {"logits": output["logits"].clone(), "feat": sketch(output["feat"]),
                           "buffers_after_forward": sketch_table({key: value for key, value in net.named_buffers()
                                                                  if not key.endswith("num_batches_tracked")})}
        net.eval()
        output = net(images)
        record["eval"] = {"logits": output["logits"].clone(), "feat": sketch(output["feat"])}
    record["provenance"] = {"semilearn (USB)": "0.3.2", "torch": str(torch.__version__),
                            "python": platform.python_version(), "precision": str(PRECISION), "cpu": cpu_name(),
                            "threads": torch.get_num_threads(), "machine": platform.machine(),
                            "usb_module": str(Path(usb.__file__).parent)}
    options.out.mkdir(parents=True, exist_ok=True)
    torch.save(record, options.out / "resnet50.pt")
    print(f"resnet50.pt: {record['parameters']} parameters, logits {record['eval']['logits'][0, :3].tolist()}",
          flush=True)


if __name__ == "__main__":
    main()
