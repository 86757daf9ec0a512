"""Fetch the benchmark data sets from their official hosts: verified, resumable, unpacked.

Each downloadable data set has a :class:`Source`: the folder it lives in under
``data_dir`` (USB's layout: ``<data_dir>/cifar10/cifar-10-batches-py/...``), the files
to fetch with their published MD5 checksums, and the files a complete copy holds.
:func:`download` fetches each file into ``<file>.part``, continuing a partial file with
an HTTP range request (also after a dropped connection, up to ``attempts`` tries),
checks the MD5 before the file takes its real name, and unpacks archives through a
temporary folder so that a half-unpacked archive is never mistaken for data.

A file already in place is verified and used without any network, so a machine
without internet access takes a copy made elsewhere: put the official file in the data
set's folder and run ``semilearn data download NAME``.

:func:`fetch_file` is the transfer itself (resume, retries, verification by the caller's
check), also used for pretrained weights (:mod:`semilearn.nets.pretrained`).

Only the standard library is used here (no torch), so the command starts fast.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from ..paths import check_name, entry_problem

__all__ = [
    "RemoteFile",
    "Source",
    "SOURCES",
    "MIRROR_ENV",
    "download",
    "fetch_file",
    "file_md5",
    "missing_files",
    "source_home",
]

# Base URL of a mirror holding the official files side by side (``<mirror>/<file name>``).
MIRROR_ENV = "SEMILEARN_DATA_MIRROR"

_CHUNK = 1 << 20
_USER_AGENT = "semilearn-data-download"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set on its official host.

    Attributes:
        url: where the data set's authors publish it.
        md5: its published MD5 checksum (hex).
        unpack: a ``.tar.gz`` or ``.zip`` archive whose contents are unpacked beside it.
    """

    url: str
    md5: str
    unpack: bool = False

    @property
    def filename(self) -> str:
        """The file's name: the URL's last part, without a query (``tissuemnist.npz?download=1``)."""
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]


@dataclass(frozen=True)
class Source:
    """Where a data set comes from and what a complete copy holds.

    Attributes:
        name: the data set's registry name.
        home: its folder under ``data_dir`` (shared by variants of one data set).
        files: what to fetch.
        expected: paths, relative to ``home``, that a complete copy has.
    """

    name: str
    home: str
    files: tuple[RemoteFile, ...]
    expected: tuple[str, ...]


_SVHN = "http://ufldl.stanford.edu/housenumbers/"
_SVHN_TRAIN = RemoteFile(_SVHN + "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373")
_SVHN_TEST = RemoteFile(_SVHN + "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")
_SVHN_EXTRA = RemoteFile(_SVHN + "extra_32x32.mat", "a93ce644f1a588dc4d68dda5feec44a7")

SOURCES: dict[str, Source] = {
    "cifar10": Source(
        "cifar10",
        "cifar10",
        (RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                    unpack=True),),
        tuple(f"cifar-10-batches-py/{name}" for name in
              ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")),
    ),
    "cifar100": Source(
        "cifar100",
        "cifar100",
        (RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                    unpack=True),),
        ("cifar-100-python/train", "cifar-100-python/test"),
    ),
    "svhn": Source(
        "svhn", "svhn", (_SVHN_TRAIN, _SVHN_TEST, _SVHN_EXTRA), ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat")
    ),
    "svhn_noextra": Source("svhn_noextra", "svhn", (_SVHN_TRAIN, _SVHN_TEST), ("train_32x32.mat", "test_32x32.mat")),
    # MedMNIST v2's record, with the MD5 MedMNIST publishes in its INFO table (the one USB uses)
    "tissuemnist": Source(
        "tissuemnist",
        "medmnist/tissuemnist",
        (RemoteFile("https://zenodo.org/record/5208230/files/tissuemnist.npz?download=1",
                    "ebe78ee8b05294063de985d821c1c34b"),),
        ("tissuemnist.npz",),
    ),
    # the RGB release from the authors' host; the MD5 is the one torchvision publishes for this file
    "eurosat": Source(
        "eurosat",
        "eurosat",
        (RemoteFile("https://madm.dfki.de/files/sentinel/EuroSAT.zip", "c8fa014336c82ac7804f0398fcb19387",
                    unpack=True),),
        tuple(f"2750/{name}/{name}_1.jpg" for name in
              ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
               "Residential", "River", "SeaLake")),
    ),
    "stl10": Source(
        "stl10",
        "stl10",
        (RemoteFile("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "91f7769df0f17e558f3565bffb0c7dfb",
                    unpack=True),),
        tuple(f"stl10_binary/{name}" for name in
              ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin")),
    ),
}


