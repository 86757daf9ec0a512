"""Training from Python: semilearn.train (semilearn/api.py), with data as arrays, as Dataset
objects or by name, hook objects passed in, plugins left out, and runs in a loop that leave
the process as they found it."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import semilearn
from conftest import installed
from semilearn import Hook, hookimpl
from semilearn.errors import ConfigError, DataError

QUICK = {"algorithm": "fixmatch", "num_train_iter": 12, "num_eval_iter": 6, "num_log_iter": 6, "epoch": 1,
         "batch_size": 8, "uratio": 2, "num_labels": 20, "eval_batch_size": 64}


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images * 16).clip(0, 255).astype(np.uint8), digits.target.astype(np.int64)


def _arrays() -> dict[str, np.ndarray]:
    images, targets = _digits()
    return {"labelled_images": images[:600], "labelled_targets": targets[:600],
            "test_images": images[1500:1700], "test_targets": targets[1500:1700]}


class Shapes(torch.utils.data.Dataset):
    """A Dataset of the user's: uint8 tensors [3, 8, 8] of 4 classes, items (image, label)."""

    def __init__(self, count: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.targets = [index % 4 for index in range(count)]
        self.noise = rng.integers(0, 60, size=(count, 3, 8, 8))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        colour = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])[self.targets[index]]
        pixels = (colour[:, None, None] + self.noise[index]).clip(0, 255).astype(np.uint8)
        return torch.from_numpy(pixels), self.targets[index]


class Steps(Hook):
    """A hook object of the caller's: counts steps, and can send SIGINT to this process at a step."""

    name = "steps"

    def __init__(self, interrupt_at: int | None = None) -> None:
        super().__init__()
        self.steps: list[int] = []
        self.interrupt_at = interrupt_at

    @hookimpl
    def after_train_step(self, algorithm) -> None:
        self.steps.append(algorithm.global_step)
        if algorithm.global_step == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)


def test_arrays_train_to_completion_and_the_predictor_is_the_saved_models(tmp_path: Path) -> None:
    result = semilearn.train(QUICK, data=_arrays(), data_name="mydigits", save_dir=str(tmp_path / "runs"))
    assert result.status == "completed" and result.exit_code == 0
    assert result.run_dir == tmp_path / "runs" / "fixmatch_mydigits_20_0" and result.run_dir.is_dir()
    assert [entry["step"] for entry in result.eval_history] == [6, 12]
    assert result.final == result.eval_history[-1] and result.best in result.eval_history
    assert result.config.dataset == "mydigits" and result.config.num_train_iter == 12
    images, _ = _digits()
    prediction = result.predictor(weights="model").predict(images[1700:1750])
    assert prediction.probs.shape == (50, 10)
    if installed("semilearn-checkpoint"):  # the predictor from memory is the one of the last checkpoint
        saved = semilearn.load(result.run_dir, checkpoint="last", weights="model").predict(images[1700:1750])
        assert torch.equal(prediction.probs, saved.probs)


def test_dataset_objects_a_hook_object_and_plugins_left_out(tmp_path: Path) -> None:
    steps = Steps()
    # a plugin's section as a dict adds to the section
    section = {"checkpoint": {"interval": 3}} if installed("semilearn-checkpoint") else {}
    result = semilearn.train(
        QUICK, data={"train": Shapes(48, 0), "test": Shapes(12, 1), "classes": ["r", "g", "b", "y"]},
        plugins=[steps], disable=["ema"], save_dir=str(tmp_path / "runs"), num_labels=8, **section,
    )
    assert result.status == "completed" and steps.steps == list(range(1, 13))
    assert "ema" not in result.algorithm.checkpoint_state()["plugins"]  # left out
    assert result.algorithm.data.class_names == ["r", "g", "b", "y"]
    assert list(result.predictor().classes) == ["r", "g", "b", "y"]
    if section:
        assert result.config.section("checkpoint").interval == 3


