"""``semilearn predict``: labels image files, folders and npz arrays with a trained run."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import external_plugins, installed, train_in_process

pytestmark = [pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="semilearn-checkpoint is not installed"),
              pytest.mark.together]  # the session with every plugin runs them

# Long enough for an accuracy far from chance (about 65% on the digits' test split), a few seconds.
TRAINING = ("num_train_iter=120", "num_eval_iter=60", "lr=0.1", "ema_m=0.9")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A short real run, its digits test split written as an npz, and a predictor of its last checkpoint."""
    import semilearn
    from semilearn.inference import saved_config
    from semilearn.plugins import PluginManager
    from semilearn.rundir import read_checkpoint, run_checkpoint

    root = tmp_path_factory.mktemp("predict")
    others = [name for name in external_plugins() if name != "checkpoint"]
    result = train_in_process(root, *TRAINING, blocked=others)
    manager = PluginManager().load(blocked=others)
    state = read_checkpoint(run_checkpoint(result.run_dir, "last"))
    config = saved_config(state, manager)
    data = manager.registry("dataset").get(config.dataset)(config, torch.device("cpu"))
    images, targets = data.test_samples.numpy(), data.test_targets.numpy()
    np.savez(root / "test.npz", images=images, targets=targets)
    return {"run": result.run_dir, "history": result.algorithm.eval_history, "step": state["step"],
            "images": images, "targets": targets, "npz": root / "test.npz",
            "predictor": semilearn.load(result.run_dir, checkpoint="last")}


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_predicting_the_test_split_scores_what_the_run_evaluated(cli, tmp_path: Path, trained: dict) -> None:
    result = cli("predict", str(trained["run"]), str(trained["npz"]), "--output", "out.csv", "--checkpoint", "last",
                 "--batch-size", "100")
    assert result.code == 0, result.text
    rows = _rows(tmp_path / "out.csv")
    assert list(rows[0]) == ["input", "class", "prob", "index"]
    assert [row["input"] for row in rows[:2]] == [f"{trained['npz']}[0]", f"{trained['npz']}[1]"]
    assert len(rows) == len(trained["targets"]) == 450
    predictor = trained["predictor"]
    assert predictor.weights == "ema"  # auto: the weights evaluation used
    assert [row["class"] for row in rows] == [predictor.classes[int(row["index"])] for row in rows]

    from_csv = np.mean([int(row["index"]) == target for row, target in zip(rows, trained["targets"], strict=True)])
    direct = predictor.predict(trained["images"])
    from_python = (direct.labels.numpy() == trained["targets"]).mean()
    (evaluated,) = [entry for entry in trained["history"] if entry["step"] == trained["step"]]
    assert from_csv == from_python == pytest.approx(evaluated["top1_acc"], abs=1e-9)
    assert 0.3 < from_csv < 1.0  # far from chance: the comparison means something
    assert [float(row["prob"]) for row in rows] == pytest.approx(direct.probs.max(dim=-1).values.tolist(), rel=1e-5)
    assert f"450 input(s) labelled -> out.csv ({trained['run'] / 'checkpoints' / 'last.pt'}, step 120, ema weights)" \
        in result.err


def test_a_folder_of_images_of_several_sizes_gives_the_classes_of_the_same_arrays(cli, tmp_path: Path,
                                                                                  trained: dict) -> None:
    image = pytest.importorskip("PIL.Image")
    originals = trained["images"][:12, 0]  # grey [12, 8, 8]
    arrays, files = [], []
    for index, digit in enumerate(originals):
        scale = 1 + index % 3  # 8x8, 16x16 (resized back) and 24x24
        array = np.kron(digit, np.ones((scale, scale), dtype=np.uint8))
        path = tmp_path / "new" / ("deeper" if index % 2 else "") / f"{index:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.fromarray(array).save(path)
        arrays.append(array)
        files.append(path)
    (tmp_path / "new" / "notes.txt").write_text("not an image")
    result = cli("predict", str(trained["run"]), "new", "--output", "out.csv", "--checkpoint", "last",
                 "--batch-size", "5")
    assert result.code == 0, result.text
    rows = _rows(tmp_path / "out.csv")
    order = sorted(range(len(files)), key=lambda i: files[i])
    assert [row["input"] for row in rows] == [str(files[i].relative_to(tmp_path)) for i in order]
    predictor = trained["predictor"]
    expected = [predictor.predict(arrays[i]).names[0] for i in order]
    assert [row["class"] for row in rows] == expected
    # the same digits at their own size agree with the 8x8 originals for most images
    same = np.mean([row["class"] == name for row, name in
                    zip(rows, [predictor.predict(originals[i]).names[0] for i in order], strict=True)])
    assert same >= 0.75

    from semilearn.inference.inputs import read_inputs
    from semilearn.inference.predict import predict_paths

    names, images = read_inputs([tmp_path / "new"], channels=1)
    assert [Path(name) for name in names] == sorted(files)
    assert [tuple(item.shape) for item in images] == [(1, *arrays[i].shape) for i in order]
    names, prediction = predict_paths(predictor, [tmp_path / "new"], batch_size=4)
    assert prediction.names == expected


