"""A usb_cv configuration runs as USB wrote it: a pretrained tiny ViT fetched over HTTP,
fine-tuned with FixMatch on TissueMNIST stand-in data, finishing and resuming exactly.

The file is USB's ``config/usb_cv/fixmatch/fixmatch_tissuemnist_80_0.yaml`` (rebuilt from the
table of facts in tests/test_usb_cv_config.py), with only the run made short and small
and two places pointed at this test: ``data_dir`` at a stand-in ``tissuemnist.npz`` in
MedMNIST's layout (80 labelled images, as the file asks), and ``pretrain_path`` at a
loopback server holding a ``vit_tiny_patch2_32`` weight file in the layout of USB's
release (its ``model`` entry, an ImageNet-1k head), under the release's file name.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import yaml
from test_download import Mirror, mirror  # noqa: F401 - the loopback server fixture
from test_usb_cv_config import usb_cv_file

from conftest import installed
from datafiles import write_tissuemnist
from semilearn.data import InputSpec
from semilearn.nets.vit import vit_tiny_patch2_32

WEIGHTS = "vit_tiny_patch2_32_mlp_im_1k_32.pth"
SHORT = {"num_train_iter": 6, "epoch": 1, "num_warmup_iter": 2, "num_eval_iter": 3, "num_log_iter": 1,
         "batch_size": 4, "eval_batch_size": 16}


def _released_weights() -> bytes:
    """A vit_tiny_patch2_32 weight file as USB releases them: {'model': state dict}, 1000 classes."""
    torch.manual_seed(7)
    buffer = io.BytesIO()
    torch.save({"model": vit_tiny_patch2_32(1000, InputSpec("image", (3, 32, 32))).state_dict()}, buffer)
    return buffer.getvalue()


@pytest.mark.together
@pytest.mark.heavy
def test_a_usb_cv_fixmatch_file_with_a_pretrained_tiny_vit_finishes_and_resumes_exactly(
        cli, mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    if not installed("semilearn-checkpoint"):
        pytest.skip("resuming needs semilearn-checkpoint")
    monkeypatch.setenv("SEMILEARN_CACHE", str(tmp_path / "cache"))
    write_tissuemnist(tmp_path / "data", per_class=12, test_per_class=2)
    mirror.files[WEIGHTS] = _released_weights()
    raw = usb_cv_file("fixmatch", "tissuemnist")
    assert raw["net"] == "vit_tiny_patch2_32" and raw["pretrain_path"].endswith("/" + WEIGHTS)
    raw.update(SHORT, data_dir=str(tmp_path / "data"), pretrain_path=f"{mirror.url}/{WEIGHTS}")
    quiet = ["-p", "no:recorder", "-p", "no:recorder_late", "-p", "no:wandb", "-p", "no:aim"]

    def run(name: str, *extra: str):
        file = tmp_path / f"{name}.yaml"
        file.write_text(yaml.safe_dump({**raw, "save_dir": str(tmp_path / name)}, sort_keys=False))
        return cli("run", str(file), *quiet, *extra)

    straight = run("straight")
    assert straight.code == 0, straight.err
    assert "tissuemnist: 80 labelled" in straight.out and "net: vit_tiny_patch2_32" in straight.out
    assert "pretrained: loaded" in straight.text and "completed at step 6/6" in straight.out
    assert mirror.requests == [(WEIGHTS, None)]  # fetched once into the cache ...

    first = run("resumed", "--set", "stop_step=3")
    assert first.code == 0 and "interrupted at step 3/6" in first.out
    second = run("resumed")  # the file's resume: True
    assert second.code == 0, second.err
    assert "(step 3)" in second.out and "completed at step 6/6" in second.out
    assert mirror.requests == [(WEIGHTS, None)]  # ... and read from there by every later run

    name = "fixmatch_tissuemnist_80_0"
    ours = torch.load(tmp_path / "straight" / name / "checkpoints" / "last.pt", weights_only=True)
    theirs = torch.load(tmp_path / "resumed" / name / "checkpoints" / "last.pt", weights_only=True)
    assert ours["step"] == theirs["step"] == 6
    assert ours["model"].keys() == theirs["model"].keys()
    for key in ours["model"]:
        assert torch.equal(ours["model"][key], theirs["model"][key]), key
    assert ours["eval_history"] == theirs["eval_history"]
    assert len(ours["eval_history"]) == 2
    assert ours["model_card"]["net"] == "vit_tiny_patch2_32" and ours["model_card"]["input"] == {
        "modality": "image", "shape": [3, 32, 32], "dtype": "uint8"}
