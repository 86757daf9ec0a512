"""A run writes where it is told, and only there; a file that is read is a regular file.

Every value that becomes a file or folder name passes one rule (``semilearn.paths``); a
bad one is refused in one line, exit code 2, with the file system checked afterwards:
nothing written, inside the working directory or above it. A configuration file, a
``--resume`` target and the files given to ``evaluate`` / ``predict`` / ``export`` must be
regular files: a device, a named pipe or an oversized file is refused before it is read,
so nothing waits for ever. (Names of the plugins' own keys are tested with their plugin:
``checkpoint.dir`` in test_checkpoint.py, ``logging.log_file`` in test_logging.py, a
tracker's run id in test_trackers.py, downloaded and unpacked names in test_download.py.)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import FAST
from semilearn.config import Config, resolve_config
from semilearn.errors import CheckpointError, ConfigError
from semilearn.paths import (
    CONFIG_FILE_LIMIT,
    MAX_NAME_BYTES,
    NAME_RULE,
    check_name,
    entry_problem,
    name_problem,
    portable_name,
    read_text_file,
    regular_file,
)
from semilearn.rundir import claim_run_directory, default_save_name

REFUSED_NAME = "must be one file or folder name, not "


def tree(root: Path) -> set[str]:
    """Every path below ``root``, relative, folders included."""
    return {str(path.relative_to(root)) for path in root.rglob("*")}


def one_error_line(text: str) -> str:
    """The only line of ``text`` (stderr), which must start with ``error: ``."""
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    return lines[0]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory two folders below tmp_path, so that ``../../x`` would land in tmp_path."""
    here = tmp_path / "home" / "work"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    return here


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A named pipe no one writes to: opening it to read waits for ever. A watchdog opens it
    for writing after 60 s, so that a reader that blocks fails the test instead of hanging it."""
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    done = threading.Event()

    def watchdog() -> None:
        if done.wait(60):
            return
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    yield path
    done.set()
    thread.join()


# ---------------------------------------------------------------------------
# The rule.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fixmatch_digits_40_0", "r-2", "my run (v2)", ".hidden", "über-lauf", "a" * 255,
                                  "x.y.z", "CONSOLE", "nul_", "COM10"])
def test_names_that_are_one_portable_path_component(name: str) -> None:
    assert name_problem(name) is None
    assert check_name(name, "x") == name


@pytest.mark.parametrize(("name", "why"), [
    ("", "it is empty"),
    (".", "'.' is the folder itself"),
    ("..", "'..' is the parent folder"),
    ("../../escape", "it holds a path separator"),
    ("a/b", "it holds a path separator"),
    ("a\\b", "it holds a path separator"),
    ("/srv/x", "it is an absolute path"),
    ("\\\\server\\share", "it is an absolute path"),
    ("C:x", "it starts with a Windows drive"),
    ("ab:c", "it holds :"),
    ('what?"*', 'it holds " * ?'),
    ("a<b>|", "it holds < > |"),
    ("tab\there", "it holds a control character"),
    ("new\nline", "it holds a control character"),
    ("trailing.", "it ends in a dot or a space"),
    ("trailing ", "it ends in a dot or a space"),
    ("CON", "Windows reserves it for a device"),
    ("nul.txt", "Windows reserves it for a device"),
    ("Lpt9", "Windows reserves it for a device"),
    ("a" * 256, "it is 256 bytes long"),
    ("é" * 128, "it is 256 bytes long"),
    ("\udcff", "it is not valid text"),
    (7, "it is not text but int"),
])
def test_names_refused_and_why(name: object, why: str) -> None:
    assert name_problem(name) == why
    with pytest.raises(ConfigError) as raised:
        check_name(name, "configuration key 'save_name'")
    message = str(raised.value)
    assert message == f"configuration key 'save_name' {REFUSED_NAME}{name!r} ({why}); {NAME_RULE}"
    assert "\n" not in message


def test_the_rule_says_what_a_name_may_hold() -> None:
    for part in ("letters, digits", "/ \\ < > : \" | ? *", "'..'", "control character", "dot or a space",
                 "CON, PRN, AUX, NUL, COM1-9, LPT1-9", f"{MAX_NAME_BYTES} bytes"):
        assert part in NAME_RULE


@pytest.mark.parametrize("text", ["flexmatch_mypkg.data:make_40_0", "a/b\\c", "..", ".", "", "CON", "nul.x",
                                  "end.", "x" * 300, "é" * 200, "tab\t"])
def test_a_derived_name_is_made_portable(text: str) -> None:
    assert name_problem(portable_name(text)) is None


@pytest.mark.parametrize(("entry", "why"), [
    ("cifar-10-batches-py/data_batch_1", None),
    ("2750/AnnualCrop/", None),
    ("./stl10_binary/train_X.bin", None),
    ("../escape.txt", "part '..': '..' is the parent folder"),
    ("a/../../b", "part '..': '..' is the parent folder"),
    ("/etc/passwd", "it is an absolute path"),
    ("C:/x", "part 'C:': it starts with a Windows drive"),
    ("a\\..\\b", "part 'a\\\\..\\\\b': it holds a path separator"),
    ("dir/aux.txt", "part 'aux.txt': Windows reserves it for a device"),
    ("./", "it names no file"),
])
def test_archive_entries_are_paths_of_names(entry: str, why: str | None) -> None:
    assert entry_problem(entry) == why


def test_the_data_sets_own_folder_and_file_names_follow_the_rule() -> None:
    """The names a data set puts under data_dir (its folder, the files fetched, the files a
    complete copy holds) are the code's own; they follow the same rule."""
    from semilearn.data.download import SOURCES

    for source in SOURCES.values():
        assert entry_problem(source.home) is None, source.home
        for remote in source.files:
            assert name_problem(remote.filename) is None, remote.url
        for expected in source.expected:
            assert entry_problem(expected) is None, expected