def test_image_files_take_the_network_s_channels(cli, tmp_path: Path, trained: dict) -> None:
    image = pytest.importorskip("PIL.Image")
    digit = trained["images"][0, 0]
    image.fromarray(np.stack([digit] * 3, axis=-1)).save(tmp_path / "colour.png")  # RGB for a grey network
    image.fromarray(digit).convert("RGBA").save(tmp_path / "alpha.png")
    result = cli("predict", str(trained["run"]), "colour.png", "alpha.png", str(trained["npz"]), "-o", "out.csv",
                 "--checkpoint", "last")
    assert result.code == 0, result.text
    rows = _rows(tmp_path / "out.csv")
    assert len(rows) == 2 + 450
    expected = trained["predictor"].predict(digit).names[0]
    assert rows[0]["class"] == rows[1]["class"] == rows[2]["class"] == expected


def test_jsonl_with_the_top_3(cli, tmp_path: Path, trained: dict) -> None:
    result = cli("predict", str(trained["run"]), str(trained["npz"]), "--output", "out.jsonl", "--top-k", "3",
                 "--checkpoint", "last")
    assert result.code == 0, result.text
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 450
    probs = trained["predictor"].predict(trained["images"]).probs
    for number, row in enumerate(rows[:50]):
        assert set(row) == {"input", "class", "prob", "index", "top_k"}
        assert row["input"] == f"{trained['npz']}[{number}]"
        assert [entry["index"] for entry in row["top_k"]] == probs[number].topk(3).indices.tolist()
        assert row["top_k"][0] == {"class": row["class"], "prob": row["prob"], "index": row["index"]}
        ranked = [entry["prob"] for entry in row["top_k"]]
        assert ranked == sorted(ranked, reverse=True)
        assert ranked == pytest.approx(probs[number].topk(3).values.tolist(), rel=1e-5, abs=1e-12)


def test_csv_top_k_columns_and_stdout(cli, tmp_path: Path, trained: dict) -> None:
    assert cli("predict", str(trained["run"]), str(trained["npz"]), "-o", "out.csv", "--top-k", "2").code == 0
    assert list(_rows(tmp_path / "out.csv")[0]) == ["input", "class", "prob", "index", "top2_class", "top2_prob",
                                                   "top2_index"]
    result = cli("predict", str(trained["run"]), str(trained["npz"]), "-o", "-", "--top-k", "50")
    assert result.code == 0, result.text
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert len(rows) == 450 and len(rows[0]["top_k"]) == 10  # at most the number of classes


def test_the_python_api_reads_an_npz_as_the_command_does(trained: dict) -> None:
    from semilearn.inference.inputs import read_inputs

    names, images = read_inputs([trained["npz"]], channels=1)
    assert names[3] == f"{trained['npz']}[3]"
    assert torch.equal(torch.stack(images), torch.from_numpy(trained["images"]))


def test_weights_choice_matches_the_predictor() -> None:
    from semilearn.inference.predict import WEIGHTS as offered
    from semilearn.inference.predictor import WEIGHTS

    assert offered == WEIGHTS


