"""Pretrained weights (use_pretrain, pretrain_path): local files and URLs served on loopback.

The loopback server is tests/test_download.py's (it honours ranges, cuts transfers short
on demand and records every request). Weight files are written here from small networks;
one is USB's own (tests/parity/fixtures/vit/vit.pt, written with USB's load_checkpoint,
see tests/parity/README.md), so the loading rules are checked against USB's result.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
from test_download import Mirror, mirror  # noqa: F401 - the loopback server fixture
from test_vit import FIXTURES

from conftest import FAST
from semilearn.data import InputSpec
from semilearn.errors import CheckpointError
from semilearn.nets.cnn import small_cnn
from semilearn.nets.pretrained import UnsafeWeightFile, load_pretrained, weight_file
from semilearn.nets.vit import VisionTransformer


def _vit(img_size: int, num_classes: int, seed: int, **small: Any) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(num_classes, img_size=img_size, patch_size=small.get("patch_size", 4),
                             embed_dim=small.get("embed_dim", 8), depth=small.get("depth", 1),
                             num_heads=small.get("num_heads", 2))


def _weights(model: torch.nn.Module, nest: bool = True) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "epoch": 3} if nest else model.state_dict(), buffer)
    return buffer.getvalue()


def _closed_port_url(name: str) -> str:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/weights/{name}"


def test_usbs_loading_rules_give_usbs_state_dict(tmp_path: Path) -> None:
    usb = torch.load(FIXTURES / "vit.pt", weights_only=True)["loading"]
    # the same network USB loaded into: built from the same seed (USB's class draws as ours)
    target = _vit(usb["target_img_size"], 3, seed=2, **usb["small"])
    buffer = io.BytesIO()
    torch.save(usb["file"], buffer)
    file = tmp_path / "usb.pth"
    file.write_bytes(buffer.getvalue())
    summary = load_pretrained(target, str(file), "tiny_vit")
    state = target.state_dict()
    assert list(state) == list(usb["loaded"])
    for key, value in usb["loaded"].items():
        torch.testing.assert_close(state[key], value, rtol=1e-6, atol=1e-7, msg=key)
    assert "missing_keys=['head.weight', 'head.bias']" in usb["usb_printed"]
    assert "pos_embed resized from 17 to 37 tokens" in summary
    assert "initialised, not loaded: head.weight, head.bias" in summary
    assert "left out of the file: head.weight, head.bias" in summary


def test_a_url_is_fetched_into_the_cache_and_then_used_offline(mirror: Mirror, tmp_path: Path,  # noqa: F811
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    source = _vit(16, 5, seed=0)
    mirror.files["vit_tiny.pth"] = _weights(source)
    monkeypatch.setenv("SEMILEARN_CACHE", str(tmp_path / "cache"))
    target = _vit(16, 5, seed=1)
    lines: list[str] = []
    summary = load_pretrained(target, f"{mirror.url}/vit_tiny.pth", "tiny", report=lines.append)
    cached = tmp_path / "cache" / "weights" / "vit_tiny.pth"
    assert cached.read_bytes() == mirror.files["vit_tiny.pth"]
    assert summary.startswith(f"pretrained: loaded 18 of network 'tiny''s 20 tensors from {cached} (from {mirror.url}")
    images = torch.randn(2, 3, 16, 16)
    source.eval()
    target.eval()
    with torch.no_grad():
        expected, got = source(images), target(images)
    torch.testing.assert_close(got["feat"], expected["feat"], rtol=0, atol=0)
    target.head.load_state_dict(source.head.state_dict())  # the classifier is never loaded (USB's rule)
    with torch.no_grad():
        torch.testing.assert_close(target(images)["logits"], expected["logits"], rtol=0, atol=0)

    # the host gone: the cached file is used without any request
    again = _vit(16, 5, seed=2)
    requests = len(mirror.requests)
    load_pretrained(again, _closed_port_url("vit_tiny.pth"), "tiny")
    assert torch.equal(again.pos_embed, source.pos_embed) and len(mirror.requests) == requests


def test_a_cut_transfer_resumes_with_a_range_request(mirror: Mirror, tmp_path: Path) -> None:  # noqa: F811
    payload = _weights(_vit(16, 5, seed=0))
    mirror.files["cut.pth"] = payload
    mirror.cut_after = [len(payload) // 3]
    path, content = weight_file(f"{mirror.url}/cut.pth", cache=tmp_path)
    assert path.read_bytes() == payload and "model" in content
    assert mirror.requests == [("cut.pth", None), ("cut.pth", f"bytes={len(payload) // 3}-")]


def test_a_transfer_out_of_retries_keeps_its_part_and_the_next_try_resumes(mirror: Mirror,  # noqa: F811
                                                                           tmp_path: Path) -> None:
    payload = _weights(_vit(16, 5, seed=0))
    mirror.files["cut.pth"] = payload
    mirror.cut_after = [100, 100, 100]
    with pytest.raises(CheckpointError) as failure:
        weight_file(f"{mirror.url}/cut.pth", cache=tmp_path)
    message = str(failure.value)
    assert "\n" not in message and "broke off at 300 of" in message and "run again to resume" in message
    assert (tmp_path / "cut.pth.part").read_bytes() == payload[:300]
    path, _ = weight_file(f"{mirror.url}/cut.pth", cache=tmp_path)
    assert mirror.requests[-1] == ("cut.pth", "bytes=300-") and path.read_bytes() == payload


def test_a_corrupted_or_short_download_is_refused_and_deleted(mirror: Mirror, tmp_path: Path) -> None:  # noqa: F811
    payload = bytearray(_weights(_vit(16, 5, seed=0)))
    payload[len(payload) // 2: len(payload) // 2 + 64] = bytes(64)
    mirror.files["bad.pth"] = bytes(payload)
    mirror.files["short.pth"] = _weights(_vit(16, 5, seed=0))[:-200]  # complete as served, but not whole
    for name in ("bad.pth", "short.pth"):
        url = f"{mirror.url}/{name}"
        with pytest.raises(CheckpointError) as failure:
            weight_file(url, cache=tmp_path)
        message = str(failure.value)
        assert "\n" not in message and url in message and "not a complete PyTorch weight file" in message
        assert f"put the file at {tmp_path / name} by hand" in message
    assert not list(tmp_path.iterdir())  # nothing left to be mistaken for a good file


def test_a_bad_cached_file_is_set_aside_and_fetched_again(mirror: Mirror, tmp_path: Path) -> None:  # noqa: F811
    payload = _weights(_vit(16, 5, seed=0))
    mirror.files["vit.pth"] = payload
    (tmp_path / "vit.pth").write_bytes(payload[:1000])
    lines: list[str] = []
    path, _ = weight_file(f"{mirror.url}/vit.pth", cache=tmp_path, report=lines.append)
    assert path.read_bytes() == payload and (tmp_path / "vit.pth.bad").read_bytes() == payload[:1000]
    assert any("moved it to vit.pth.bad and downloading it again" in line for line in lines)


def test_an_unreachable_host_says_where_to_put_the_file(tmp_path: Path) -> None:
    url = _closed_port_url("vit_small_patch2_32_mlp_im_1k_32.pth")
    with pytest.raises(CheckpointError) as failure:
        weight_file(url, cache=tmp_path)
    message = str(failure.value)
    assert "\n" not in message and f"cannot reach {url}" in message
    assert f"put it at {tmp_path / 'vit_small_patch2_32_mlp_im_1k_32.pth'}" in message


def test_a_file_with_other_python_objects_is_kept_but_refused(mirror: Mirror, tmp_path: Path) -> None:  # noqa: F811
    import argparse

    import numpy as np

    buffer = io.BytesIO()
    torch.save({"model": _vit(16, 5, seed=0).state_dict(), "args": argparse.Namespace(lr=0.1)}, buffer)
    mirror.files["with_args.pth"] = buffer.getvalue()  # training arguments: read
    path, content = weight_file(f"{mirror.url}/with_args.pth", cache=tmp_path)
    assert content["args"].lr == 0.1
    buffer = io.BytesIO()
    torch.save({"model": _vit(16, 5, seed=0).state_dict(), "best": np.float64(0.5)}, buffer)
    mirror.files["numpy.pth"] = buffer.getvalue()
    for _ in range(2):  # downloaded, then refused from the cache without a new request
        with pytest.raises(UnsafeWeightFile, match=r"numpy.pth \(from .*\) holds Python objects beyond tensors "
                                                   r"\(numpy\S*scalar\)"):
            weight_file(f"{mirror.url}/numpy.pth", cache=tmp_path)
    assert (tmp_path / "numpy.pth").read_bytes() == buffer.getvalue()
    assert [name for name, _ in mirror.requests].count("numpy.pth") == 1


def test_a_server_error_also_says_where_to_put_the_file(mirror: Mirror, tmp_path: Path) -> None:  # noqa: F811
    mirror.status = 404  # as USB's files that name github.com/microsoft/Semi-supervised-learning/<file>
    with pytest.raises(CheckpointError) as failure:
        weight_file(f"{mirror.url}/vit.pth", cache=tmp_path)
    message = str(failure.value)
    assert "the server answered 404" in message and f"put the file at {tmp_path / 'vit.pth'} by hand" in message


def test_local_files_flat_state_dicts_and_wrong_files(tmp_path: Path) -> None:
    source = small_cnn(10, InputSpec("image", (1, 8, 8)))
    flat = tmp_path / "flat.pt"
    flat.write_bytes(_weights(source, nest=False))
    target = small_cnn(4, InputSpec("image", (1, 8, 8)))
    summary = load_pretrained(target, str(flat), "small_cnn")
    assert "left out of the file: classifier.weight, classifier.bias" in summary
    assert all(torch.equal(value, source.state_dict()[key]) for key, value in target.state_dict().items()
               if not key.startswith("classifier"))

    with pytest.raises(CheckpointError, match="is not a file"):
        load_pretrained(target, str(tmp_path / "missing.pt"), "small_cnn")
    vit = tmp_path / "vit.pt"
    vit.write_bytes(_weights(_vit(16, 5, seed=0)))
    with pytest.raises(CheckpointError, match="none of its 20 tensors fits network 'small_cnn'"):
        load_pretrained(target, str(vit), "small_cnn")
    with pytest.raises(CheckpointError, match=r"'cls_token' is \(1, 1, 8\), network 'other' has \(1, 1, 16\)"):
        load_pretrained(_vit(16, 5, seed=0, embed_dim=16), str(vit), "other")
    text = tmp_path / "text.pt"
    text.write_text("not weights")
    with pytest.raises(CheckpointError, match="is not a complete PyTorch weight file"):
        load_pretrained(target, str(text), "small_cnn")


def test_a_run_loads_the_weights_before_training(cli, mirror: Mirror, tmp_path: Path,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMILEARN_CACHE", str(tmp_path / "cache"))
    mirror.files["cnn.pth"] = _weights(small_cnn(10, InputSpec("image", (1, 8, 8))))
    result = cli("run", *FAST, "--set", "num_train_iter=2", "--set", "num_eval_iter=2", "--set", "use_pretrain=true",
                 "--set", f"pretrain_path={mirror.url}/cnn.pth", "--set", "save_dir=runs",
                 "-p", "no:checkpoint")
    assert result.code == 0, result.err
    assert "pretrained: loaded" in result.text and "network 'small_cnn'" in result.text
    assert mirror.requests == [("cnn.pth", None)] and (tmp_path / "cache" / "weights" / "cnn.pth").is_file()