# ---------------------------------------------------------------------------
# save_name: the run directory is inside save_dir.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../escape", "/srv/x", "..", "", "sub/run", "CON", "run."])
def test_a_save_name_that_is_not_one_name_is_refused_with_nothing_written(cli, workdir: Path, tmp_path: Path,
                                                                          name: str) -> None:
    outside = Path("/srv/x").exists()
    before = tree(tmp_path)
    result = cli("run", *FAST, "--set", f"save_name={name}")
    assert result.code == 2
    line = one_error_line(result.err)
    assert line.startswith(f"error: configuration key 'save_name' {REFUSED_NAME}")
    assert NAME_RULE in line
    assert tree(tmp_path) == before  # no saved_models, no escape two folders up
    assert not (tmp_path / "escape").exists()
    assert Path("/srv/x").exists() == outside


def test_the_issues_two_commands_are_refused(cli, workdir: Path, tmp_path: Path) -> None:
    before = tree(tmp_path)
    escape = cli("run", "--set", "save_name=../../escape")
    assert escape.code == 2
    assert one_error_line(escape.err) == (f"error: configuration key 'save_name' {REFUSED_NAME}'../../escape' (it "
                                          f"holds a path separator); {NAME_RULE}")
    absolute = cli("run", "--set", "save_name=/srv/x")
    assert absolute.code == 2
    assert one_error_line(absolute.err) == (f"error: configuration key 'save_name' {REFUSED_NAME}'/srv/x' (it is an "
                                            f"absolute path); {NAME_RULE}")
    assert tree(tmp_path) == before


def test_a_config_file_carrying_save_name_dotdot_is_refused_with_nothing_written(cli, workdir: Path,
                                                                                 tmp_path: Path) -> None:
    shared = workdir / "shared.yaml"
    shared.write_text("algorithm: fixmatch\nsave_dir: ./saved_models/classic_cv\nsave_name: ../x\n")
    before = tree(tmp_path)
    for command in (("run", str(shared), *FAST), ("config", "show", str(shared))):
        result = cli(*command)
        assert result.code == 2, command
        assert one_error_line(result.err).startswith(f"error: configuration key 'save_name' {REFUSED_NAME}'../x' (it "
                                                     "holds a path separator); ")
    assert tree(tmp_path) == before
    assert not (workdir / "saved_models").exists() and not (workdir / "x").exists()


def test_save_dir_may_be_anywhere_and_the_run_is_inside_it(cli, workdir: Path, tmp_path: Path) -> None:
    result = cli("run", *FAST, "--set", f"save_dir={tmp_path / 'elsewhere'}", "--set", "save_name=mine",
                 "-p", "no:checkpoint", "-p", "no:logging")
    assert result.code == 0, result.err
    assert (tmp_path / "elsewhere" / "mine" / "config.yaml").is_file()
    assert tree(workdir) == set()


def _config(save_dir: Path, **values: object) -> Config:
    return resolve_config({"save_dir": str(save_dir), **values}, algorithm_options={"flexmatch": ()},
                          plugin_sections={}).config