def source_home(name: str, data_dir: str | os.PathLike[str]) -> Path:
    """The folder the data set ``name`` lives in: ``<data_dir>/<home>``."""
    return Path(data_dir).expanduser() / _source(name).home


def missing_files(name: str, data_dir: str | os.PathLike[str]) -> list[Path]:
    """The files of a complete copy of ``name`` that are not in ``data_dir``."""
    home = source_home(name, data_dir)
    return [home / relative for relative in _source(name).expected if not (home / relative).is_file()]


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    name: str,
    data_dir: str | os.PathLike[str],
    *,
    mirror: str | None = None,
    force: bool = False,
    attempts: int = 3,
    timeout: float = 60.0,
    remove_archive: bool = False,
    report: Callable[[str], None] = lambda message: None,
) -> Path:
    """Fetch, verify and unpack the data set ``name`` into ``<data_dir>/<home>``; return that folder.

    Args:
        name: a key of :data:`SOURCES`.
        data_dir: the configuration's ``data_dir``.
        mirror: base URL serving the official files by name (default: the environment
            variable ``SEMILEARN_DATA_MIRROR``, else the official hosts).
        force: fetch and unpack again even when a complete copy is there.
        attempts: tries per file; each retry continues where the last one stopped.
        timeout: seconds a connection may stay silent.
        remove_archive: delete an archive once it is unpacked.
        report: receives one line per event (start, progress, verified, unpacked).

    Raises:
        DataError: no network, a server error, a checksum mismatch, a broken archive or
            an interrupted transfer (its partial file is kept, so running again resumes).
    """
    source = _source(name)
    home = source_home(name, data_dir)
    if not force and not missing_files(name, data_dir):
        report(f"{name}: already complete in {home} (--force downloads it again)")
        return home
    names = [check_name(remote.filename, f"{name}: the file name of {remote.url}", DataError)
             for remote in source.files]  # before anything is created
    home.mkdir(parents=True, exist_ok=True)
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV) or None
    for remote, filename in zip(source.files, names, strict=True):
        url = f"{mirror.rstrip('/')}/{filename}" if mirror else remote.url
        target = home / filename
        if target.is_file() and not force and file_md5(target) == remote.md5:
            report(f"{name}: {target} is there and its checksum matches")
        else:
            if target.exists():
                if not force:
                    report(f"{name}: {target} does not have the published checksum; downloading it again")
                target.unlink()
            _fetch(name, url, target, remote.md5, attempts, timeout, report)
        if remote.unpack:
            _unpack(name, target, home, report)
            if remove_archive:
                target.unlink()
    still_missing = missing_files(name, data_dir)
    if still_missing:
        raise DataError(
            f"{name}: the downloaded files do not hold {still_missing[0]} (is the mirror serving another data set?)"
        )
    report(f"{name}: complete in {home}")
    return home


def _source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(
            f"no download for data set '{name}'; downloadable: {', '.join(SOURCES)}"
        ) from None


