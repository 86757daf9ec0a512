"""Third-party plugins through real installed distributions and their entry points.

Needs the test distribution in tests/plugin_dists/recorder installed (nox session
``plugin_api`` and ``all``); skips otherwise. The broken distributions are installed
into a temporary folder with pip and put on PYTHONPATH for a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAST, installed

pytestmark = pytest.mark.skipif(
    not installed("semilearn-test-recorder"), reason="the test plugin distribution is not installed"
)

DISTS = Path(__file__).parent / "plugin_dists"


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_plugins_lists_the_distribution_its_hooks_and_the_call_order(process) -> None:
    result = process("plugins", "--json")
    assert result.code == 0, result.err
    listing = json.loads(result.out)
    by_name = {record["name"]: record for record in listing["plugins"]}
    recorder = by_name["recorder"]
    assert recorder["distribution"] == "semilearn-test-recorder"
    assert recorder["version"] == "1.2.3"
    assert recorder["builtin"] is False and recorder["status"] == "active"
    assert recorder["target"] == "semilearn_test_recorder:Recorder"
    assert {"before_run", "after_train_step", "log", "after_run", "register_commands"} <= set(recorder["hooks"])
    assert recorder["config_section"] == ["path", "fail_at", "fail_rank", "fail_step"]
    # tryfirst (ema) first, trylast (recorder_late) last, the rest last-registered first:
    # built-ins before installed plugins, installed ones in name order.
    order = listing["call_order"]["after_train_step"]
    assert order[0] == "ema" and order[-1] == "recorder_late"
    registered_before = [name for name in order[1:-1] if name < "recorder" or by_name[name]["builtin"]]
    assert all(order.index("recorder") < order.index(name) for name in registered_before)
    before_run = listing["call_order"]["before_run"]
    assert before_run[-1] == "recorder_late"
    # (logging's before_run is tryfirst: log.txt is open before anyone logs)
    earlier = [name for name in before_run[:-1]
               if (name < "recorder" or by_name[name]["builtin"]) and name != "logging"]
    assert all(before_run.index("recorder") < before_run.index(name) for name in earlier)


def test_hooks_fire_in_lifecycle_order_with_their_arguments(process, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    result = process("run", *FAST, "--set", f"recorder.path={calls}", "--set", f"recorder_late.path={calls}",
                     "--set", "num_train_iter=6", "--set", "epoch=2", "--set", "num_log_iter=2",
                     "--set", "num_eval_iter=3")
    assert result.code == 0, result.err
    records = _records(calls)
    early = [r for r in records if r["plugin"] == "recorder"]
    sequence = [(r["hook"], r.get("step", r.get("epoch"))) for r in early if r["hook"] != "configure"]
    steps = []
    for step in range(1, 7):
        steps += [("before_train_step", step), ("after_train_step", step)]
        if step % 2 == 0:
            steps.append(("log", step))
        if step % 3 == 0:
            steps += [("after_evaluate", step), ("log", step)]
        steps.append(("on_step_end", step))
        if step in (3, 6):
            steps.append(("after_train_epoch", step // 3 - 1))
        if step == 3:
            steps.append(("before_train_epoch", 1))
    expected = [("before_run", None), ("before_train_epoch", 0), *steps, ("after_run", None)]
    assert [item for item in sequence if item[0] != "save_checkpoint"] == expected
    assert early[0]["hook"] == "configure"

    by_hook = {}
    for record in early:
        by_hook.setdefault(record["hook"], []).append(record)
    train_logs = [r for r in by_hook["log"] if r["split"] == "train"]
    eval_logs = [r for r in by_hook["log"] if r["split"] == "eval"]
    assert {"loss", "sup_loss", "unsup_loss", "mask_ratio", "lr", "steps_per_sec"} <= set(train_logs[0]["metrics"])
    assert {"top1_acc", "balanced_acc", "loss"} <= set(eval_logs[0]["metrics"])
    assert by_hook["after_train_step"][0]["outputs"] == ["loss", "mask_ratio", "sup_loss", "unsup_loss"]
    assert all(r["global_step"] == r["step"] for r in by_hook["after_train_step"])
    assert all(r["global_step"] == r["step"] - 1 for r in by_hook["before_train_step"])
    assert by_hook["after_run"][0]["status"] == "completed" and by_hook["after_run"][0]["error"] is None

    # the trylast plugin is called after the other one at every shared hook point
    for position, record in enumerate(records):
        if record["plugin"] == "recorder_late" and record["hook"] == "on_step_end":
            earlier = [r for r in records[:position] if r["hook"] == "on_step_end" and r["step"] == record["step"]]
            assert [r["plugin"] for r in earlier] == ["recorder"]


def test_failure_in_a_hook_is_one_line_and_after_run_sees_it(process, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    result = process("run", *FAST, "--set", "recorder.fail_at=before_train_step",
                     "--set", f"recorder_late.path={calls}")
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        "error: RuntimeError: recorder failing in before_train_step as asked (run with --debug for the traceback)"
    ]
    after_run = [r for r in _records(calls) if r["hook"] == "after_run"]
    assert after_run == [{"plugin": "recorder_late", "hook": "after_run", "global_step": 0,
                          "algorithm_name": "flexmatch", "status": "failed"}]


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (("-p", "no:recorder"), {}),
        (("--set", "disable_plugins=[recorder]"), {}),
        ((), {"SEMILEARN_DISABLE_PLUGINS": "recorder"}),
        ((), {"SEMILEARN_DISABLE_PLUGIN_AUTOLOAD": "1"}),
    ],
    ids=["cli", "config", "env", "autoload-off"],
)
def test_blocking_a_plugin(process, tmp_path: Path, args: tuple[str, ...], env: dict[str, str]) -> None:
    calls = tmp_path / "calls.jsonl"
    result = process("run", *FAST, "--set", "num_train_iter=2", *args, env={"SEMILEARN_RECORDER_FILE": str(calls), **env})
    assert result.code == 0, result.err
    plugins = {r["plugin"] for r in _records(calls)} if calls.exists() else set()
    assert "recorder" not in plugins
    if "SEMILEARN_DISABLE_PLUGIN_AUTOLOAD" in env:
        assert plugins == set()
    else:
        assert plugins == {"recorder_late"}


def test_autoload_off_loads_only_the_named_plugins(process, tmp_path: Path) -> None:
    calls = tmp_path / "calls.jsonl"
    env = {"SEMILEARN_RECORDER_FILE": str(calls), "SEMILEARN_DISABLE_PLUGIN_AUTOLOAD": "1"}
    result = process("run", *FAST, "--set", "num_train_iter=2", "-p", "recorder", env=env)
    assert result.code == 0, result.err
    assert {r["plugin"] for r in _records(calls)} == {"recorder"}
    listing = json.loads(process("plugins", "--json", "-p", "recorder", env=env).out)
    status = {record["name"]: record["status"] for record in listing["plugins"]}
    assert status["recorder"] == "active" and status["recorder_late"] == "disabled"


def test_plugins_extend_the_registries_and_the_cli(process) -> None:
    assert "recorded_supervised" in process("algorithms").out
    result = process("run", *FAST, "--set", "algorithm=recorded_supervised", "--set", "num_train_iter=2")
    assert result.code == 0, result.err
    assert "recorded_supervised on digits" in result.out
    hello = process("recorder-hello")
    assert hello.code == 0 and hello.out.strip() == "hello from the recorder plugin"
    assert "recorder-hello" in process("--help").out


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("broken-site")
    for name in ("broken_import", "bad_hook"):
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
             "--target", str(target / name), str(DISTS / name)],
            check=True, capture_output=True, text=True,
        )
    return target


def test_a_plugin_that_fails_to_import_is_a_clear_error(process, broken_site: Path) -> None:
    env = {"PYTHONPATH": str(broken_site / "broken_import")}
    result = process("run", *FAST, env=env)
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err
    assert lines[0] == (
        "error: plugin 'broken' (distribution semilearn-test-broken 0.0.1) failed to import "
        "(ModuleNotFoundError: No module named 'semilearn_dependency_that_is_not_installed'); "
        "disable it with '-p no:broken' or SEMILEARN_DISABLE_PLUGINS=broken"
    )
    listing = process("plugins", env=env)
    assert listing.code == 1 and "broken" in listing.out and "error" in listing.out
    assert process("--help", env=env).code == 0
    blocked = process("run", *FAST, "--set", "num_train_iter=2", "-p", "no:broken", env=env)
    assert blocked.code == 0, blocked.err
    assert process("run", *FAST, "--set", "num_train_iter=2", "--set", "disable_plugins=[broken]", env=env).code == 0


def test_a_plugin_with_an_unknown_hook_point_is_a_clear_error(process, broken_site: Path) -> None:
    env = {"PYTHONPATH": str(broken_site / "bad_hook")}
    result = process("run", *FAST, env=env)
    assert result.code != 0
    assert result.err.strip().splitlines() == [
        "error: plugin 'badhook' (distribution semilearn-test-badhook 0.0.2) implements 'after_train_stepp', "
        "which is not a semilearn hook point (did you mean 'after_train_step'?); "
        "disable it with '-p no:badhook' or SEMILEARN_DISABLE_PLUGINS=badhook"
    ]
    assert process("run", *FAST, "--set", "num_train_iter=2", "-p", "no:badhook", env=env).code == 0
