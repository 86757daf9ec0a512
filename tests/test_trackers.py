"""The tracker base class (``semilearn.tracking``) and both tracker plugins together.

The first part needs no tracker library: :class:`JsonLinesTracker` is a complete tracker
built on :class:`~semilearn.tracking.TrackerHook` that writes one JSON-lines file per
tracker run, so real training runs show the lifecycle and the failure policy the
wandb and Aim plugins share. The last test interrupts a real process with SIGTERM and
resumes it with wandb and Aim both installed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, installed, run_process
from semilearn import PluginError
from semilearn.tracking import STRICT_OPTION, TrackerHook, tracker_exit_code, without_secrets


class JsonLinesTracker(TrackerHook):
    """A tracker whose "server" is ``<run_dir>/tracker-<run id>.jsonl``.

    ``fail_from_step`` makes :meth:`record` raise from that step on; ``fail_start`` makes
    :meth:`start_run` raise: the faults a tracker library shows when its server is gone.
    """

    name = "jsonl"
    library = "pluggy"  # any installed distribution: its version is recorded like a tracker library's
    config_options = (STRICT_OPTION,)

    def __init__(self, fail_from_step: int | None = None, fail_start: bool = False) -> None:
        super().__init__()
        self.fail_from_step = fail_from_step
        self.fail_start = fail_start
        self.path: Path | None = None

    def start_run(self, algorithm: Any, resume_id: str | None) -> str:
        if self.fail_start:
            raise TimeoutError("injected: no tracker server")
        run_id = resume_id or uuid.uuid4().hex[:8]
        self.path = Path(algorithm.run_dir) / f"tracker-{run_id}.jsonl"
        self._write(event="start", resumed=resume_id is not None, config=self.run_config(algorithm))
        return run_id

    def record(self, algorithm: Any, step: int, split: str, metrics: Mapping[str, float]) -> None:
        if self.fail_from_step is not None and step >= self.fail_from_step:
            raise ConnectionResetError("injected: connection reset")
        self._write(event="log", step=step, split=split, metrics=dict(metrics))

    def finish_run(self, algorithm: Any, status: str, exit_code: int) -> None:
        self._write(event="finish", status=status, exit_code=exit_code)

    def _write(self, **record: Any) -> None:
        assert self.path is not None
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def events(run_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    """The run id and the records of the only tracker file in ``run_dir``."""
    (path,) = run_dir.glob("tracker-*.jsonl")
    return path.stem.removeprefix("tracker-"), [json.loads(line) for line in path.read_text().splitlines()]


def summary(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Records without their payloads: ``("log", step, split)``, ``("finish", status, code)`` ..."""
    shapes: list[tuple[Any, ...]] = []
    for record in records:
        if record["event"] == "start":
            shapes.append(("start", record["resumed"]))
        elif record["event"] == "log":
            shapes.append(("log", record["step"], record["split"]))
        else:
            shapes.append(("finish", record["status"], record["exit_code"]))
    return shapes