def _fetch(
    name: str, url: str, target: Path, md5: str, attempts: int, timeout: float, report: Callable[[str], None]
) -> None:
    """Download ``url`` into ``target`` through ``target.part``, resuming, then verify its MD5."""
    command = _command(name, target.parent)

    def verify(partial: Path) -> str | None:
        actual = file_md5(partial)
        if actual == md5:
            return None
        return (f"{url} has MD5 {actual}, expected {md5}: the file is corrupt or not the official one, "
                f"so it was deleted; run `{command}` again")

    fetch_file(url, target, label=name, verify=verify, attempts=attempts, timeout=timeout, report=report,
               resume_hint=f"run `{command}` again to resume",
               offline_hint=f"Fetch the file elsewhere, put it in {target.parent}/ and run `{command}` again to "
                            "verify and unpack it")
    report(f"{name}: {target.name} verified (md5 {md5})")


def fetch_file(
    url: str,
    target: Path,
    *,
    label: str,
    verify: Callable[[Path], str | None],
    resume_hint: str,
    offline_hint: str,
    attempts: int = 3,
    timeout: float = 60.0,
    report: Callable[[str], None] = lambda message: None,
) -> None:
    """Download ``url`` to ``target`` through ``target.part``: resumable, verified, then renamed.

    A partial file left by an earlier call is continued with an HTTP range request (a
    server that ignores ranges sends the whole file again), and so is a transfer that
    breaks off or delivers fewer bytes than its ``Content-Length``, up to ``attempts``
    tries. ``verify(partial)`` then returns None for a good file, else the reason (the
    partial file is deleted); only a verified file takes the name ``target``.

    Args:
        url: an http(s) URL.
        target: where the file ends up.
        label: what the messages start with (the data set's name, a weight file's name).
        verify: checks the complete download.
        resume_hint: how to continue, said when the tries run out (the partial file stays).
        offline_hint: how to get the file without this machine's network, said when the
            host cannot be reached.
        attempts: tries; each retry continues where the last one stopped.
        timeout: seconds a connection may stay silent.
        report: receives one line per event (start, progress, resume).

    Raises:
        DataError: the host cannot be reached, answers with an error, the transfer keeps
            breaking off, or ``verify`` refuses the file.
    """
    partial = target.with_name(target.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            _transfer(label, url, partial, target.name, timeout, report, offline_hint)
            break
        except _Interrupted as interruption:
            if attempt == attempts:
                raise DataError(
                    f"{label}: the transfer of {url} broke off at {interruption.received} of "
                    f"{interruption.expected or 'unknown'} bytes ({interruption.reason}) after {attempts} tries; "
                    f"the partial file {partial} is kept: {resume_hint}"
                ) from None
            report(f"{label}: transfer broke off at {interruption.received} bytes ({interruption.reason}); "
                   f"resuming (try {attempt + 1} of {attempts})")
            time.sleep(min(2.0 ** (attempt - 1), 10.0) * 0.1)
    problem = verify(partial)
    if problem is not None:
        partial.unlink()
        raise DataError(f"{label}: {problem}")
    partial.replace(target)


def _command(name: str, home: Path) -> str:
    """The command that continues this download (``home`` is ``<data_dir>/<the source's home>``)."""
    data_dir = home
    for _ in Path(_source(name).home).parts:
        data_dir = data_dir.parent
    return f"semilearn data download {name} --data-dir {data_dir}"


class _Interrupted(Exception):
    def __init__(self, received: int, expected: int | None, reason: str) -> None:
        super().__init__(reason)
        self.received = received
        self.expected = expected
        self.reason = reason


def _transfer(
    name: str, url: str, partial: Path, label: str, timeout: float, report: Callable[[str], None], offline_hint: str
) -> None:
    """One request: continue ``partial`` from its size when the server allows, else start over."""
    offset = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - http(s) URLs from the table
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # The partial file is already whole (or longer than the file): let the checksum decide.
            return
        raise DataError(f"{name}: the server answered {error.code} {error.reason} for {url}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DataError(f"{name}: cannot reach {url} ({reason}); no network? {offline_hint}") from None
    with response:
        status = response.status
        if status == 206 and offset:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                raise DataError(f"{name}: the server resumed {url} at byte {start}, not at {offset}")
            mode = "ab"
            report(f"{name}: resuming {label} at {_size(offset)}")
        else:
            if offset:
                report(f"{name}: the server does not resume transfers; downloading {label} from the start")
            offset = 0
            mode = "wb"
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length is not None and length.isdigit() else None
        if not offset:
            report(f"{name}: downloading {url} ({_size(expected) if expected else 'size unknown'})")
        received = offset
        next_report = _next_mark(received, expected)
        with open(partial, mode) as stream:
            try:
                while chunk := response.read(_CHUNK):
                    stream.write(chunk)
                    received += len(chunk)
                    if expected and received >= next_report and received < expected:
                        report(f"{name}: {label} {100 * received // expected}% of {_size(expected)}")
                        next_report = _next_mark(received, expected)
            except (http.client.IncompleteRead, ConnectionError, TimeoutError) as error:
                raise _Interrupted(received, expected, type(error).__name__) from None
        if expected is not None and received < expected:
            raise _Interrupted(received, expected, "connection closed early")


def _next_mark(received: int, expected: int | None) -> int:
    """The next tenth of ``expected`` after ``received`` (progress is reported every 10%)."""
    if not expected:
        return 0
    step = max(expected // 10, 1)
    return (received // step + 1) * step


def _content_range_start(header: str | None) -> int | None:
    # "bytes START-END/TOTAL"
    if not header or not header.startswith("bytes "):
        return None
    first = header[6:].split("-", 1)[0]
    return int(first) if first.isdigit() else None


def _size(count: int | None) -> str:
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop always returns


def _unpack(name: str, archive: Path, home: Path, report: Callable[[str], None]) -> None:
    """Unpack ``archive`` into ``home`` through a temporary folder (never half-unpacked in place)."""
    staging = home / f".{archive.name}.unpacking"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        try:
            if archive.suffix == ".zip":
                _unzip(name, archive, staging)
            else:
                with tarfile.open(archive, "r:*") as tar:
                    members = tar.getmembers()
                    for member in members:
                        _check_member(name, archive, member)
                    if hasattr(tarfile, "data_filter"):
                        tar.extractall(staging, members=members, filter="data")
                    else:  # pragma: no cover - Python before 3.10.12 / 3.11.4
                        tar.extractall(staging, members=members)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
            raise DataError(
                f"{name}: cannot unpack {archive} ({error}); delete it and run `{_command(name, home)}`"
            ) from None
        for entry in sorted(staging.iterdir()):
            destination = home / entry.name
            if destination.is_dir() and not destination.is_symlink():
                shutil.rmtree(destination)
            elif destination.exists() or destination.is_symlink():
                destination.unlink()
            entry.replace(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report(f"{name}: unpacked {archive.name}")


def _refuse_entry(name: str, archive: Path, entry: str, problem: str | None) -> None:
    """Refuse an archive entry that would not land, as a file or a folder, inside the folder it
    is unpacked into: each part of its path must be a name (:func:`semilearn.paths.entry_problem`)."""
    if problem is not None:
        raise DataError(f"{name}: {archive} holds an unsafe entry '{entry}' ({problem}); it is not the official "
                        "archive")


def _check_member(name: str, archive: Path, member: tarfile.TarInfo) -> None:
    kind = None if member.isfile() or member.isdir() else "it is a link or a special file"
    _refuse_entry(name, archive, member.name, entry_problem(member.name) or kind)


def _unzip(name: str, archive: Path, staging: Path) -> None:
    """Extract a zip archive into ``staging``, refusing absolute paths, ``..``, names that are
    not portable and links."""
    with zipfile.ZipFile(archive) as bundle:
        for info in bundle.infolist():
            is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
            _refuse_entry(name, archive, info.filename, entry_problem(info.filename) or ("it is a link" if is_link
                                                                                           else None))
        bundle.extractall(staging)
