"""semilearn-aim with a real Aim repository, read back through Aim's own query API.

Every read happens in a fresh Python process (:func:`read_repo`), so what the tests see is
what any other Aim client -- a notebook, ``aim up`` -- sees once a run has ended.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from conftest import FAST, installed
from semilearn import Hook, hookimpl

pytestmark = pytest.mark.skipif(not installed("semilearn-aim"), reason="semilearn-aim is not installed")

ONLY_AIM = ("-p", "no:wandb")

_READ_REPO = r"""
import json, sys
from aim import Repo
from aim.sdk.types import QueryReportMode

repo = Repo.from_path(sys.argv[1])
quiet = QueryReportMode.DISABLED
runs = []
for collection in repo.query_runs(sys.argv[2], report_mode=quiet).iter_runs():
    run = collection.run
    logs = run.get_terminal_logs()
    runs.append({
        "hash": run.hash, "name": run.name, "experiment": run.experiment, "active": run.active,
        "hparams": run["hparams"], "end": run.get("end"),
        "terminal": [line.data for line in logs.data.values_list()[0]] if logs else [],
    })
metrics = []
for metric in repo.query_metrics(sys.argv[3], report_mode=quiet).iter():
    steps, (values, epochs, _) = metric.data.items_list()
    metrics.append({"run": metric.run.hash, "name": metric.name, "context": metric.context.to_dict(),
                    "steps": list(steps), "values": list(values), "epochs": list(epochs)})
print(json.dumps({"runs": runs, "metrics": metrics}))
"""


def read_repo(repo: Path, run_query: str = "", metric_query: str = "") -> dict[str, Any]:
    """Runs and metrics of an Aim repository, queried with Aim's ``Repo`` API in a new process."""
    completed = subprocess.run([sys.executable, "-c", _READ_REPO, str(repo), run_query, metric_query],
                               capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def by_series(metrics: list[dict[str, Any]]) -> dict[tuple[str, str], dict[int, float]]:
    """``(subset, name)`` -> ``{step: value}`` from :func:`read_repo`'s metrics."""
    series: dict[tuple[str, str], dict[int, float]] = {}
    for metric in metrics:
        key = (metric["context"]["subset"], metric["name"])
        assert key not in series, f"two sequences for {key}"
        series[key] = dict(zip(metric["steps"], metric["values"], strict=True))
    return series


class LogRecorder(Hook):
    """Keeps every ``log`` call of a run: the values the engine handed to the trackers."""

    name = "log_recorder"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, str, dict[str, float]]] = []

    @hookimpl
    def log(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
        self.calls.append((step, split, dict(metrics)))

    def by_series(self) -> dict[tuple[str, str], dict[int, float]]:
        series: dict[tuple[str, str], dict[int, float]] = {}
        for step, split, metrics in self.calls:
            for name, value in metrics.items():
                series.setdefault((split, name), {})[step] = value
        return series


def train(tmp_path: Path, *overrides: str, plugins: tuple[object, ...] = (), resume: str | None = None) -> Any:
    """A FAST run in this process (``save_dir`` = tmp_path/runs, wandb off), optionally resumed."""
    from semilearn.plugins import PluginManager
    from semilearn.runner import load_config, run

    manager = PluginManager().load(blocked=("wandb",))
    for plugin in plugins:
        manager.add(plugin)
    settings = [item for item in FAST if item != "--set"] + [f"save_dir={tmp_path / 'runs'}"]
    resolution = load_config(manager, None, [*settings, *overrides])
    return run(resolution.config, manager, resume=resume)


# ---------------------------------------------------------------------------
# Tests.
# ---------------------------------------------------------------------------


@pytest.mark.together
def test_metrics_read_back_through_aims_query_api_equal_the_logged_values(tmp_path: Path) -> None:
    recorder = LogRecorder()
    result = train(tmp_path, "aim.experiment=digits", plugins=(recorder,))
    assert result.status == "completed"
    repo = read_repo(tmp_path / "runs", "run.end.status == 'completed'")
    (run,) = repo["runs"]
    assert run["name"] == result.run_dir.name and run["experiment"] == "digits" and not run["active"]
    assert run["end"] == {"status": "completed", "exit_code": 0, "step": 20}
    hparams = run["hparams"]
    versions = hparams.pop("versions")
    assert hparams == result.algorithm.config.to_dict()
    assert versions["semilearn-core"] and versions["aim"] == importlib.metadata.version("aim")
    assert versions["plugins"]["aim"]["distribution"] == "semilearn-aim"

    assert {metric["run"] for metric in repo["metrics"]} == {run["hash"]}
    tracked = by_series(repo["metrics"])
    assert tracked == recorder.by_series()
    assert {subset for subset, _ in tracked} == {"train", "eval"}
    assert tracked["train", "loss"].keys() == {5, 10, 15, 20} and tracked["eval", "top1_acc"].keys() == {10, 20}
    if installed("semilearn-logging"):
        lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
        from_file: dict[tuple[str, str], dict[int, float]] = {}
        for line in lines:
            for name in tracked.keys() & {(line["split"], key) for key in line}:
                from_file.setdefault(name, {})[line["step"]] = line[name[1]]
        assert from_file == tracked
        epochs = {(line["split"], line["step"]): line["epoch"] for line in lines}
        for metric in repo["metrics"]:
            subset = metric["context"]["subset"]
            assert metric["epochs"] == [epochs[subset, step] for step in metric["steps"]]


@pytest.mark.together
@pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="needs semilearn-checkpoint")
def test_a_resumed_run_continues_the_same_aim_run(tmp_path: Path) -> None:
    import torch

    first = train(tmp_path, "stop_step=10")
    assert first.status == "interrupted"
    (stopped,) = read_repo(tmp_path / "runs")["runs"]
    assert stopped["end"] == {"status": "interrupted", "exit_code": 1, "step": 10}
    saved = torch.load(first.run_dir / "checkpoints/last.pt", weights_only=True)
    assert saved["plugins"]["aim"] == {"run_id": stopped["hash"]}

    second = train(tmp_path, resume="auto")
    assert second.status == "completed"
    repo = read_repo(tmp_path / "runs")
    (finished,) = repo["runs"]
    assert finished["hash"] == stopped["hash"]
    assert finished["end"] == {"status": "completed", "exit_code": 0, "step": 20}
    tracked = by_series(repo["metrics"])
    assert tracked["train", "loss"].keys() == {5, 10, 15, 20}
    assert tracked["eval", "top1_acc"].keys() == {10, 20}


