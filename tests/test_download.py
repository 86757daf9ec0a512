"""`semilearn data download`: a real HTTP server on loopback serves generated files in the real formats.

The server honours ``Range`` requests (or not, on demand), can cut a transfer short, and
records every request, so the tests see what the downloader asked for. The published
checksums are swapped for those of the generated files; everything else (URLs rewritten
to the mirror, transfer, resume, verification, unpacking) is the code users run.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from datafiles import tar_gz, write_cifar10, write_svhn
from semilearn.config import Config
from semilearn.data import download as download_module
from semilearn.data.download import SOURCES
from semilearn.plugins import PluginManager


@dataclass
class Mirror:
    """Files served by name, with faults to inject."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (file name, Range header)
    cut_after: list[int] = field(default_factory=list)  # per coming response: close after this many bytes
    honour_range: bool = True
    status: int | None = None  # answer every request with this error status


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    state = Mirror(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            name = self.path.rsplit("/", 1)[-1]
            range_header = self.headers.get("Range")
            state.requests.append((name, range_header))
            if state.status is not None:
                self.send_error(state.status)
                return
            if name not in state.files:
                self.send_error(404)
                return
            body = state.files[name]
            start = 0
            if range_header and state.honour_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            payload = body[start:]
            if state.cut_after:
                payload = payload[: state.cut_after.pop(0)]  # then the connection closes early
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/mirror"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _publish(mirror: Mirror, monkeypatch: pytest.MonkeyPatch, name: str, files: dict[str, bytes]) -> None:
    """Serve ``files`` and make them the published files of ``name`` (their checksums)."""
    mirror.files.update(files)
    source = SOURCES[name]
    remote = tuple(replace(item, md5=hashlib.md5(files[item.filename]).hexdigest()) for item in source.files)
    monkeypatch.setitem(SOURCES, name, replace(source, files=remote))


def _cifar10_archive(tmp_path: Path) -> tuple[bytes, object]:
    written = write_cifar10(tmp_path / "generated")
    return tar_gz(written.folder), written


def _download(cli, mirror: Mirror, data_dir: Path, *extra: str):
    return cli("data", "download", "cifar10", "--data-dir", str(data_dir), "--mirror", mirror.url, *extra)


def _load_cifar10(data_dir: Path):
    config = Config({"num_classes": None, "num_labels": 20, "seed": 0, "data_dir": str(data_dir)})
    return PluginManager().load().registry("dataset").get("cifar10")(config, torch.device("cpu"))


def test_download_verifies_unpacks_and_the_data_set_loads(cli, mirror: Mirror, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    archive, written = _cifar10_archive(tmp_path)
    _publish(mirror, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    result = _download(cli, mirror, tmp_path / "data")
    assert result.code == 0, result.text
    assert mirror.requests == [("cifar-10-python.tar.gz", None)]
    assert "cifar-10-python.tar.gz verified" in result.err and "unpacked cifar-10-python.tar.gz" in result.err
    assert "cifar10: ready" in result.out
    home = tmp_path / "data" / "cifar10"
    assert (home / "cifar-10-python.tar.gz").read_bytes() == archive  # kept beside the files
    assert not list(home.glob("*.part")) and not list(home.glob(".*unpacking"))
    data = _load_cifar10(tmp_path / "data")
    assert torch.equal(data.test_samples, torch.from_numpy(written.test_images))

    # a complete copy is not fetched again; --force fetches it again
    again = _download(cli, mirror, tmp_path / "data")
    assert again.code == 0 and "already complete" in again.err and len(mirror.requests) == 1
    forced = _download(cli, mirror, tmp_path / "data", "--force", "--remove-archive")
    assert forced.code == 0 and len(mirror.requests) == 2
    assert not (home / "cifar-10-python.tar.gz").exists() and (home / "cifar-10-batches-py" / "test_batch").is_file()


def test_an_interrupted_transfer_resumes_where_it_stopped(cli, mirror: Mirror, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    archive, written = _cifar10_archive(tmp_path)
    _publish(mirror, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    cut = len(archive) // 3
    mirror.cut_after = [cut]
    result = _download(cli, mirror, tmp_path / "data")
    assert result.code == 0, result.text
    assert mirror.requests == [("cifar-10-python.tar.gz", None), ("cifar-10-python.tar.gz", f"bytes={cut}-")]
    assert "broke off" in result.err and "resuming" in result.err
    assert torch.equal(_load_cifar10(tmp_path / "data").test_samples, torch.from_numpy(written.test_images))


def test_a_transfer_out_of_retries_keeps_its_part_and_the_next_run_resumes(cli, mirror: Mirror, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = _cifar10_archive(tmp_path)
    _publish(mirror, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    mirror.cut_after = [1000, 2000]
    failed = _download(cli, mirror, tmp_path / "data", "--retries", "1")
    assert failed.code == 1
    message = [line for line in failed.err.splitlines() if line.startswith("error")]
    assert len(message) == 1 and "Traceback" not in failed.text
    assert "broke off at 3000 of" in message[0]
    assert f"run `semilearn data download cifar10 --data-dir {tmp_path / 'data'}` again to resume" in message[0]
    partial = tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz.part"
    assert partial.read_bytes() == archive[:3000]

    resumed = _download(cli, mirror, tmp_path / "data")
    assert resumed.code == 0, resumed.text
    assert mirror.requests[-1] == ("cifar-10-python.tar.gz", "bytes=3000-")
    assert not partial.exists() and (tmp_path / "data" / "cifar10" / "cifar-10-batches-py" / "data_batch_5").is_file()


def test_a_server_that_ignores_ranges_makes_it_start_over(cli, mirror: Mirror, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = _cifar10_archive(tmp_path)
    _publish(mirror, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    mirror.honour_range = False
    mirror.cut_after = [5000]
    result = _download(cli, mirror, tmp_path / "data")
    assert result.code == 0, result.text
    assert "does not resume transfers" in result.err
    assert (tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz").read_bytes() == archive


def test_a_corrupted_archive_is_rejected_and_deleted(cli, mirror: Mirror, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = _cifar10_archive(tmp_path)
    _publish(mirror, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    expected = hashlib.md5(archive).hexdigest()
    corrupted = bytearray(archive)
    corrupted[len(corrupted) // 2] ^= 0xFF
    mirror.files["cifar-10-python.tar.gz"] = bytes(corrupted)
    result = _download(cli, mirror, tmp_path / "data")
    assert result.code == 1
    assert f"has MD5 {hashlib.md5(corrupted).hexdigest()}, expected {expected}" in result.err
    assert "so it was deleted" in result.err and "Traceback" not in result.text
    home = tmp_path / "data" / "cifar10"
    assert not list(home.iterdir())  # no .part, no archive, nothing unpacked


def test_an_archive_with_unsafe_paths_is_refused(cli, mirror: Mirror, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    _publish(mirror, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": buffer.getvalue()})
    result = _download(cli, mirror, tmp_path / "data")
    assert result.code == 1 and "unsafe entry '../escaped.txt'" in result.err
    assert not (tmp_path / "data" / "escaped.txt").exists()

    # the published checksum, but not an archive at all
    _publish(mirror, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": b"not a tar archive" * 100})
    result = _download(cli, mirror, tmp_path / "other")
    assert result.code == 1 and "cannot unpack" in result.err and "delete it and run" in result.err
    assert [entry.name for entry in (tmp_path / "other" / "cifar10").iterdir()] == ["cifar-10-python.tar.gz"]


@pytest.mark.parametrize(("url", "why"), [
    ("https://example.invalid/files/..", "'..' is the parent folder"),
    ("https://example.invalid/files/CON?download=1", "Windows reserves it for a device"),
    ("https://example.invalid/files/", "it is empty"),
])
def test_a_file_name_taken_from_a_url_is_a_name(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str,
                                                why: str) -> None:
    source = SOURCES["cifar10"]
    monkeypatch.setitem(SOURCES, "cifar10", replace(source, files=(download_module.RemoteFile(url, "0" * 32),)))
    result = cli("data", "download", "cifar10", "--data-dir", str(tmp_path / "data"))
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert f"error: cifar10: the file name of {url} must be one file or folder name, not " in result.err
    assert f"({why}); " in result.err
    assert not (tmp_path / "data").exists()  # refused before the data set's folder is made


@pytest.mark.parametrize(("kind", "entry", "why"), [
    ("tar", "cifar-10-batches-py/../../escaped.txt", "part '..': '..' is the parent folder"),
    ("tar", "/abs.txt", "it is an absolute path"),
    ("tar", "cifar-10-batches-py/na:me", "part 'na:me': it holds :"),
    ("zip", "2750/CON.jpg", "part 'CON.jpg': Windows reserves it for a device"),
    ("zip", "2750\\..\\..\\escaped.txt", "it holds a path separator"),
    ("zip", "2750/trailing./x.jpg", "part 'trailing.': it ends in a dot or a space"),
])
def test_an_archive_entry_is_a_path_of_names(tmp_path: Path, kind: str, entry: str, why: str) -> None:
    import io
    import tarfile
    import zipfile

    home = tmp_path / "data" / "set"
    home.mkdir(parents=True)
    if kind == "tar":
        archive = home / "set.tar.gz"
        with tarfile.open(archive, mode="w:gz") as tar:
            info = tarfile.TarInfo(entry)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"bad"))
    else:
        archive = home / "set.zip"
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("2750/ok.jpg", b"fine")
            bundle.writestr(entry, b"bad")
    with pytest.raises(download_module.DataError) as raised:
        download_module._unpack("set", archive, home, lambda message: None)
    message = str(raised.value)
    assert message.startswith(f"set: {archive} holds an unsafe entry '{entry}' (")
    assert why in message and message.endswith("it is not the official archive")
    assert [path.name for path in tmp_path.rglob("*")] == ["data", "set", archive.name]  # nothing unpacked


def test_no_network_is_explained(cli, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("data", "download", "cifar10", "--data-dir", str(tmp_path / "data"),
                 "--mirror", f"http://127.0.0.1:{port}")
    assert result.code == 1 and "Traceback" not in result.text
    line = result.err.strip().splitlines()[-1]
    assert "cannot reach http://127.0.0.1:" in line and "no network?" in line
    assert "semilearn data download cifar10" in line


def test_a_server_error_is_reported(cli, mirror: Mirror, tmp_path: Path) -> None:
    mirror.status = 503
    result = cli("data", "download", "cifar10", "--data-dir", str(tmp_path / "data"), "--mirror", mirror.url)
    assert result.code == 1 and "the server answered 503" in result.err


def test_a_copy_put_in_place_by_hand_is_verified_and_unpacked_offline(cli, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    archive, written = _cifar10_archive(tmp_path)
    source = SOURCES["cifar10"]
    monkeypatch.setitem(SOURCES, "cifar10", replace(
        source, files=(replace(source.files[0], md5=hashlib.md5(archive).hexdigest()),)))
    home = tmp_path / "data" / "cifar10"
    home.mkdir(parents=True)
    (home / "cifar-10-python.tar.gz").write_bytes(archive)
    # no mirror and an unreachable proxy: any network use would fail
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    result = cli("data", "download", "cifar10", "--data-dir", str(tmp_path / "data"))
    assert result.code == 0, result.text
    assert "is there and its checksum matches" in result.err
    assert torch.equal(_load_cifar10(tmp_path / "data").test_samples, torch.from_numpy(written.test_images))


def test_svhn_files_are_fetched_one_by_one_and_listed(cli, mirror: Mirror, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    written = write_svhn(tmp_path / "generated", extra_per_class=0)
    files = {name: (written.folder / name).read_bytes() for name in ("train_32x32.mat", "test_32x32.mat")}
    _publish(mirror, monkeypatch, "svhn_noextra", files)
    data_dir = tmp_path / "data"
    before = cli("data", "list", "--data-dir", str(data_dir))
    assert "svhn_noextra" in before.out and "missing train_32x32.mat" in before.out
    result = cli("data", "download", "svhn_noextra", "--data-dir", str(data_dir), "--mirror", mirror.url)
    assert result.code == 0, result.text
    assert [name for name, _ in mirror.requests] == ["train_32x32.mat", "test_32x32.mat"]
    assert (data_dir / "svhn" / "test_32x32.mat").read_bytes() == files["test_32x32.mat"]
    after = cli("data", "list", "--data-dir", str(data_dir))
    listed = {line.split()[0]: line for line in after.out.splitlines()}
    assert listed["svhn_noextra"].endswith("complete") and "missing extra_32x32.mat" in listed["svhn"]


def test_the_mirror_environment_variable_and_unknown_names(cli, mirror: Mirror, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    archive, _ = _cifar10_archive(tmp_path)
    _publish(mirror, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": archive})
    monkeypatch.setenv(download_module.MIRROR_ENV, mirror.url)
    result = cli("data", "download", "cifar10", "--data-dir", str(tmp_path / "data"))
    assert result.code == 0 and mirror.requests == [("cifar-10-python.tar.gz", None)]
    unknown = cli("data", "download", "imagenet")
    assert unknown.code == 2 and "'imagenet' is not one of" in unknown.err


def test_the_data_commands_do_not_import_torch() -> None:
    """Downloading needs no torch: the command group and the downloader use the standard library."""
    code = (
        "import sys\n"
        "from semilearn.data.commands import data_group\n"
        "data_group.main(['list', '--data-dir', 'nowhere'], standalone_mode=False)\n"
        "print('torch-imported:', 'torch' in sys.modules)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "nowhere/cifar10" in output
    assert output.strip().splitlines()[-1] == "torch-imported: False", output