@pytest.mark.parametrize(("make", "args", "expected"), [
    pytest.param(lambda root: np.savez(root / "rgb.npz", images=np.zeros((2, 8, 8, 3), np.uint8)), ["rgb.npz"],
                 "error: rgb.npz: 'images' has 3 channel(s) ([2, 8, 8, 3]); the network takes 1", id="channels"),
    pytest.param(lambda root: (root / "empty" / "sub").mkdir(parents=True), ["empty"],
                 "error: empty: no image files in this folder or below it (.png, ", id="empty-folder"),
    pytest.param(lambda root: None, ["missing.png"], "error: missing.png: no such file or folder", id="missing"),
    pytest.param(lambda root: np.savez(root / "other.npz", x=np.zeros(3)), ["other.npz"],
                 "error: other.npz has no array 'images' (it has x)", id="npz-without-images"),
    pytest.param(lambda root: np.savez(root / "float.npz", images=np.zeros((2, 8, 8))), ["float.npz"],
                 "error: float.npz: 'images' must be uint8 (0..255), got float64", id="not-uint8"),
    pytest.param(lambda root: (root / "notes.txt").write_text("x"), ["notes.txt"],
                 "error: notes.txt: not an image file (.png, ", id="unknown-input"),
    pytest.param(lambda root: (root / "bad.png").write_bytes(b"not a png"), ["bad.png"],
                 "error: cannot decode image bad.png (", id="broken-image"),
    pytest.param(lambda root: None, ["test.npz", "--output", "out.txt"],
                 "error: --output out.txt: the format follows the extension, .csv or .jsonl", id="output-extension"),
    pytest.param(lambda root: None, ["test.npz", "--output", "nowhere/out.csv"],
                 "error: --output nowhere/out.csv: the folder nowhere does not exist", id="output-folder"),
    pytest.param(lambda root: None, ["test.npz", "--device", "tpu9"],
                 "error: --device 'tpu9' is not a device", id="device"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(cli, tmp_path: Path, trained: dict, make, args: list[str],
                                                    expected: str) -> None:
    np.savez(tmp_path / "test.npz", images=trained["images"][:3])
    make(tmp_path)
    if "--output" not in args:  # a good input first: nothing is written when a later one fails
        args = ["test.npz", *args, "--output", "out.csv"]
    result = cli("predict", str(trained["run"]), *args)
    assert result.code == 2, result.text
    assert result.err.startswith(expected), result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(("out.", ".out."))]


def test_a_failure_keeps_the_previous_output_as_it_was(cli, tmp_path: Path, trained: dict) -> None:
    (tmp_path / "out.csv").write_text("earlier\n")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    np.savez(tmp_path / "test.npz", images=trained["images"][:3])
    result = cli("predict", str(trained["run"]), "test.npz", "bad.png", "-o", "out.csv")
    assert result.code == 2
    assert (tmp_path / "out.csv").read_text() == "earlier\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad.png", "out.csv", "test.npz"]


def test_cuda_when_there_is_none_says_so(cli, tmp_path: Path, trained: dict) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = cli("predict", str(trained["run"]), str(trained["npz"]), "-o", "out.csv", "--device", "cuda")
    assert result.code == 2
    assert result.err.startswith("error: --device cuda: ") and result.err.strip().endswith("use --device cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_classes_of_the_cpu(cli, tmp_path: Path, trained: dict) -> None:
    for device in ("cpu", "cuda"):
        assert cli("predict", str(trained["run"]), str(trained["npz"]), "-o", f"{device}.csv", "--device", device,
                   "--checkpoint", "last").code == 0
    cpu, cuda = _rows(tmp_path / "cpu.csv"), _rows(tmp_path / "cuda.csv")
    assert np.mean([a["class"] == b["class"] for a, b in zip(cpu, cuda, strict=True)]) >= 0.99


def test_image_files_without_pillow_say_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from semilearn.errors import InputError
    from semilearn.inference.inputs import read_inputs

    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    np.savez(tmp_path / "ok.npz", images=np.zeros((2, 8, 8), np.uint8))
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    with pytest.raises(InputError, match="^reading image files needs Pillow: pip install pillow$"):
        read_inputs([tmp_path / "ok.npz", tmp_path / "a.png"], channels=1)
    assert read_inputs([tmp_path / "ok.npz"], channels=1)[0] == [f"{tmp_path / 'ok.npz'}[0]", f"{tmp_path / 'ok.npz'}[1]"]