@pytest.mark.together
@pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="needs semilearn-checkpoint")
def test_a_run_locked_by_a_live_process_is_never_written_to(cli, tmp_path: Path) -> None:
    assert cli("run", *FAST, "--set", "save_dir=runs", "--set", "stop_step=10", *ONLY_AIM).code == 0
    (run,) = read_repo(tmp_path / "runs")["runs"]
    holder = subprocess.Popen(  # another live process writing to the same Aim run
        [sys.executable, "-c", "import sys, time, aim; run = aim.Run(sys.argv[1], repo=sys.argv[2], "
         "system_tracking_interval=None, capture_terminal_logs=False); print('holding', flush=True); time.sleep(300)",
         run["hash"], str(tmp_path / "runs")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        result = cli("run", *FAST, "--set", "save_dir=runs", "--resume", "auto", *ONLY_AIM)
    finally:
        holder.terminate()
        holder.wait(timeout=60)
    assert result.code == 0, result.err
    assert "completed at step 20/20" in result.out
    warnings = [line for line in result.out.splitlines() if line.startswith("warning: aim:")]
    assert len(warnings) == 2
    assert warnings[0].startswith(
        f"warning: aim: the tracker failed in start at step 10 (AimRunLocked: the Aim run {run['hash']} in runs is "
        "locked by another process (still running, or one that ran on another host); if none uses it any more, "
        f"release it with `aim runs --repo runs close {run['hash']}` and resume again); training goes on without "
        "tracking"
    )
    assert warnings[1].startswith("warning: aim: 4 tracker calls failed and were dropped (log 3 of 3, start 1 of 1)")
    assert sorted(by_series(read_repo(tmp_path / "runs")["metrics"])["train", "loss"]) == [5, 10]  # untouched


def test_a_failing_track_call_warns_once_and_training_completes(cli, tmp_path: Path, monkeypatch) -> None:
    """Fault injection: ``aim.Run.track`` is patched in this process to raise."""
    import aim

    def broken_track(self: Any, value: Any, name: Any = None, step: Any = None, epoch: Any = None,
                     *, context: Any = None) -> None:
        raise OSError("injected: the repository is unwritable")

    monkeypatch.setattr(aim.Run, "track", broken_track)
    result = cli("run", *FAST, "--set", "save_dir=runs", *ONLY_AIM)
    assert result.code == 0, result.err
    assert "completed at step 20/20" in result.out
    warnings = [line for line in result.out.splitlines() if line.startswith("warning: aim:")]
    assert warnings == [
        "warning: aim: the tracker failed in log at step 5 (OSError: injected: the repository is unwritable); "
        "training goes on; further failures are counted and reported at the end "
        "(set aim.strict=true to stop the run instead)",
        "warning: aim: 6 tracker calls failed and were dropped (log 6 of 6); first failure: OSError: injected: "
        "the repository is unwritable (in log at step 5)",
    ]
    repo = read_repo(tmp_path / "runs")
    (run,) = repo["runs"]
    assert run["end"]["status"] == "completed" and not run["active"] and repo["metrics"] == []


def test_strict_makes_an_aim_failure_stop_the_run(cli, tmp_path: Path, monkeypatch) -> None:
    """Fault injection: ``aim.Run.track`` is patched in this process to raise."""
    import aim

    def broken_track(self: Any, *args: Any, **kwargs: Any) -> None:
        raise OSError("injected")

    monkeypatch.setattr(aim.Run, "track", broken_track)
    result = cli("run", *FAST, "--set", "save_dir=runs", "--set", "aim.strict=true", *ONLY_AIM)
    assert result.code == 1
    assert result.err == ("error: aim: the tracker failed in log at step 5 (OSError: injected); "
                          "aim.strict is on, so the run stops\n")
    (run,) = read_repo(tmp_path / "runs")["runs"]
    assert run["end"] == {"status": "failed", "exit_code": 1, "step": 5}


def test_a_diverged_run_is_a_failed_aim_run_with_exit_code_3(tmp_path: Path) -> None:
    from test_training import Poison

    from semilearn import TrainingError

    with pytest.raises(TrainingError):
        train(tmp_path, plugins=(Poison(step=7),))
    (run,) = read_repo(tmp_path / "runs")["runs"]
    assert run["end"] == {"status": "failed", "exit_code": 3, "step": 10}


def test_terminal_logs_are_kept_when_asked(process, tmp_path: Path) -> None:
    result = process("run", *FAST, "--set", "save_dir=runs", "--set", "aim.capture_terminal_logs=true", *ONLY_AIM)
    assert result.code == 0, result.err
    (run,) = read_repo(tmp_path / "runs")["runs"]
    terminal = "\n".join(run["terminal"])
    assert "run directory: runs/flexmatch_digits_40_0" in terminal and "aim: tracking to run" in terminal


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        return response.read()  # type: ignore[no-any-return]


def test_aim_up_shows_the_run_as_soon_as_training_ends(tmp_path: Path) -> None:
    train(tmp_path)
    (run,) = read_repo(tmp_path / "runs")["runs"]
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("aim")), "up", "--repo", str(tmp_path / "runs"), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env=dict(os.environ, AIM_UI_TELEMETRY_ENABLED="0"),
    )
    base = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                project = json.loads(_get(f"{base}/projects/"))
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    raise AssertionError(f"aim up did not start: {output}") from None
                time.sleep(0.5)
        assert Path(project["path"]) == tmp_path / "runs"
        assert run["hash"].encode() in _get(f"{base}/runs/search/run/?q=")  # the UI's run list
        info = json.loads(_get(f"{base}/runs/{run['hash']}/info/"))
        assert info["params"]["hparams"]["algorithm"] == "flexmatch"
        assert info["params"]["end"]["status"] == "completed"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("aim.system_tracking_interval=0", "configuration key 'aim.system_tracking_interval' must be a number or "
                                           "null >= 0.1 and <= 86400, got 0.0"),
        ("aim.capture=true", "unknown key 'aim.capture'"),
    ],
)
def test_bad_settings_are_one_clear_line(cli, setting: str, message: str) -> None:
    result = cli("run", *FAST, "--set", setting, *ONLY_AIM)
    assert result.code == 2
    assert result.err.startswith(f"error: {message}") and result.err.count("\n") == 1


def test_plugin_discovery_does_not_import_aim(tmp_path: Path) -> None:
    code = ("import sys; from semilearn.cli import main; main(['plugins']); "
            "print(sorted(name for name in ('aim', 'wandb') if name in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                               cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "semilearn-aim" in completed.stdout
    assert completed.stdout.strip().splitlines()[-1] == "[]"