@pytest.fixture
def messages() -> Iterator[list[tuple[str, str]]]:
    """``(level, message)`` of everything the ``semilearn`` logger says during the test."""
    collected: list[tuple[str, str]] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collected.append((record.levelname, record.getMessage()))

    logger = logging.getLogger("semilearn")
    handler, level = Collector(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield collected
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def train(tmp_path: Path, tracker: TrackerHook, *overrides: str, resume: str | None = None,
          plugins: tuple[object, ...] | list[object] = ()) -> Any:
    """A FAST run in this process with ``tracker`` (and ``plugins``) registered and no other tracker plugin."""
    from semilearn.plugins import PluginManager
    from semilearn.runner import load_config, run

    manager = PluginManager().load(blocked=("wandb", "aim"))
    manager.add(tracker)
    for plugin in plugins:
        manager.add(plugin)
    settings = [item for item in FAST if item != "--set"] + [f"save_dir={tmp_path / 'runs'}"]
    resolution = load_config(manager, None, [*settings, *overrides])
    return run(resolution.config, manager, resume=resume)


TRAIN_AND_EVAL = [("log", 5, "train"), ("log", 10, "train"), ("log", 10, "eval"), ("log", 15, "train"),
                  ("log", 20, "train"), ("log", 20, "eval")]


# ---------------------------------------------------------------------------
# The base class, through real runs.
# ---------------------------------------------------------------------------


def test_a_tracker_run_gets_every_log_call_the_config_and_the_exit_code(tmp_path: Path, messages) -> None:
    result = train(tmp_path, JsonLinesTracker())
    assert result.status == "completed"
    run_id, records = events(result.run_dir)
    assert summary(records) == [("start", False), *TRAIN_AND_EVAL, ("finish", "completed", 0)]
    config = records[0]["config"]
    assert config["algorithm"] == "flexmatch" and config["jsonl"] == {"strict": False}
    assert config["versions"]["semilearn-core"] and config["versions"]["pluggy"]
    said = [message for level, message in messages if message.startswith("jsonl:")]
    assert said == [f"jsonl: tracking to run {run_id}", f"jsonl: run {run_id} finished (completed, exit code 0)"]
    banner = [message for _, message in messages].index(f"run directory: {result.run_dir}")
    assert [message for _, message in messages].index(said[0]) > banner  # said after the banner


def test_tracker_failures_are_warned_about_once_counted_and_reported(tmp_path: Path, messages) -> None:
    result = train(tmp_path, JsonLinesTracker(fail_from_step=10))
    assert result.status == "completed" and result.exit_code == 0
    _, records = events(result.run_dir)
    assert summary(records) == [("start", False), ("log", 5, "train"), ("finish", "completed", 0)]
    warnings = [message for level, message in messages if level == "WARNING"]
    assert warnings == [
        "jsonl: the tracker failed in log at step 10 (ConnectionResetError: injected: connection reset); training "
        "goes on; further failures are counted and reported at the end (set jsonl.strict=true to stop the run "
        "instead)",
        "jsonl: 5 tracker calls failed and were dropped (log 5 of 6); first failure: ConnectionResetError: "
        "injected: connection reset (in log at step 10)",
    ]


def test_strict_turns_the_first_failure_into_a_failed_run(tmp_path: Path, messages) -> None:
    with pytest.raises(PluginError) as raised:
        train(tmp_path, JsonLinesTracker(fail_from_step=10), "jsonl.strict=true")
    assert str(raised.value) == ("jsonl: the tracker failed in log at step 10 (ConnectionResetError: injected: "
                                 "connection reset); jsonl.strict is on, so the run stops")
    (run_dir,) = (tmp_path / "runs").iterdir()
    _, records = events(run_dir)
    assert summary(records) == [("start", False), ("log", 5, "train"), ("finish", "failed", 1)]
    assert not [message for level, message in messages if level == "WARNING"]


def test_a_diverged_run_finishes_its_tracker_run_failed_with_exit_code_3(tmp_path: Path, messages) -> None:
    from test_training import Poison

    from semilearn import TrainingError

    with pytest.raises(TrainingError):
        train(tmp_path, JsonLinesTracker(), plugins=[Poison(step=7)])
    (run_dir,) = (tmp_path / "runs").iterdir()
    _, records = events(run_dir)
    # the NaN of step 8 is read at step 10's log point: nothing of step 10 reaches the tracker
    assert summary(records) == [("start", False), ("log", 5, "train"), ("finish", "failed", 3)]


def test_a_tracker_that_cannot_start_leaves_training_alone(tmp_path: Path, messages) -> None:
    result = train(tmp_path, JsonLinesTracker(fail_start=True))
    assert result.status == "completed"
    assert not list(result.run_dir.glob("tracker-*.jsonl"))
    warnings = [message for level, message in messages if level == "WARNING"]
    assert warnings == [
        "jsonl: the tracker failed in start at step 0 (TimeoutError: injected: no tracker server); training goes "
        "on without tracking (set jsonl.strict=true to stop the run instead)",
        "jsonl: 7 tracker calls failed and were dropped (log 6 of 6, start 1 of 1); first failure: TimeoutError: "
        "injected: no tracker server (in start at step 0)",
    ]


@pytest.mark.together
@pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="needs semilearn-checkpoint")
def test_the_tracker_run_id_travels_through_checkpoints(tmp_path: Path, messages) -> None:
    first = train(tmp_path, JsonLinesTracker(), "stop_step=10")
    assert first.status == "interrupted"
    run_id, _ = events(first.run_dir)
    second = train(tmp_path, JsonLinesTracker(), resume="auto")
    assert second.status == "completed" and second.run_dir == first.run_dir
    same_id, records = events(second.run_dir)  # one file: the resumed part continued the same tracker run
    assert same_id == run_id
    assert summary(records) == [("start", False), *TRAIN_AND_EVAL[:3], ("finish", "interrupted", 1),
                                ("start", True), *TRAIN_AND_EVAL[3:], ("finish", "completed", 0)]
    assert f"jsonl: continuing run {run_id}" in [message for _, message in messages]