def test_a_numbered_name_is_a_name_too(tmp_path: Path) -> None:
    """The -N suffix of a taken name: a name of 254 bytes is taken, its -2 would be 256 bytes."""
    long_name = "r" * (MAX_NAME_BYTES - 1)
    taken = tmp_path / "runs" / long_name
    taken.mkdir(parents=True)
    (taken / "config.yaml").write_text("a: 1\n")  # a run from before
    before = tree(tmp_path)
    with pytest.raises(ConfigError, match=rf"^the run directory's name {REFUSED_NAME}'r+-2' \(it is 256 bytes "
                                          r"long\); "):
        claim_run_directory(_config(tmp_path / "runs", save_name=long_name))
    assert tree(tmp_path) == before
    assert claim_run_directory(_config(tmp_path / "runs", save_name="r" * 10)).name == "r" * 10


def test_a_config_made_in_code_is_checked_before_anything_is_created(tmp_path: Path) -> None:
    config = Config({"save_dir": str(tmp_path / "runs"), "save_name": "../../outside", "algorithm": "flexmatch",
                     "dataset": "digits", "num_labels": 40, "seed": 0})
    with pytest.raises(ConfigError, match=f"^configuration key 'save_name' {REFUSED_NAME}'../../outside'"):
        claim_run_directory(config)
    assert tree(tmp_path) == set()


def test_the_default_name_of_a_data_set_given_by_import_path_is_portable(tmp_path: Path) -> None:
    config = _config(tmp_path, dataset="mypackage.data:make_datasets", num_labels=8)
    assert default_save_name(config) == "flexmatch_mypackage.data_make_datasets_8_0"
    assert default_save_name(_config(tmp_path)) == "flexmatch_digits_40_0"


# ---------------------------------------------------------------------------
# Configuration files: regular files of a sane size.
# ---------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_config_show_of_dev_zero_returns_at_once(process, tmp_path: Path) -> None:
    started = time.monotonic()
    result = process("config", "show", "/dev/zero", timeout=60)
    assert time.monotonic() - started < 60
    assert result.code == 2
    assert one_error_line(result.err) == "error: configuration file /dev/zero is a character device, not a regular file"
    assert result.out == ""


def test_a_named_pipe_as_the_config_file_of_run_is_refused_at_once(process, tmp_path: Path) -> None:
    pipe = tmp_path / "shared.yaml"
    os.mkfifo(pipe)
    before = tree(tmp_path)
    result = process("run", str(pipe), *FAST, timeout=60)  # a reader that opens the pipe would wait for ever
    assert result.code == 2
    assert one_error_line(result.err) == f"error: configuration file {pipe} is a named pipe, not a regular file"
    assert tree(tmp_path) == before


def test_a_named_pipe_as_the_config_file_of_config_show_in_process(cli, tmp_path: Path, fifo: Path) -> None:
    started = time.monotonic()
    result = cli("config", "show", str(fifo))
    assert result.code == 2
    assert one_error_line(result.err) == f"error: configuration file {fifo} is a named pipe, not a regular file"
    with pytest.raises(ConfigError, match="is a named pipe, not a regular file"):
        read_text_file(fifo, "configuration file")
    assert time.monotonic() - started < 30


def test_a_config_file_over_the_limit_is_refused_unread(cli, tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with open(big, "wb") as handle:
        handle.truncate(CONFIG_FILE_LIMIT + 1)  # sparse: no disk used
    result = cli("config", "show", str(big))
    assert result.code == 2
    assert one_error_line(result.err) == (f"error: configuration file {big} is 10.0 MiB, more than the 10.0 MiB a "
                                          "configuration file may be")
    exact = tmp_path / "exact.yaml"
    exact.write_text("seed: 3\n" + "#" * (CONFIG_FILE_LIMIT - 9) + "\n")
    assert exact.stat().st_size == CONFIG_FILE_LIMIT
    shown = cli("config", "show", str(exact))
    assert shown.code == 0 and "seed: 3" in shown.out


def test_a_folder_and_a_missing_file_as_the_config_file(cli, tmp_path: Path) -> None:
    (tmp_path / "folder.yaml").mkdir()
    assert cli("run", "folder.yaml").code == 2  # click refuses a folder (dir_okay=False)
    with pytest.raises(ConfigError, match=r"^configuration file is a folder, not a file: "):
        read_text_file(tmp_path / "folder.yaml", "configuration file")
    missing = cli("config", "show", "missing.yaml")
    assert missing.code == 2
    assert one_error_line(missing.err) == "error: configuration file not found: missing.yaml"


def test_regular_file_says_what_a_path_is(tmp_path: Path) -> None:
    import socket

    regular = tmp_path / "file"
    regular.write_text("x")
    assert regular_file(regular, "input") == regular
    (tmp_path / "link").symlink_to(regular)
    assert regular_file(tmp_path / "link", "input") == tmp_path / "link"  # links are followed
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=r"^checkpoint not found: "):
        regular_file(tmp_path / "dangling", "checkpoint", error=CheckpointError)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(ConfigError, match="is a socket, not a regular file"):
            regular_file(tmp_path / "sock", "x", error=ConfigError)
    finally:
        server.close()


