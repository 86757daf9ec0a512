"""semilearn-wandb with real offline wandb runs, read back from the files wandb writes.

wandb keeps an offline run in ``<dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb``: a
LevelDB-style log (a 7-byte ``:W&B`` header, then 32 KiB blocks of length-prefixed
chunks) of the protobuf ``Record`` messages that ``wandb sync`` later uploads. wandb has
no Python reader for it, so :func:`wandb_records` below reads that container; every
assertion is then about what wandb itself wrote: the run, its config, metric
definitions, history rows, artifacts and exit code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, installed
from semilearn import Hook, hookimpl

pytestmark = pytest.mark.skipif(not installed("semilearn-wandb"), reason="semilearn-wandb is not installed")

FAKE_API_KEY = "0123456789abcdef0123456789abcdef01234567"
ONLY_WANDB = ("-p", "no:aim")


# ---------------------------------------------------------------------------
# Reading what wandb wrote.
# ---------------------------------------------------------------------------

_BLOCK = 32 * 1024
_CHUNK_HEADER = struct.Struct("<IHB")  # checksum, length, type (1 full, 2 first, 3 middle, 4 last)


def wandb_records(path: Path) -> Iterator[Any]:
    """The ``wandb_internal_pb2.Record`` messages of a ``run-<id>.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    position, pending = 7, b""
    while position + _CHUNK_HEADER.size <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < _CHUNK_HEADER.size:
            position += left_in_block  # a block's tail too short for a chunk header is padding
            continue
        _, length, kind = _CHUNK_HEADER.unpack_from(data, position)
        if position + _CHUNK_HEADER.size + length > len(data):
            break  # the writer is still at it
        chunk = data[position + _CHUNK_HEADER.size: position + _CHUNK_HEADER.size + length]
        position += _CHUNK_HEADER.size + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


