"""``semilearn export``: a trained model as one file that needs torch alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from parity.compare import FLOAT32_FORWARD, forward_difference

from conftest import installed, train_in_process
from semilearn.data import InputSpec
from semilearn.data.digits import digits_arrays
from semilearn.inference import ModelCard, Predictor, load
from semilearn.inference.export import config_sha256, export_predictor

# On the CPU the exported model computes what the Predictor computes, in the same order: in one
# process its logits are the Predictor's to the last bit. Another process (its own settings) and
# ONNX Runtime (its own kernels) compute them at float32's rounding: FLOAT32_FORWARD.

# torch 2.13 marks TorchScript deprecated; the file still loads (what is tested here)
# `together`: the session with every plugin (and the onnx extra) runs them all
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning"),
              pytest.mark.together]

needs_checkpoints = pytest.mark.skipif(not installed("semilearn-checkpoint"),
                                       reason="semilearn-checkpoint writes the checkpoints exported here")

CARD_FIELDS = {"net", "num_classes", "input_shape", "input_dtype", "mean", "std", "classes", "dataset", "algorithm",
               "format", "weights", "step", "monitor", "mode", "evaluation", "final_evaluation", "best_evaluation",
               "versions", "config_sha256", "source_checkpoint", "input", "output"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short real run with its checkpoints (best.pt, last.pt)."""
    if not installed("semilearn-checkpoint"):
        pytest.skip("semilearn-checkpoint writes the checkpoints exported here")
    root = tmp_path_factory.mktemp("export-run")
    result = train_in_process(root, blocked=["wandb", "aim"])
    assert (result.run_dir / "checkpoints" / "best.pt").is_file()
    return result.run_dir


@pytest.fixture(scope="module")
def test_images() -> torch.Tensor:
    return torch.from_numpy(digits_arrays()[2])