# ---------------------------------------------------------------------------
# --resume targets and the files of evaluate, predict and export.
# ---------------------------------------------------------------------------


def test_a_named_pipe_or_a_device_as_the_resume_target_is_refused(cli, tmp_path: Path, fifo: Path) -> None:
    before = tree(tmp_path)
    result = cli("run", *FAST, "--resume", str(fifo))
    assert result.code == 2
    assert one_error_line(result.err) == (f"error: --resume {fifo} is a named pipe, not a run directory or a "
                                          "checkpoint file")
    if Path("/dev/zero").exists():
        device = cli("run", *FAST, "--resume", "/dev/zero")
        assert device.code == 2
        assert one_error_line(device.err) == ("error: --resume /dev/zero is a character device, not a run directory "
                                              "or a checkpoint file")
    missing = cli("run", *FAST, "--resume", "nothing/here.pt")
    assert missing.code == 2
    assert one_error_line(missing.err) == ("error: --resume nothing/here.pt does not exist (give a run directory or a "
                                           "checkpoint file)")
    assert tree(tmp_path) == before  # no run directory


def test_a_named_pipe_given_to_evaluate_predict_and_export_is_refused(cli, tmp_path: Path, fifo: Path) -> None:
    import numpy as np

    images = tmp_path / "images.npz"
    np.savez(images, images=np.zeros((2, 8, 8), dtype=np.uint8))
    before = tree(tmp_path)
    said = f"error: {fifo} is a named pipe, not a run directory or a checkpoint file"
    evaluate = cli("evaluate", str(fifo))
    assert evaluate.code == 2 and one_error_line(evaluate.err) == said
    predict = cli("predict", str(fifo), str(images), "--output", "labels.csv")
    assert predict.code == 2 and one_error_line(predict.err) == said
    export = cli("export", str(fifo), "--output", "model.pt")
    assert export.code == 2 and one_error_line(export.err) == said
    as_input = cli("predict", str(tmp_path / "missing-run"), str(fifo), "--output", "labels.csv")
    assert as_input.code == 2
    assert one_error_line(as_input.err) == f"error: input {fifo} is a named pipe, not a regular file"
    assert tree(tmp_path) == before


def test_read_checkpoint_refuses_a_named_pipe_unopened(fifo: Path) -> None:
    from semilearn.rundir import read_checkpoint

    with pytest.raises(CheckpointError, match=r"^checkpoint .*pipe\.yaml is a named pipe, not a regular file$"):
        read_checkpoint(fifo)


# ---------------------------------------------------------------------------
# A file name taken from a URL: pretrained weights.
# ---------------------------------------------------------------------------


def test_a_pretrain_url_whose_file_name_is_not_a_name_is_refused_before_the_run(cli, workdir: Path,
                                                                               tmp_path: Path) -> None:
    before = tree(tmp_path)
    result = cli("run", *FAST, "--set", "use_pretrain=true", "--set", "pretrain_path=http://127.0.0.1:9/w/..")
    assert result.code == 2
    assert one_error_line(result.err).startswith(
        f"error: configuration key 'pretrain_path' http://127.0.0.1:9/w/..: the file name it ends in {REFUSED_NAME}"
        "'..' ('..' is the parent folder); ")
    assert tree(tmp_path) == before


def test_weight_file_refuses_a_url_file_name_before_the_cache_is_made(tmp_path: Path) -> None:
    from semilearn.nets.pretrained import weight_file

    cache = tmp_path / "cache"
    for url, why in (("http://127.0.0.1:9/w/..", "'..' is the parent folder"),
                     ("https://127.0.0.1:9/w/CON?x=1", "Windows reserves it for a device")):
        with pytest.raises(CheckpointError, match=rf"the file name it ends in {REFUSED_NAME}'[.CON]+' \({why}\)"):
            weight_file(url, cache=cache)
    with pytest.raises(CheckpointError, match="names no file"):
        weight_file("http://127.0.0.1:9/w/", cache=cache)
    assert not cache.exists()