class WandbRun:
    """What one offline run folder holds, once wandb has written it completely.

    wandb's service writes the file in the background: ``finish()`` can return before the
    last records reach the disk. A finished run ends with an ``exit`` record; wait for it.
    """

    def __init__(self, folder: Path, timeout: float = 30) -> None:
        self.folder = folder
        deadline = time.monotonic() + timeout
        while True:
            files = list(folder.glob("run-*.wandb"))
            self.records = list(wandb_records(files[0])) if files else []
            if self.of("exit") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        (self.file,) = files

    def of(self, kind: str) -> list[Any]:
        return [getattr(record, kind) for record in self.records if record.WhichOneof("record_type") == kind]

    @property
    def run(self) -> Any:
        (run,) = self.of("run")
        return run

    @property
    def config(self) -> dict[str, Any]:
        values = {item.key: json.loads(item.value_json) for item in self.run.config.update}
        for config in self.of("config"):
            values.update({item.key: json.loads(item.value_json) for item in config.update})
        return values

    @property
    def history(self) -> list[dict[str, Any]]:
        rows = []
        for history in self.of("history"):
            row = {"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in history.item}
            rows.append({key: value for key, value in row.items() if not key.startswith("_") or key == "_step"})
        return rows

    @property
    def exit_code(self) -> int | None:
        exits = self.of("exit")
        return exits[-1].exit_code if exits else None


def wandb_runs(run_dir: Path) -> list[WandbRun]:
    """The offline runs under ``run_dir/wandb``, oldest first."""
    return [WandbRun(folder) for folder in sorted((run_dir / "wandb").glob("offline-run-*"))]


# ---------------------------------------------------------------------------
# Fixtures and helpers.
# ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _wandb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep wandb's own folders in tmp_path and its settings out of the environment."""
    for name in list(os.environ):
        if name.startswith("WANDB_"):
            monkeypatch.delenv(name)
    for name in ("CONFIG", "CACHE", "DATA"):
        monkeypatch.setenv(f"WANDB_{name}_DIR", str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.setenv("WANDB_API_KEY", FAKE_API_KEY)  # must never reach the run's files


class LogRecorder(Hook):
    """Keeps every ``log`` call of a run: the values the engine handed to the trackers."""

    name = "log_recorder"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, str, dict[str, float]]] = []

    @hookimpl
    def log(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
        self.calls.append((step, split, dict(metrics)))


def train(tmp_path: Path, *overrides: str, plugins: tuple[object, ...] = (), resume: str | None = None,
          blocked: tuple[str, ...] = ("aim",)) -> Any:
    """A FAST run in this process (``save_dir`` = tmp_path/runs), optionally resumed."""
    from semilearn.plugins import PluginManager
    from semilearn.runner import load_config, run

    manager = PluginManager().load(blocked=blocked)
    for plugin in plugins:
        manager.add(plugin)
    settings = [item for item in FAST if item != "--set"] + [f"save_dir={tmp_path / 'runs'}"]
    resolution = load_config(manager, None, [*settings, *overrides])
    return run(resolution.config, manager, resume=resume)


def _only_wandb_run(run_dir: Path) -> WandbRun:
    (single,) = wandb_runs(run_dir)
    return single


# ---------------------------------------------------------------------------
# Tests.
# ---------------------------------------------------------------------------


@pytest.mark.together
def test_an_offline_run_holds_config_versions_metrics_and_exit_code_under_the_run_directory(tmp_path: Path) -> None:
    recorder = LogRecorder()
    result = train(tmp_path, "wandb.tags=[digits, smoke]", "wandb.group=tests", plugins=(recorder,))
    assert result.status == "completed"
    wandb_run = _only_wandb_run(result.run_dir)
    assert wandb_run.folder.parent == result.run_dir / "wandb"
    run_id = wandb_run.run.run_id
    assert wandb_run.folder.name.endswith(f"-{run_id}") and wandb_run.file.name == f"run-{run_id}.wandb"

    run = wandb_run.run
    assert run.project == "semilearn" and run.display_name == result.run_dir.name
    assert list(run.tags) == ["digits", "smoke"] and run.run_group == "tests"
    config = wandb_run.config
    assert config["algorithm"] == "flexmatch" and config["num_train_iter"] == 20 and config["lr"] == 0.03
    assert config["wandb"]["mode"] == "offline"
    versions = config["versions"]
    import wandb

    assert versions["semilearn-core"] and versions["wandb"] == wandb.__version__
    assert versions["plugins"]["wandb"]["distribution"] == "semilearn-wandb"
    assert FAKE_API_KEY.encode() not in wandb_run.file.read_bytes()

    definitions = {metric.name or metric.glob_name: metric for metric in wandb_run.of("metric")}
    assert definitions["train/*"].step_metric == definitions["eval/*"].step_metric == "global_step"
    assert definitions["eval/top1_acc"].summary.max

    # one history row per global step, holding that step's train and eval metrics
    expected: dict[int, dict[str, float]] = {}
    for step, split, metrics in recorder.calls:
        expected.setdefault(step, {"global_step": step, "_step": step})
        expected[step].update({f"{split}/{name}": value for name, value in metrics.items()})
    assert wandb_run.history == [expected[step] for step in (5, 10, 15, 20)]
    if installed("semilearn-logging"):
        lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [(line["step"], line["split"], {name: line[name] for name in metrics}) for line, (_, _, metrics)
                in zip(lines, recorder.calls, strict=True)] == recorder.calls
    assert wandb_run.exit_code == 0
    assert list(wandb_run.of("stats")) == []  # system metrics off by default, as Aim's system tracking
    settings = result.algorithm.manager.infos["wandb"].plugin._run.settings
    assert settings.x_disable_stats is True


def test_system_metrics_are_sampled_when_asked(tmp_path: Path) -> None:
    result = train(tmp_path, "wandb.system_metrics_interval=2.5", "num_train_iter=2")
    assert result.status == "completed"
    settings = result.algorithm.manager.infos["wandb"].plugin._run.settings
    assert settings.x_disable_stats is False and settings.x_stats_sampling_interval == 2.5


def test_a_diverged_run_is_a_failed_wandb_run_with_exit_code_3(tmp_path: Path) -> None:
    from test_training import Poison

    from semilearn import TrainingError

    with pytest.raises(TrainingError):
        train(tmp_path, plugins=(Poison(step=7),))
    (run_dir,) = (tmp_path / "runs").iterdir()
    wandb_run = _only_wandb_run(run_dir)
    assert wandb_run.exit_code == 3
    assert [row["global_step"] for row in wandb_run.history] == [5]  # nothing after the loss went NaN


@pytest.mark.together
@pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="needs semilearn-checkpoint")
def test_a_resumed_run_continues_the_same_wandb_run_and_its_steps(tmp_path: Path) -> None:
    import torch

    first = train(tmp_path, "stop_step=10")
    assert first.status == "interrupted"
    (earlier,) = wandb_runs(first.run_dir)
    run_id = earlier.run.run_id
    saved = torch.load(first.run_dir / "checkpoints/last.pt", weights_only=True)
    assert saved["plugins"]["wandb"] == {"run_id": run_id}
    assert earlier.exit_code == 1  # stopped at stop_step: not a finished run

    second = train(tmp_path, resume="auto")
    assert second.status == "completed" and second.run_dir == first.run_dir
    earlier, later = wandb_runs(first.run_dir)
    assert later.run.run_id == run_id and later.folder.name.endswith(f"-{run_id}")
    assert later.config["versions"]["semilearn-core"]  # the resumed part carries the config too
    steps = [row["global_step"] for run in (earlier, later) for row in run.history]
    assert steps == [5, 10, 15, 20]
    assert all(row["_step"] == row["global_step"] for run in (earlier, later) for row in run.history)
    assert later.exit_code == 0