@pytest.mark.together
@pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="needs semilearn-checkpoint")
def test_resuming_a_checkpoint_saved_without_the_tracker_starts_a_new_tracker_run(tmp_path: Path, messages) -> None:
    from semilearn.plugins import PluginManager
    from semilearn.runner import load_config, run

    manager = PluginManager().load(blocked=("wandb", "aim"))
    settings = [item for item in FAST if item != "--set"] + [f"save_dir={tmp_path / 'runs'}", "stop_step=10"]
    first = run(load_config(manager, None, settings).config, manager)
    second = train(tmp_path, JsonLinesTracker(), resume="auto")
    assert second.run_dir == first.run_dir
    _, records = events(second.run_dir)
    assert summary(records) == [("start", False), *TRAIN_AND_EVAL[3:], ("finish", "completed", 0)]
    assert ("INFO", "jsonl: the checkpoint holds no jsonl run (the plugin was not active when it was saved); "
                    "starting a new one") in messages


@pytest.mark.together
@pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="needs semilearn-checkpoint")
def test_a_run_id_in_a_checkpoint_that_is_not_a_name_is_refused(tmp_path: Path, messages) -> None:
    """A tracker names its run's folder after the run id (wandb: run-<time>-<id>), so the id a
    checkpoint carries is a name like any other: ``../../x`` is refused in one line."""
    import torch
    from test_paths import REFUSED_NAME, tree

    from semilearn import CheckpointError

    first = train(tmp_path, JsonLinesTracker(), "stop_step=10")
    last = first.run_dir / "checkpoints" / "last.pt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    state["plugins"]["jsonl"]["run_id"] = "../../outside"
    torch.save(state, last)
    before = tree(tmp_path)
    with pytest.raises(CheckpointError) as raised:
        train(tmp_path, JsonLinesTracker(), resume=str(last))
    assert str(raised.value).startswith(f"jsonl: the run id in the checkpoint {REFUSED_NAME}'../../outside' (it "
                                        "holds a path separator); ")
    assert "\n" not in str(raised.value)
    written = tree(tmp_path) - before
    assert all(path.startswith(str(first.run_dir.relative_to(tmp_path))) for path in written), written
    assert not list(tmp_path.rglob("*outside*"))


# ---------------------------------------------------------------------------
# The helpers.
# ---------------------------------------------------------------------------


