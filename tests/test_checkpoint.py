"""semilearn-checkpoint with real processes, signals and files."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_paths import fifo  # noqa: F401 - a fixture: a named pipe no one writes to

from conftest import FAST, external_plugins, installed, train_in_process
from semilearn import CheckpointError
from semilearn.data import InputSpec
from semilearn.rundir import CHECKPOINT_FORMAT

pytestmark = pytest.mark.skipif(not installed("semilearn-checkpoint"), reason="semilearn-checkpoint is not installed")

TIMING_KEYS = {"steps_per_sec", "samples_per_sec", "seconds", "elapsed", "time"}


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _checkpoints(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def _only_run(root: Path) -> Path:
    (run_dir,) = [path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")]
    return run_dir


def _same_tensors(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name


def _deterministic_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in path.read_text().splitlines()]


@pytest.mark.together
def test_resume_is_bit_identical_to_an_uninterrupted_run(cli, tmp_path: Path) -> None:
    common = (*FAST, "--set", "num_train_iter=40", "--set", "checkpoint.interval=10")
    started = time.perf_counter()
    assert cli("run", *common, "--set", "save_dir=straight").code == 0
    first = cli("run", *common, "--set", "save_dir=resumed", "--set", "stop_step=20")
    assert first.code == 0 and "interrupted at step 20/40" in first.out
    second = cli("run", *common, "--set", "save_dir=resumed", "--resume", "auto")
    assert second.code == 0, second.err
    seconds = time.perf_counter() - started
    assert "resuming from resumed/flexmatch_digits_40_0/checkpoints/" in second.out
    assert "(step 20)" in second.out and "completed at step 40/40" in second.out

    straight = _load(tmp_path / "straight/flexmatch_digits_40_0/checkpoints/last.pt")
    resumed = _load(tmp_path / "resumed/flexmatch_digits_40_0/checkpoints/last.pt")
    assert straight["step"] == resumed["step"] == 40
    _same_tensors(straight["model"], resumed["model"])
    _same_tensors(straight["plugins"]["ema"]["model"], resumed["plugins"]["ema"]["model"])
    assert straight["eval_history"] == resumed["eval_history"]
    assert straight["plugins"]["checkpoint"] == resumed["plugins"]["checkpoint"]
    if installed("semilearn-logging"):
        assert _deterministic_metrics(tmp_path / "straight/flexmatch_digits_40_0") == _deterministic_metrics(
            tmp_path / "resumed/flexmatch_digits_40_0"
        )
    print(f"\nresume identity (3 runs of 40/20/20 steps): {seconds:.1f} s")


@pytest.mark.together
def test_resume_after_a_crash_rewrites_the_metrics_after_the_checkpoint(cli, tmp_path: Path) -> None:
    if not installed("semilearn-logging"):
        pytest.skip("needs semilearn-logging")
    common = (*FAST, "--set", "num_train_iter=20", "--set", "num_log_iter=1", "--set", "checkpoint.interval=5")
    assert cli("run", *common, "--set", "save_dir=straight").code == 0
    assert cli("run", *common, "--set", "save_dir=crashed", "--set", "stop_step=13").code == 0
    run_dir = tmp_path / "crashed/flexmatch_digits_40_0"
    (run_dir / "checkpoints/last.pt").unlink()  # as if killed before anything after step 10 was saved
    resumed = cli("run", *common, "--set", "save_dir=crashed", "--resume", "auto")
    assert resumed.code == 0 and "(step 10)" in resumed.out
    assert _deterministic_metrics(tmp_path / "straight/flexmatch_digits_40_0") == _deterministic_metrics(run_dir)
    assert "3 metric lines after it dropped" in (run_dir / "log.txt").read_text()


def _start(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, merge_output: bool = False
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "semilearn", "run", *FAST, "--set", "save_dir=runs", *args],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merge_output else subprocess.PIPE,
        text=True, env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
    )


def _wait_for_training(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("run directory:"):
            return lines
    raise AssertionError("the run never started: " + "".join(lines))


def test_sigterm_saves_exits_143_and_the_resume_finishes_identically(cli, tmp_path: Path) -> None:
    common = ("--set", "num_train_iter=400", "--set", "num_eval_iter=100", "--set", "checkpoint.interval=0")
    process = _start(tmp_path, *common)
    _wait_for_training(process)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "runs").glob("*/checkpoints/best.pt")):  # step 100 is done, 300 steps to go
        assert process.poll() is None and time.monotonic() < deadline, "no best.pt after the first evaluation"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert "warning: SIGTERM received: finishing step" in out
    run_dir = _only_run(tmp_path / "runs")
    saved = _load(_checkpoints(run_dir) / "last.pt")
    assert 100 <= saved["step"] < 400
    assert f"interrupted at step {saved['step']}/400" in out

    resumed = cli("run", *FAST, "--set", "save_dir=runs", *common, "--resume", str(run_dir))
    assert resumed.code == 0, resumed.err
    assert f"(step {saved['step']})" in resumed.out and "completed at step 400/400" in resumed.out
    assert cli("run", *FAST, "--set", "save_dir=straight", *common).code == 0
    _same_tensors(_load(_checkpoints(run_dir) / "last.pt")["model"],
                  _load(tmp_path / "straight/flexmatch_digits_40_0/checkpoints/last.pt")["model"])


def test_a_lazy_run_killed_and_resumed_with_workers_is_bit_identical(cli, tmp_path: Path) -> None:
    """Samples read by two worker processes per stream; SIGKILL after a checkpoint, then resume: the
    loaders start again from the checkpoint's stream positions and read what the straight run read."""
    pytest.importorskip("PIL.Image")
    from datafiles import write_image_folder

    write_image_folder(tmp_path / "pets")
    common = ("--set", "dataset=image_folder", "--set", f"data_dir={tmp_path / 'pets'}", "--set", "num_labels=8",
              "--set", "data_loading=lazy", "--set", "num_workers=2", "--set", "num_train_iter=120",
              "--set", "num_eval_iter=60", "--set", "checkpoint.interval=20")
    process = _start(tmp_path, *common)
    _wait_for_training(process)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "runs").glob("*/checkpoints/last.pt")):
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint before the end"
        time.sleep(0.05)
    process.kill()  # SIGKILL: no checkpoint at the kill; the workers go with their parent
    process.communicate(timeout=120)
    run_dir = _only_run(tmp_path / "runs")
    saved = _load(_checkpoints(run_dir) / "last.pt")["step"]
    assert saved < 120

    resumed = cli("run", *FAST, "--set", "save_dir=runs", *common, "--resume", str(run_dir))
    assert resumed.code == 0, resumed.err
    assert "read from disk as steps need them, by 2 workers per stream" in resumed.out
    assert "completed at step 120/120" in resumed.out
    assert cli("run", *FAST, "--set", "save_dir=straight", *common).code == 0
    straight = _load(_only_run(tmp_path / "straight") / "checkpoints" / "last.pt")
    final = _load(_checkpoints(run_dir) / "last.pt")
    _same_tensors(final["model"], straight["model"])
    _same_tensors(final["plugins"]["ema"]["model"], straight["plugins"]["ema"]["model"])
    print(f"\nkilled after the checkpoint of step {saved}, resumed to 120: identical to the straight run")