def test_a_failing_log_call_warns_once_and_training_completes(cli, tmp_path: Path, monkeypatch) -> None:
    """Fault injection: ``wandb.Run.log`` is patched in this process to raise."""
    from wandb.sdk.wandb_run import Run

    def broken_log(self: Any, data: Any, step: Any = None, commit: Any = None) -> None:
        raise ConnectionError("injected: the tracker is unreachable")

    monkeypatch.setattr(Run, "log", broken_log)
    result = cli("run", *FAST, "--set", "save_dir=runs", *ONLY_WANDB)
    assert result.code == 0, result.err
    assert "completed at step 20/20" in result.out
    warnings = [line for line in result.out.splitlines() if line.startswith("warning: wandb:")]
    assert warnings == [
        "warning: wandb: the tracker failed in log at step 5 (ConnectionError: injected: the tracker is "
        "unreachable); training goes on; further failures are counted and reported at the end "
        "(set wandb.strict=true to stop the run instead)",
        "warning: wandb: 6 tracker calls failed and were dropped (log 6 of 6); first failure: ConnectionError: "
        "injected: the tracker is unreachable (in log at step 5)",
    ]
    wandb_run = _only_wandb_run(tmp_path / "runs/flexmatch_digits_40_0")
    assert wandb_run.history == [] and wandb_run.exit_code == 0  # nothing logged, but finished cleanly


def test_strict_makes_a_tracker_failure_stop_the_run(cli, tmp_path: Path, monkeypatch) -> None:
    """Fault injection: ``wandb.Run.log`` is patched in this process to raise."""
    from wandb.sdk.wandb_run import Run

    def broken_log(self: Any, data: Any, step: Any = None, commit: Any = None) -> None:
        raise ConnectionError("injected")

    monkeypatch.setattr(Run, "log", broken_log)
    result = cli("run", *FAST, "--set", "save_dir=runs", "--set", "wandb.strict=true", *ONLY_WANDB)
    assert result.code == 1
    assert result.err == ("error: wandb: the tracker failed in log at step 5 (ConnectionError: injected); "
                          "wandb.strict is on, so the run stops\n")
    assert _only_wandb_run(tmp_path / "runs/flexmatch_digits_40_0").exit_code == 1


@pytest.mark.together
@pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="needs semilearn-checkpoint")
def test_best_and_last_checkpoints_become_artifacts_with_aliases(tmp_path: Path) -> None:
    result = train(tmp_path, "wandb.upload_checkpoints=true", "num_eval_iter=5")
    folder = result.run_dir / "checkpoints"
    artifacts = _only_wandb_run(result.run_dir).of("artifact")
    assert [artifact.name for artifact in artifacts] == [f"checkpoint-{artifacts[0].run_id}"] * 2
    assert all(artifact.type == "model" for artifact in artifacts)
    for artifact, file_name, alias in zip(artifacts, ("best.pt", "last.pt"), ("best", "latest"), strict=True):
        assert alias in artifact.aliases
        (entry,) = artifact.manifest.contents
        assert entry.path == "checkpoint.pt"
        assert entry.digest == base64.b64encode(hashlib.md5((folder / file_name).read_bytes()).digest()).decode()


def test_disabled_mode_writes_nothing(tmp_path: Path) -> None:
    result = train(tmp_path, "wandb.mode=disabled")
    assert result.status == "completed"
    assert not (result.run_dir / "wandb").exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("wandb.mode=cloud", "configuration key 'wandb.mode' must be one of 'offline', 'online', 'disabled', "
                             "got 'cloud'"),
        ("wandb.project=a/b", "wandb.project must be 1 to 128 characters without / \\ # ? % or :, got 'a/b'"),
        ("wandb.tags=[" + "x" * 65 + "]", "wandb.tags: each tag must be 1 to 64 characters"),
        ("wandb.upload_checkpoint=true", "unknown key 'wandb.upload_checkpoint' (did you mean 'wandb.upload_checkpoints'?)"),
    ],
)
def test_bad_settings_are_one_clear_line(cli, setting: str, message: str) -> None:
    result = cli("run", *FAST, "--set", setting, *ONLY_WANDB)
    assert result.code == 2
    assert result.err.startswith(f"error: {message}") and result.err.count("\n") == 1


def test_plugin_discovery_does_not_import_wandb(tmp_path: Path) -> None:
    code = ("import sys; from semilearn.cli import main; main(['plugins']); "
            "print(sorted(name for name in ('wandb', 'aim') if name in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "wandb" in completed.stdout and "semilearn-wandb" in completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == "[]"