def test_keys_that_look_like_secrets_never_reach_a_tracker() -> None:
    config = {
        "lr": 0.03,
        "api_key": "k",
        "hub": {"hf_token": "t", "name": "n", "AccessKey": "a", "dbPassword": "p",
                "nested": [{"client-secret": "s", "keep": 1}]},
        "tokenizer": "bpe", "num_tokens": 512, "keyframes": 3,  # words that only look alike
        "tags": ["token"],  # values are kept: only keys are judged
    }
    assert without_secrets(config) == {
        "lr": 0.03, "hub": {"name": "n", "nested": [{"keep": 1}]}, "tokenizer": "bpe", "num_tokens": 512,
        "keyframes": 3, "tags": ["token"],
    }
    assert config["hub"]["hf_token"] == "t"  # the input is left as it was


@pytest.mark.parametrize(
    ("status", "process_code", "tracker_code"),
    [("completed", 0, 0), ("interrupted", 143, 143), ("interrupted", 130, 130), ("interrupted", 0, 1),
     ("failed", 1, 1), ("failed", 2, 2)],
)
def test_only_a_completed_run_finishes_with_exit_code_zero(status: str, process_code: int, tracker_code: int) -> None:
    assert tracker_exit_code(status, process_code) == tracker_code


# ---------------------------------------------------------------------------
# wandb and Aim together, through a real interrupt.
# ---------------------------------------------------------------------------

EVERYTHING = ("semilearn-wandb", "semilearn-aim", "semilearn-checkpoint", "semilearn-logging")


@pytest.mark.together
@pytest.mark.skipif(not all(installed(name) for name in EVERYTHING), reason="needs all four plugins")
def test_sigterm_and_resume_keep_one_wandb_run_and_one_aim_run(tmp_path: Path) -> None:
    import torch
    from test_wandb import wandb_runs

    from test_aim import by_series, read_repo

    env = {name: value for name, value in os.environ.items() if not name.startswith("WANDB_")}
    env.update({f"WANDB_{name}_DIR": str(tmp_path / "wandb-home" / name.lower()) for name in ("CONFIG", "CACHE", "DATA")})
    env["PYTHONUNBUFFERED"] = "1"
    settings = (*FAST, "--set", "num_train_iter=300", "--set", "num_eval_iter=100", "--set", "save_dir=runs",
                "--set", "checkpoint.interval=0")
    process = subprocess.Popen([sys.executable, "-m", "semilearn", "run", *settings], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    printed = []
    for line in process.stdout:
        printed.append(line)
        if line.startswith("step 20/300 "):  # both trackers have started and logged a few times
            break
    assert any(line.startswith("wandb: tracking to offline run") for line in printed), printed
    assert any(line.startswith("aim: tracking to run") for line in printed), printed
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 143, err
    assert "interrupted at step " in out and out.count("finished (interrupted, exit code 143)") == 2

    run_dir = tmp_path / "runs/flexmatch_digits_40_0"
    stopped_at = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["step"]
    assert 20 <= stopped_at < 300
    resumed = run_process(["run", "--resume", str(run_dir)], cwd=tmp_path, env=env)
    assert resumed.code == 0, resumed.err
    assert "completed at step 300/300" in resumed.out

    saved = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["plugins"]
    run_id, run_hash = saved["wandb"]["run_id"], saved["aim"]["run_id"]
    assert f"wandb: continuing offline run {run_id}" in resumed.out and f"aim: continuing run {run_hash}" in resumed.out

    parts = wandb_runs(run_dir)
    assert [part.run.run_id for part in parts] == [run_id, run_id]
    assert all(part.folder.name.endswith(f"-{run_id}") for part in parts)
    assert [part.exit_code for part in parts] == [143, 0]
    before, after = ([row["global_step"] for row in part.history] for part in parts)
    assert before[:4] == [5, 10, 15, 20] and before[-1] <= stopped_at < after[0]  # never backwards
    assert before + after == list(range(5, 301, 5))  # never twice, nothing lost

    repo = read_repo(tmp_path / "runs")
    (aim_run,) = repo["runs"]
    assert aim_run["hash"] == run_hash
    assert aim_run["end"] == {"status": "completed", "exit_code": 0, "step": 300}
    assert sorted(by_series(repo["metrics"])["train", "loss"]) == list(range(5, 301, 5))