def _read_until(process: subprocess.Popen[str], prefix: str) -> tuple[list[str], str]:
    """Lines of ``process`` (stdout and stderr merged) up to the first that starts with ``prefix``."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        if line.startswith(prefix):
            return lines, line
        lines.append(line)
    raise AssertionError(f"the process ended before printing {prefix!r}: " + "".join(lines))


# (how the process is killed, in order): random moments, and kills placed inside a write by
# the checkpoint writer's test switch (SEMILEARN_CHECKPOINT_TEST_PAUSE): after part of the
# temporary file is on disk, after it is complete but before the rename, and inside the
# hard link of last.pt. The third save of the process pauses, so each process makes progress.
ONLY_CHECKPOINT = {"SEMILEARN_DISABLE_PLUGIN_AUTOLOAD": "1", "SEMILEARN_PLUGINS": "checkpoint"}
KILLS = ["random", "write", "random", "rename", "random", "link"] * 2


def test_sigkill_at_random_and_chosen_moments_never_leaves_a_broken_newest_checkpoint(tmp_path: Path) -> None:
    from semilearn_checkpoint.files import (
        TEST_PAUSE_MARKER,
        TEST_PAUSE_VARIABLE,
        checkpoint_files,
        load_checkpoint_file,
    )

    rng = random.Random(1234)
    args = ("--set", "num_train_iter=1000000", "--set", "num_eval_iter=1000000", "--set", "num_log_iter=1000000",
            "--set", "batch_size=4", "--set", "uratio=1", "--set", "checkpoint.interval=1",
            "--set", "checkpoint.keep=2", "--resume", "auto")
    previous_step, random_mid_write, chosen = 0, 0, {"write": 0, "rename": 0, "link": 0}
    for attempt, kill in enumerate(KILLS):
        env = {TEST_PAUSE_VARIABLE: f"{kill}@3"} if kill != "random" else {}
        process = _start(tmp_path, *args, env={**ONLY_CHECKPOINT, **env}, merge_output=True)
        lines, _ = _read_until(process, "run directory:")
        if attempt:
            assert any(f"(step {previous_step})" in line for line in lines), lines
        if kill == "random":
            time.sleep(rng.uniform(0.2, 1.5))
        else:
            _, pause = _read_until(process, TEST_PAUSE_MARKER)
            assert pause.split()[3] == kill, pause
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
        folder = _checkpoints(_only_run(tmp_path / "runs"))
        leftovers = [path for path in folder.iterdir() if path.name.startswith(".tmp-")]
        newest = checkpoint_files(folder)[0]
        state = load_checkpoint_file(newest)  # raises if the newest file is not intact
        if kill == "random":
            random_mid_write += bool(leftovers)
            assert state["step"] >= previous_step
        else:
            # the process saved steps +1 and +2 and was killed inside the write of step +3
            (leftover,) = leftovers
            assert leftover.name in pause and leftover.stat().st_size > 0, (pause, leftovers)
            assert state["step"] == previous_step + 2 + (kill == "link"), (kill, state["step"], previous_step)
            assert load_checkpoint_file(folder / "last.pt")["step"] == previous_step + 2, kill
            if kill == "write":
                with pytest.raises(CheckpointError, match="truncated or corrupt"):
                    load_checkpoint_file(leftover)
            chosen[kill] += 1
        previous_step = state["step"]
    final = _start(tmp_path, *args, "--set", f"stop_step={previous_step + 3}", env=ONLY_CHECKPOINT)
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err
    assert f"(step {previous_step})" in out and f"interrupted at step {previous_step + 3}/" in out
    assert not [path for path in _checkpoints(_only_run(tmp_path / "runs")).iterdir() if path.name.startswith(".tmp-")]
    print(f"\n{len(KILLS)} SIGKILLs: {KILLS.count('random')} at random moments ({random_mid_write} of them "
          f"landed while a checkpoint was being written), and inside a write by construction: "
          f"{chosen['write']} mid-write, {chosen['rename']} before the rename, {chosen['link']} inside the link "
          f"of last.pt; reached step {previous_step}")


def _malicious_checkpoint(path: Path, marker: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"format": CHECKPOINT_FORMAT, "step": 1, "payload": Payload()}, path)


def test_a_malicious_checkpoint_is_refused_and_its_payload_never_runs(cli, tmp_path: Path) -> None:
    evil, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    _malicious_checkpoint(evil, marker)
    assert not marker.exists()
    result = cli("run", *FAST, "--resume", str(evil))
    assert result.code != 0
    assert result.err.startswith(f"error: refusing to load {evil}: it holds Python objects other than tensors")
    assert re.search(r"\(it asks for (_?io|builtins)\.open\)", result.err), result.err  # by Python version
    assert len(result.err.strip().splitlines()) == 1
    inspect = cli("checkpoint", "inspect", str(evil))
    assert inspect.code != 0 and "refusing to load" in inspect.err
    assert not marker.exists()
    # the payload is real: an unsafe load would have run it
    subprocess.run([sys.executable, "-c", f"import torch; torch.load({str(evil)!r}, weights_only=False)"],
                   capture_output=True, timeout=60)
    assert marker.exists()


def test_auto_resume_skips_corrupt_and_malicious_files_with_a_warning(cli, tmp_path: Path) -> None:
    common = (*FAST, "--set", "save_dir=runs", "--set", "checkpoint.interval=5", "--set", "num_train_iter=20")
    assert cli("run", *common, "--set", "stop_step=15").code == 0
    folder = tmp_path / "runs/flexmatch_digits_40_0/checkpoints"
    last = folder / "last.pt"
    data = last.read_bytes()
    last.unlink()  # break the hard link before truncating
    last.write_bytes(data[: len(data) // 2])
    explicit = cli("run", *common, "--resume", str(last))
    assert explicit.code != 0 and "is truncated or corrupt" in explicit.err
    marker = tmp_path / "pwned"
    (folder / "best.pt").unlink()  # a hard link to a periodic file: replace it, do not write through it
    _malicious_checkpoint(folder / "best.pt", marker)
    os.utime(folder / "best.pt", (time.time() + 5, time.time() + 5))  # the newest file of all
    result = cli("run", *common, "--resume", "auto")
    assert result.code == 0, result.err
    shown = Path("runs/flexmatch_digits_40_0/checkpoints")
    assert f"warning: skipping checkpoint {shown / 'best.pt'}: refusing to load" in result.out
    assert f"warning: skipping checkpoint {shown / 'last.pt'}: {shown / 'last.pt'} is truncated or corrupt" in result.out
    assert f"resuming from {shown / 'step_0000015.pt'} (step 15)" in result.out
    assert not marker.exists()


def test_retention_keeps_last_best_and_the_newest_periodic(cli, tmp_path: Path) -> None:
    result = cli("run", *FAST, "--set", "save_dir=runs", "--set", "checkpoint.interval=5",
                 "--set", "checkpoint.keep=2", "--set", "num_eval_iter=5")
    assert result.code == 0
    folder = tmp_path / "runs/flexmatch_digits_40_0/checkpoints"
    assert sorted(path.name for path in folder.iterdir()) == ["best.pt", "last.pt", "step_0000015.pt",
                                                              "step_0000020.pt"]
    best = _load(folder / "best.pt")
    history = best["eval_history"]
    best_entry = max(history[: len(history)], key=lambda entry: entry["top1_acc"])
    assert best["plugins"]["checkpoint"]["best_step"] == best["step"]
    assert best["plugins"]["checkpoint"]["best_value"] == best_entry["top1_acc"]
    assert _load(folder / "last.pt")["step"] == 20


@pytest.mark.parametrize("prefix", ["", "checkpoint."], ids=["engine keys", "former checkpoint keys"])
def test_best_by_minimum_loss(cli, tmp_path: Path, prefix: str) -> None:
    result = cli("run", *FAST, "--set", "save_dir=runs", "--set", f"{prefix}monitor=loss",
                 "--set", f"{prefix}mode=min", "--set", "num_eval_iter=5")
    assert result.code == 0, result.err
    best = _load(tmp_path / "runs/flexmatch_digits_40_0/checkpoints/best.pt")
    lowest = min(best["eval_history"], key=lambda entry: entry["loss"])
    assert best["step"] == lowest["step"]
    assert best["plugins"]["checkpoint"]["best_value"] == lowest["loss"]
    assert f"best.pt (step {lowest['step']}, eval loss {lowest['loss']:.4f})" in result.out
    assert f"· best {lowest['loss']:.4f} (step {lowest['step']})" in result.out  # the final line agrees
    deprecated = [line for line in result.out.splitlines() if "is deprecated" in line]
    if prefix:  # the former keys still work, each with one warning
        assert deprecated == [
            "warning: configuration key 'checkpoint.monitor' is deprecated: write the top-level key 'monitor' "
            "instead (monitor: loss)",
            "warning: configuration key 'checkpoint.mode' is deprecated: write the top-level key 'mode' instead "
            "(mode: min)",
        ]
    else:
        assert deprecated == []


def test_a_resume_with_another_monitor_says_which_evaluations_best_pt_comes_from(cli, tmp_path: Path) -> None:
    common = (*FAST, "--set", "save_dir=runs", "--set", "num_eval_iter=5")
    assert cli("run", *common, "--set", "stop_step=10").code == 0
    folder = tmp_path / "runs/flexmatch_digits_40_0/checkpoints"
    first_best = _load(folder / "best.pt")["step"]
    result = cli("run", *common, "--set", "monitor=loss", "--set", "mode=min", "--resume", "auto")
    assert result.code == 0, result.err
    assert (f"warning: best.pt (step {first_best}) was chosen by top1_acc (max); this run monitors loss (min): "
            "best.pt is now the best of the evaluations after step 10") in result.out
    best = _load(folder / "best.pt")
    lowest = min((entry for entry in best["eval_history"] if entry["step"] > 10), key=lambda entry: entry["loss"])
    assert best["step"] == lowest["step"] and best["plugins"]["checkpoint"]["monitor"] == "loss"


def test_an_unknown_monitor_warns_once(cli, tmp_path: Path) -> None:
    result = cli("run", *FAST, "--set", "save_dir=runs", "--set", "monitor=f1")
    assert result.code == 0
    assert result.out.count("warning: monitor 'f1' is not among the eval metrics (balanced_acc, loss, top1_acc); "
                            "evaluations without it are never the best (nor kept as best.pt)") == 1
    assert result.out.count("not among the eval metrics") == 1
    assert not (tmp_path / "runs/flexmatch_digits_40_0/checkpoints/best.pt").exists()


def test_async_saving_writes_the_same_checkpoints(cli, tmp_path: Path) -> None:
    common = (*FAST, "--set", "checkpoint.interval=5")
    assert cli("run", *common, "--set", "save_dir=sync").code == 0
    assert cli("run", *common, "--set", "save_dir=async", "--set", "checkpoint.async_save=true").code == 0
    for name in ("last.pt", "best.pt", "step_0000020.pt"):
        first = _load(tmp_path / "sync/flexmatch_digits_40_0/checkpoints" / name)
        second = _load(tmp_path / "async/flexmatch_digits_40_0/checkpoints" / name)
        _same_tensors(first["model"], second["model"])
        assert first["step"] == second["step"]


def test_resume_with_a_different_setup_is_refused(cli, tmp_path: Path) -> None:
    assert cli("run", *FAST, "--set", "save_dir=runs", "--set", "stop_step=5").code == 0
    result = cli("run", *FAST, "--set", "save_dir=runs", "--set", "save_name=flexmatch_digits_40_0",
                 "--set", "num_labels=80", "--resume", "auto")
    assert result.code != 0
    assert "cannot resume with a different setup (num_labels: 40 in the checkpoint, 80 now)" in result.err


def test_resume_a_run_directory_without_a_config_file(cli, tmp_path: Path) -> None:
    assert cli("run", *FAST, "--set", "save_dir=runs", "--set", "lr=0.01", "--set", "stop_step=6").code == 0
    result = cli("run", "--resume", "runs/flexmatch_digits_40_0")
    assert result.code == 0, result.err
    assert "configuration: runs/flexmatch_digits_40_0/config.yaml" in result.out
    assert "completed at step 20/20" in result.out


def test_resume_auto_with_nothing_to_resume_starts_fresh(cli) -> None:
    result = cli("run", *FAST, "--set", "save_dir=runs", "--resume", "auto")
    assert result.code == 0
    assert "--resume auto: no checkpoint of runs/flexmatch_digits_40_0; starting a new run" in result.out


def test_inspect_prints_step_metrics_config_and_versions(cli, tmp_path: Path) -> None:
    assert cli("run", *FAST, "--set", "save_dir=runs").code == 0
    path = "runs/flexmatch_digits_40_0/checkpoints/last.pt"
    result = cli("checkpoint", "inspect", path)
    assert result.code == 0
    assert "step 20/20" in result.out and "last eval: step 20, top1_acc" in result.out
    assert "algorithm=flexmatch" in result.out and "semilearn-checkpoint 0.1.0" in result.out
    info = json.loads(cli("checkpoint", "inspect", path, "--json").out)
    assert info["step"] == 20 and info["has_ema"] and info["config"]["num_labels"] == 40

    # a run directory means its last.pt (as plot and --resume take one); --checkpoint best
    assert cli("checkpoint", "inspect", "runs/flexmatch_digits_40_0").out == result.out
    best = cli("checkpoint", "inspect", "runs/flexmatch_digits_40_0", "--checkpoint", "best")
    assert best.code == 0 and best.out.startswith("runs/flexmatch_digits_40_0/checkpoints/best.pt")
    # a file that is not a PyTorch checkpoint is called that, not "Python objects that could run code"
    other = cli("checkpoint", "inspect", "runs/flexmatch_digits_40_0/config.yaml")
    assert other.code == 1
    assert other.err.strip() == "error: runs/flexmatch_digits_40_0/config.yaml is not a PyTorch checkpoint"


def test_import_usb_turns_a_usb_checkpoint_into_one_of_ours(cli, tmp_path: Path) -> None:
    from semilearn.nets.wrn import wrn_28_2

    torch.manual_seed(0)
    model, ema = wrn_28_2(10, InputSpec("image", (3, 32, 32))), wrn_28_2(10, InputSpec("image", (3, 32, 32)))
    usb = {"model": {f"module.{key}": value for key, value in model.state_dict().items()},  # saved under DDP
           "ema_model": ema.state_dict(), "optimizer": {}, "it": 7, "epoch": 1, "best_it": 5, "best_eval_acc": 0.5}
    torch.save(usb, tmp_path / "latest_model.pth")
    result = cli("checkpoint", "import-usb", "latest_model.pth", "--set", "net=wrn_28_2", "--set", "dataset=cifar10",
                 "--output", "imported.pt")
    assert result.code == 0, result.err
    assert result.out.startswith("imported.pt: USB's step 7 of wrn_28_2 (1467626 parameters), with its EMA weights")
    state = _load(tmp_path / "imported.pt")
    _same_tensors(state["model"], model.state_dict())
    _same_tensors(state["plugins"]["ema"]["model"], ema.state_dict())
    assert cli("checkpoint", "inspect", "imported.pt").code == 0
    resumed = cli("run", "--set", "dataset=cifar10", "--set", "net=wrn_28_2", "--resume", "imported.pt")
    assert resumed.code != 0 and "imported from USB: it holds weights, not a training state" in resumed.err

    wrong = cli("checkpoint", "import-usb", "latest_model.pth", "--set", "net=wrn_28_2", "--set", "dataset=cifar100",
                "--set", "num_classes=100", "--output", "wrong.pt")
    assert wrong.code != 0 and "classifier.weight' is (10, 128), network 'wrn_28_2' has (100, 128)" in wrong.err
    assert len(wrong.err.strip().splitlines()) == 1 and not (tmp_path / "wrong.pt").exists()
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    other = cli("checkpoint", "import-usb", "other.pt", "--set", "net=wrn_28_2", "--output", "x.pt")
    assert other.code != 0 and other.err.strip() == "error: other.pt is not a USB checkpoint (it has no 'model' state dict)"


def test_checkpoint_dir_is_one_folder_name_inside_the_run_directory(cli, tmp_path: Path) -> None:
    from test_paths import REFUSED_NAME, tree

    before = tree(tmp_path)
    for value, why in (("../ckpt", "it holds a path separator"), (str(tmp_path / "abs"), "it is an absolute path"),
                       ("..", "'..' is the parent folder"), ("", "it is empty")):
        result = cli("run", *FAST, "--set", "save_dir=runs", "--set", f"checkpoint.dir={value}")
        assert result.code == 2, value
        (line,) = result.err.strip().splitlines()
        assert line.startswith(f"error: configuration key 'checkpoint.dir' {REFUSED_NAME}{value!r} ({why}); "), line
    assert tree(tmp_path) == before  # no run directory, no checkpoint folder anywhere

    assert cli("run", *FAST, "--set", "save_dir=runs", "--set", "checkpoint.dir=ckpts").code == 0
    assert (tmp_path / "runs/flexmatch_digits_40_0/ckpts/last.pt").is_file()
    assert cli("checkpoint", "inspect", "runs/flexmatch_digits_40_0").code == 0  # found through its config.yaml

    # a run directory whose config.yaml sends its checkpoints elsewhere is refused by every reader
    shared = tmp_path / "runs" / "shared"
    shared.mkdir()
    (shared / "config.yaml").write_text("checkpoint:\n  dir: ../../elsewhere\n")
    refusal = f"{shared / 'config.yaml'}: checkpoint.dir {REFUSED_NAME}'../../elsewhere' (it holds a path separator); "
    before = tree(tmp_path)
    evaluate = cli("evaluate", str(shared))
    assert evaluate.code == 2 and evaluate.err.startswith(f"error: {refusal}") and evaluate.err.count("\n") == 1
    inspect = cli("checkpoint", "inspect", str(shared))
    assert inspect.code == 1 and inspect.err.startswith(f"error: {refusal}") and inspect.err.count("\n") == 1
    resume = cli("run", "--resume", str(shared))
    assert resume.code == 2 and resume.err.count("\n") == 1
    assert resume.err.startswith(f"error: configuration key 'checkpoint.dir' {REFUSED_NAME}'../../elsewhere'")
    assert tree(tmp_path) == before


def test_inspect_and_import_usb_refuse_a_named_pipe(cli, tmp_path: Path, fifo: Path) -> None:  # noqa: F811
    inspect = cli("checkpoint", "inspect", str(fifo))
    assert inspect.code == 1
    assert inspect.err == f"error: {fifo} is a named pipe, not a run directory or a checkpoint file\n"
    imported = cli("checkpoint", "import-usb", str(fifo), "--set", "net=wrn_28_2", "--output", "x.pt")
    assert imported.code == 1
    assert imported.err == f"error: USB checkpoint {fifo} is a named pipe, not a regular file\n"
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize(("poisoned_after", "message", "kept"), [
    (12, "the loss became NaN or infinite at step 13", 10),  # read at the log point of step 15
    (10, "the weights became NaN or infinite by step 10", 5),  # caught before evaluating step 10
])
def test_a_diverged_run_keeps_its_last_finite_checkpoint(tmp_path: Path, poisoned_after: int, message: str,
                                                         kept: int) -> None:
    from test_training import Poison

    from semilearn import TrainingError

    others = [name for name in external_plugins() if name != "checkpoint"]
    with pytest.raises(TrainingError) as raised:
        train_in_process(tmp_path, "checkpoint.interval=5", plugins=[Poison(poisoned_after)], blocked=others)
    folder = _checkpoints(_only_run(tmp_path / "runs"))
    assert str(raised.value) == (
        f"{message}: training diverged (is the learning rate too high?); the last checkpoint, with finite weights, "
        f"is {folder / 'last.pt'} (step {kept}); `--set nonfinite_loss=warn` trains on regardless"
    )
    state = _load(folder / "last.pt")
    assert state["step"] == kept
    tensors = [value for value in state["model"].values() if value.is_floating_point()]
    assert tensors and all(bool(torch.isfinite(value).all()) for value in tensors)
    written = sorted(path.name for path in folder.iterdir())
    assert written == sorted(["last.pt", *(["best.pt"] if kept >= 10 else []),
                              *(f"step_{n:07d}.pt" for n in range(5, kept + 1, 5))])


# ---------------------------------------------------------------------------
# A full disk (tests/small_disk.py: a real tmpfs where the test may mount one).
# ---------------------------------------------------------------------------

DISK = 400 * 1024  # a checkpoint of the digits run is about 263 KiB: the first fits, the second does not
SIXTY_STEPS = ("--set", "num_train_iter=60", "--set", "num_eval_iter=20", "--set", "num_log_iter=20",
               "--set", "checkpoint.interval=20")
FULL_DISK_MESSAGE = re.compile(
    r"no space left on the device while writing (?P<file>\S+/step_0000040\.pt): it needs about [\d.]+ KiB, "
    r"[\d.]+ [KMG]i?B free on \S+; nothing of it was kept and a resume would use (?P<resume>\S+/last\.pt) "
    r"\(step 20\), which is intact; free some space and resume, or set checkpoint\.on_disk_full=warn to train "
    r"on without it"
)


def _no_temporaries(folder: Path) -> None:
    assert not [path.name for path in folder.iterdir() if path.name.startswith(".")], list(folder.iterdir())


def test_a_full_disk_says_which_file_how_much_space_and_what_a_resume_would_use(tmp_path: Path) -> None:
    from small_disk import small_disk

    with small_disk(tmp_path, DISK) as disk:
        env = dict(os.environ, **ONLY_CHECKPOINT, **disk.env)
        args = [sys.executable, "-m", "semilearn", "run", *FAST, *SIXTY_STEPS, "--set", f"save_dir={disk.path}"]
        failed = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        last_line = failed.stderr.strip().splitlines()[-1]
        match = FULL_DISK_MESSAGE.fullmatch(last_line.removeprefix("error: "))
        assert match, last_line
        assert (failed.stdout + failed.stderr).count("no space left") == 1  # said once
        folder = _checkpoints(_only_run(disk.path))
        assert match["resume"] == str(folder / "last.pt") and match["file"] == str(folder / "step_0000040.pt")
        _no_temporaries(folder)
        assert sorted(path.name for path in folder.iterdir()) == ["best.pt", "last.pt", "step_0000020.pt"]
        assert _load(folder / "last.pt")["step"] == 20

        disk.grow(4 * 1024 * 1024)  # space freed: the run resumes where the message said
        resumed = subprocess.run([*args, "--resume", "auto"], capture_output=True, text=True, timeout=300, env=env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"resuming from {folder / 'last.pt'} (step 20)" in resumed.stdout + resumed.stderr
        assert _load(folder / "last.pt")["step"] == 60
        _no_temporaries(folder)


class _FreeSpace:
    """Frees space on the disk after ``step`` (as a user deleting old runs would)."""

    name = "free_space"

    def __init__(self, disk, step: int) -> None:  # noqa: ANN001 - a SmallDisk
        self.disk, self.step = disk, step

    from semilearn import hookimpl

    @hookimpl
    def on_step_end(self, algorithm, step: int) -> None:
        if step == self.step:
            self.disk.grow(4 * 1024 * 1024)


def test_on_disk_full_warn_trains_on_and_the_next_checkpoint_tries_again(tmp_path: Path, monkeypatch,
                                                                       caplog) -> None:
    from small_disk import budgeted_fdopen, small_disk

    with small_disk(tmp_path, DISK) as disk:
        if not disk.mounted:
            monkeypatch.setattr(os, "fdopen", budgeted_fdopen(disk.budget_file))
        others = [name for name in external_plugins() if name != "checkpoint"]
        settings = [item for item in SIXTY_STEPS if item != "--set"]
        with caplog.at_level("INFO", logger="semilearn"):
            result = train_in_process(tmp_path, *settings, "checkpoint.on_disk_full=warn", f"save_dir={disk.path}",
                                      plugins=[_FreeSpace(disk, step=50)], blocked=others)
        assert result.status == "completed" and result.exit_code == 0
        folder = _checkpoints(result.run_dir)
        warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
        assert len(warnings) == 2, warnings
        assert warnings[0].startswith(f"checkpoint of step 40 not saved: no space left on the device while writing "
                                      f"{folder / 'step_0000040.pt'}: it needs about ")
        assert warnings[0].endswith(f"a resume would use {folder / 'last.pt'} (step 20), which is intact; training "
                                    "goes on (checkpoint.on_disk_full: warn) and the next checkpoint tries again")
        best = _load(folder / "best.pt")  # step 20 or 60: whichever evaluation written was better
        assert warnings[1] == (f"checkpoints: {folder / 'last.pt'} (step 60), best.pt (step {best['step']}, eval accuracy "
                               f"{100 * best['plugins']['checkpoint']['best_value']:.2f}%), "
                               "2 periodic; not written, the disk being full: step 40")
        assert sorted(path.name for path in folder.iterdir()) == ["best.pt", "last.pt", "step_0000020.pt",
                                                                  "step_0000060.pt"]
        assert _load(folder / "last.pt")["step"] == 60
        _no_temporaries(folder)