def test_keys_overrides_and_a_config_file_combine_in_order(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("algorithm: fixmatch\nnum_train_iter: 100\nnum_labels: 20\nuratio: 2\nbatch_size: 8\n")
    result = semilearn.train(path, data=_arrays(), num_train_iter=4, num_eval_iter=4, epoch=1,
                             overrides=["num_train_iter=3"], save_dir=str(tmp_path / "runs"), console=False)
    assert result.status == "completed" and result.algorithm.global_step == 3  # overrides last


def test_sigint_stops_the_run_at_the_step_returns_and_the_run_resumes(tmp_path: Path) -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    settings = {**QUICK, "num_train_iter": 20, "save_dir": str(tmp_path / "runs")}
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a background job
    result = semilearn.train(settings, data=_arrays(), plugins=[Steps(interrupt_at=5)])
    assert result.status == "interrupted" and result.exit_code == 130
    assert result.algorithm.global_step == 5
    assert signal.getsignal(signal.SIGINT) == before  # the caller's handler is back
    if not installed("semilearn-checkpoint"):
        return
    state = torch.load(result.run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 5
    steps = Steps()
    resumed = semilearn.train(settings, data=_arrays(), plugins=[steps], resume=result.run_dir)
    assert resumed.status == "completed" and resumed.run_dir == result.run_dir
    assert steps.steps == list(range(6, 21))  # from the checkpoint's step on


def test_the_python_page_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    markdown = (Path(__file__).parents[1] / "docs" / "python.md").read_text(encoding="utf-8")
    start = markdown.index("<!-- tested: train-from-python -->")
    code = markdown[markdown.index("```python\n", start) + len("```python\n"):]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "python_page"}
    exec(compile(code[: code.index("```")], "docs/python.md", "exec"), namespace)  # noqa: S102
    result = namespace["result"]
    assert result.status == "completed" and result.run_dir == Path("saved_models/fixmatch_my_digits_40_0")
    assert result.best["step"] in (25, 50) and len(namespace["prediction"].labels) == 10
    assert "completed saved_models/fixmatch_my_digits_40_0" in capsys.readouterr().out


@pytest.mark.parametrize(("data", "message"), [
    (Shapes(8, 0), r"data is one Shapes; give the training and the test sets: data=\{'train': \.\.\., 'test'"),
    (42, r"data is a int; expected a data set's name, a dict of arrays"),
    ({"labelled_images": np.zeros((4, 8, 8), np.uint8)}, r"data 'data' has no array 'labelled_targets'"),
    ({**_arrays(), "test_labels": np.zeros(3)}, r"data 'data': unknown key 'test_labels'"),
])
def test_bad_data_is_one_line(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        semilearn.train(QUICK, data=data, save_dir=str(tmp_path / "runs"), console=False)


def test_bad_config_and_plugin_names_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config is a dict, a YAML file's path or None, not int"):
        semilearn.train(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="disable: no plugin named 'nosuch' is installed; installed: "):
        semilearn.train(QUICK, disable=["nosuch"], save_dir=str(tmp_path / "runs"))


def _process_state() -> dict[str, object]:
    import multiprocessing

    from semilearn.plugins import PluginManager

    loggers = [logging.getLogger(), logging.getLogger("semilearn"), *(
        logger for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith("semilearn") and isinstance(logger, logging.Logger))]
    return {
        "threads": sorted(thread.name for thread in threading.enumerate()),
        "open files": len(os.listdir("/proc/self/fd")),
        "child processes": len(multiprocessing.active_children()),
        "logging handlers": sum(len(logger.handlers) for logger in loggers),
        "plugins": sorted(PluginManager().load().infos),
        "sigint": signal.getsignal(signal.SIGINT),
    }


def _settled(reference: dict[str, object] | None, seconds: float = 20.0) -> dict[str, object]:
    """The process's state once what a run closes has closed (worker processes and their queue
    threads end a moment after the loader lets them go): polled until it equals ``reference``."""
    import time

    deadline = time.monotonic() + seconds
    state = _process_state()
    while reference is not None and state != reference and time.monotonic() < deadline:
        time.sleep(0.1)
        state = _process_state()
    return state


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_ten_runs_in_one_process_leave_it_as_the_first_did(tmp_path: Path) -> None:
    arrays = _arrays()
    reference: dict[str, object] | None = None
    for number in range(10):
        lazy = number % 2 == 1  # every other run reads a Dataset lazily, with worker processes
        data = {"train": Shapes(48, 0), "test": Shapes(12, 1)} if lazy else arrays
        result = semilearn.train(QUICK, data=data, save_dir=str(tmp_path / "runs"), num_train_iter=4,
                                 num_eval_iter=4, num_labels=8 if lazy else 20, console=number % 3 != 0,
                                 data_loading="lazy" if lazy else "auto", num_workers=2)
        assert result.status == "completed"
        del result
        state = _settled(reference)
        if reference is None:
            reference = state  # after the first run: what it imported and started once stays
        assert state == reference, f"after run {number + 1}"


def test_a_console_handler_left_on_a_closed_stream_is_replaced(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from semilearn.cli import setup_console

    stale = io.StringIO()
    setup_console(stale)  # as semilearn.cli.main leaves it, on a stream closed since
    stale.close()
    try:
        result = semilearn.train(QUICK, data=_arrays(), save_dir=str(tmp_path / "runs"), num_train_iter=2)
        assert result.status == "completed"
        captured = capsys.readouterr()
        assert "run directory:" in captured.out and "Logging error" not in captured.err
    finally:
        logger = logging.getLogger("semilearn")
        for handler in list(logger.handlers):
            if getattr(handler, "stream", None) is stale:
                logger.removeHandler(handler)