def _resized(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Other-size uint8 images (nearest neighbour, so the model's own resizing is what is tested)."""
    return torch.nn.functional.interpolate(images.float(), size=(height, width), mode="nearest").to(torch.uint8)


# A Python that has torch and cannot import semilearn: -E leaves out PYTHONPATH (the
# working directory is the test's folder); the finder refuses semilearn even where it is
# installed in the environment (editable or not), and nothing of it may be imported.
_WITHOUT_SEMILEARN = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class NoSemilearn(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "semilearn" or name.startswith("semilearn."):
                raise ImportError("semilearn is blocked in this process")
            return None

    sys.meta_path.insert(0, NoSemilearn())
    try:
        import semilearn  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("semilearn could be imported")

    import torch

    model, images, output = sys.argv[1:4]
    module = torch.jit.load(model)
    with torch.no_grad():
        logits = module(torch.load(images))
    torch.save(logits, output)
    assert not [name for name in sys.modules if name.split(".")[0] == "semilearn"]
    """
)


def _logits_in_plain_torch(model: Path, images: torch.Tensor, folder: Path) -> torch.Tensor:
    torch.save(images, folder / "images.pt")
    completed = subprocess.run(
        [sys.executable, "-E", "-c", _WITHOUT_SEMILEARN, str(model), str(folder / "images.pt"),
         str(folder / "logits.pt")],
        cwd=folder, capture_output=True, text=True, timeout=300,
        env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    )
    assert completed.returncode == 0, completed.stderr
    return torch.load(folder / "logits.pt")


def _only_entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


@needs_checkpoints
def test_the_torchscript_file_gives_the_predictors_logits_in_a_python_without_semilearn(
        cli, tmp_path: Path, run_dir: Path, test_images: torch.Tensor) -> None:
    result = cli("export", str(run_dir), "--output", "m.pt")
    assert result.code == 0, result.err
    assert "exported torchscript model: m.pt" in result.out and "model card: m.pt.json" in result.out
    assert _only_entries(tmp_path) == ["m.pt", "m.pt.json"]

    expected = load(run_dir).logits(test_images)
    logits = _logits_in_plain_torch(tmp_path / "m.pt", test_images, tmp_path)
    assert logits.dtype == torch.float32 and logits.shape == (len(test_images), 10)
    assert forward_difference(logits, expected) <= FLOAT32_FORWARD  # another process
    assert torch.equal(logits.argmax(dim=1), expected.argmax(dim=1))


@needs_checkpoints
def test_images_of_another_size_are_resized_inside_as_the_predictor_resizes_them(
        cli, tmp_path: Path, run_dir: Path, test_images: torch.Tensor) -> None:
    assert cli("export", str(run_dir), "--output", "m.ts", "--checkpoint", "last").code == 0
    module = torch.jit.load(str(tmp_path / "m.ts"))
    predictor = load(run_dir, checkpoint="last")
    for height, width in ((13, 11), (16, 16), (5, 7)):
        images = _resized(test_images[:64], height, width)
        with torch.no_grad():
            logits = module(images)
        assert torch.equal(logits, predictor.logits(images))
        # what the Predictor resizes to, given at the network's size, is what the file resized to
        assert torch.equal(logits, module(predictor.prepare(images)))
    with torch.no_grad():  # the batch size is free, one image too
        assert torch.equal(module(test_images[:1]), predictor.logits(test_images[:1]))
    with pytest.raises(Exception, match="expected uint8 images"):
        module(test_images.float())
    with pytest.raises(Exception, match=r"expected uint8 images \[N, 1, H, W\]"):
        module(test_images.expand(-1, 3, -1, -1).contiguous())


@needs_checkpoints
def test_the_model_card_says_what_the_model_takes_and_where_it_comes_from(
        cli, tmp_path: Path, run_dir: Path) -> None:
    assert cli("export", str(run_dir), "--output", "m.pt", "--weights", "model").code == 0
    card = json.loads((tmp_path / "m.pt.json").read_text())
    assert CARD_FIELDS <= set(card)
    state = torch.load(run_dir / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert card["format"] == "torchscript" and card["weights"] == "model"
    assert card["input_shape"] == [1, 8, 8] and card["input_dtype"] == "uint8" and card["num_classes"] == 10
    assert card["classes"] == [str(digit) for digit in range(10)]
    assert card["mean"] == [0.3055] and card["std"] == [0.3762]
    assert card["dataset"] == "digits" and card["algorithm"] == "flexmatch" and card["net"] == "small_cnn"
    assert card["step"] == state["step"]
    assert card["evaluation"]["step"] == state["step"]
    assert card["final_evaluation"] == state["eval_history"][-1]
    assert card["monitor"] == "top1_acc" and card["mode"] == "max"
    assert card["best_evaluation"]["top1_acc"] == max(entry["top1_acc"] for entry in state["eval_history"])
    assert card["config_sha256"] == config_sha256(state["config"]) and len(card["config_sha256"]) == 64
    assert set(card["versions"]) == {"semilearn-core", "torch", "python"}
    assert card["versions"]["torch"] == torch.__version__
    assert Path(card["source_checkpoint"]) == (run_dir / "checkpoints" / "best.pt").resolve()


def test_the_configuration_hash_does_not_depend_on_key_order() -> None:
    assert config_sha256({"a": 1, "b": {"c": [1, 2], "d": "x"}}) == config_sha256({"b": {"d": "x", "c": [1, 2]}, "a": 1})
    assert config_sha256({"a": 1}) != config_sha256({"a": 2})


def test_a_network_at_another_size_and_three_channels(tmp_path: Path) -> None:
    """Any registered network is traced: a Wide ResNet on 32x32 RGB, without a run."""
    from semilearn.nets.wrn import wrn_28_2

    torch.manual_seed(0)
    card = ModelCard("wrn_28_2", 5, (3, 32, 32), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3), tuple("abcde"), "synthetic",
                     "fixmatch")
    predictor = Predictor(wrn_28_2(5, InputSpec("image", (3, 32, 32))), card)
    model, card_path = export_predictor(predictor, tmp_path / "wrn.pt")
    module = torch.jit.load(str(model))
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(module(images), predictor.logits(images))
        bigger = _resized(images, 40, 36)
        assert torch.equal(module(bigger), predictor.logits(bigger))
    written = json.loads(card_path.read_text())
    assert written["classes"] == list("abcde") and written["config_sha256"] is None


# --------------------------------------------------------------------------------------
# What is wrong is one line, exit code 2, and nothing is written.


def test_a_file_that_is_not_a_checkpoint(cli, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    result = cli("export", "notes.txt", "--output", "m.pt")
    assert result.code == 2
    assert result.err.strip().splitlines() == [result.err.strip()] and "not a PyTorch checkpoint" in result.err
    assert _only_entries(tmp_path) == ["notes.txt"]


def test_a_run_directory_without_checkpoints(cli, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    result = cli("export", "run", "--output", "m.pt")
    assert result.code == 2
    assert result.err.count("\n") == 1 and result.err.startswith("error: ") and "holds no checkpoint" in result.err
    assert _only_entries(tmp_path) == ["run"]


@pytest.mark.parametrize(("args", "message"), [
    (("--output", "m.pt", "--format", "tflite"), "--format is one of torchscript, onnx, not 'tflite'"),
    (("--output", "m.bin"), "cannot tell the format from the extension"),
    (("--output", "missing/m.pt"), "the folder missing does not exist"),
    (("--output", "."), "is a directory"),
])
def test_a_wrong_output_is_said_before_anything_is_read(cli, tmp_path: Path, args: tuple[str, ...],
                                                        message: str) -> None:
    (tmp_path / "notes.txt").write_text("not read: the output is checked first\n")
    result = cli("export", "notes.txt", *args)
    assert result.code == 2
    assert result.err.count("\n") == 1 and result.err.startswith("error: ") and message in result.err
    assert _only_entries(tmp_path) == ["notes.txt"]


def test_onnx_without_its_packages_names_the_extra(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in ("onnx", "onnxscript") else real(name, *args))
    (tmp_path / "notes.txt").write_text("x\n")
    result = cli("export", "notes.txt", "--output", "m.onnx")
    assert result.code == 2
    assert result.err == "error: --format onnx needs onnx and onnxscript: pip install 'semilearn-core[onnx]'\n"
    assert _only_entries(tmp_path) == ["notes.txt"]


def test_a_network_that_cannot_be_exported_leaves_nothing(tmp_path: Path) -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            raise RuntimeError("this network cannot run\nsecond line")

    card = ModelCard("broken", 2, (1, 8, 8), (0.5,), (0.5,), ("a", "b"), "digits", "fixmatch")
    from semilearn.errors import InputError

    with pytest.raises(InputError, match=r"^cannot export network 'broken' as torchscript: this network cannot run$"):
        export_predictor(Predictor(Broken(), card), tmp_path / "m.pt")
    assert _only_entries(tmp_path) == []


# --------------------------------------------------------------------------------------
# ONNX, where onnx, onnxscript and onnxruntime are installed (semilearn-core[onnx] plus onnxruntime).


@needs_checkpoints
def test_the_onnx_file_gives_the_predictors_logits(cli, tmp_path: Path, run_dir: Path,
                                                   test_images: torch.Tensor) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    onnxruntime = pytest.importorskip("onnxruntime")

    result = cli("export", str(run_dir), "--output", "m.onnx")
    assert result.code == 0, result.err
    assert _only_entries(tmp_path) == ["m.onnx", "m.onnx.json"]  # one file: the weights are inside
    assert json.loads((tmp_path / "m.onnx.json").read_text())["format"] == "onnx"
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    predictor = load(run_dir)
    for images, tolerance in ((test_images, FLOAT32_FORWARD), (test_images[:1], FLOAT32_FORWARD),
                              # ONNX Runtime's antialiased resize agrees with torch's to float rounding; a
                              # value at a rounding tie (x.5) can then land on the other grey level (measured:
                              # 9.6e-4 of the logits' scale)
                              (_resized(test_images, 13, 11), 1e-2), (_resized(test_images, 16, 16), 1e-2)):
        (logits,) = session.run(["logits"], {"images": images.numpy()})
        assert forward_difference(torch.from_numpy(logits), predictor.logits(images)) <= tolerance
