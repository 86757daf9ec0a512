"""semilearn-logging with real runs: console lines, bar on a real terminal, files, summary, plot."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FAST, installed, train_in_process
from semilearn import SemilearnError
from semilearn.paths import NAME_RULE

pytestmark = pytest.mark.skipif(not installed("semilearn-logging"), reason="semilearn-logging is not installed")

ONLY_LOGGING = ("-p", "no:checkpoint")


def _run_dir(root: Path) -> Path:
    (run_dir,) = [path for path in (root / "runs").iterdir() if path.is_dir() and not path.name.startswith(".")]
    return run_dir


def test_plain_lines_files_and_summary_when_not_a_terminal(process, tmp_path: Path) -> None:
    result = process("run", *FAST, "--set", "save_dir=runs", *ONLY_LOGGING)
    assert result.code == 0, result.err
    out = result.out
    assert "\r" not in out and "\x1b" not in out
    for step in (5, 10, 15, 20):
        assert f"step {step}/20 · loss " in out
    assert "eval step 10/20 · acc " in out and "eval step 20/20 · acc " in out
    # one summary, the engine's last line; the logging plugin adds where its files are
    (summary,) = [line for line in out.splitlines() if line.startswith("completed at step 20/20 in ")]
    assert "steps/s) · final eval accuracy " in summary and out.splitlines()[-1] == summary
    assert out.count("logs: ") == 1 and "wall time" not in out and "summary:" not in out

    run_dir = _run_dir(tmp_path)
    log = (run_dir / "log.txt").read_text()
    assert "semilearn " in log.splitlines()[0] and "run directory:" in log
    assert "step 15/20 · loss" in log and "completed at step 20/20 in " in log

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in records] == [
        (5, "train"), (10, "train"), (10, "eval"), (15, "train"), (20, "train"), (20, "eval")
    ]
    train = records[0]
    assert {"step", "epoch", "split", "loss", "sup_loss", "unsup_loss", "mask_ratio", "lr", "elapsed",
            "steps_per_sec"} <= set(train)
    assert train["epoch"] == 0 and records[-1]["epoch"] == 1
    assert 0 <= records[2]["top1_acc"] <= 1
    assert records[-1]["elapsed"] >= records[0]["elapsed"] > 0


def test_the_lines_name_the_best_of_the_monitored_metric(tmp_path: Path, capsys) -> None:
    from semilearn.cli import setup_console

    setup_console()
    train_in_process(tmp_path, "num_eval_iter=5", "monitor=loss", "mode=min", blocked=["checkpoint", "wandb", "aim"])
    out = capsys.readouterr().out
    records = [json.loads(line) for line in (_run_dir(tmp_path) / "metrics.jsonl").read_text().splitlines()]
    evaluations = [record for record in records if record["split"] == "eval"]
    assert [record["step"] for record in evaluations] == [5, 10, 15, 20]
    lowest = min(evaluations, key=lambda record: record["loss"])  # the first of equal values
    for done in range(1, 5):
        best = min(evaluations[:done], key=lambda record: record["loss"])
        line = next(line for line in out.splitlines() if line.startswith(f"eval step {5 * done}/20 · "))
        assert line.endswith(f" · best loss {best['loss']:.4f}"), line
    assert (f" · final eval loss {evaluations[-1]['loss']:.4f} (step 20) · best {lowest['loss']:.4f} "
            f"(step {lowest['step']})") in out


def test_interval_thins_console_lines_but_not_the_metrics_file(process, tmp_path: Path) -> None:
    result = process("run", *FAST, "--set", "save_dir=runs", "--set", "logging.interval=10", *ONLY_LOGGING)
    assert result.code == 0, result.err
    assert "step 5/20 · " not in result.out and "step 15/20 · " not in result.out
    assert "step 10/20 · " in result.out and "step 20/20 · " in result.out
    lines = (_run_dir(tmp_path) / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6
    assert "step 5/20 · " in (_run_dir(tmp_path) / "log.txt").read_text()


def test_a_live_bar_on_a_real_terminal(tmp_path: Path) -> None:
    main, child = pty.openpty()
    env = dict(os.environ, TERM="xterm", COLUMNS="120")
    process = subprocess.Popen(
        [sys.executable, "-m", "semilearn", "run", *FAST, "--set", "save_dir=runs", *ONLY_LOGGING],
        cwd=tmp_path, stdin=child, stdout=child, stderr=child, env=env, close_fds=True,
    )
    os.close(child)
    chunks = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(main)
    screen = b"".join(chunks).decode("utf-8", "replace")
    assert process.returncode == 0, screen
    assert "\r" in screen and "\x1b[K" in screen
    assert " it/s" in screen and "20/20 100%" in screen and re.search(r"\d+:\d\d<\d+:\d\d", screen)
    assert "| loss " in screen and " mask " in screen and " acc " in screen
    assert "eval step 10/20" in screen  # eval results stay on the screen above the bar
    assert "step 5/20 · loss" not in screen  # train lines go to the bar and the files only
    assert "step 5/20 · loss" in (_run_dir(tmp_path) / "log.txt").read_text()


def test_forced_bar_and_no_bar(process) -> None:
    on = process("run", *FAST, "--set", "save_dir=on", "--set", "logging.progress=on", *ONLY_LOGGING)
    assert on.code == 0 and "\r" in on.out and "\x1b[K" in on.out
    assert "step 5/20 · " not in on.out
    off = process("run", *FAST, "--set", "save_dir=off", "--set", "logging.progress=off", *ONLY_LOGGING)
    assert off.code == 0 and "\r" not in off.out and "\x1b" not in off.out and "step 5/20 · " in off.out


def test_a_killed_run_keeps_every_line_already_logged(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "semilearn", "run", *FAST, "--set", "num_train_iter=100000", "--set", "num_log_iter=1",
         "--set", "save_dir=runs", *ONLY_LOGGING],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert process.stdout is not None
    printed = 0
    for line in process.stdout:
        if line.startswith("step "):
            printed = int(line.split()[1].split("/")[0])
            if printed >= 12:
                break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    records = [json.loads(line) for line in (_run_dir(tmp_path) / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in records if r["split"] == "train"]
    assert train_steps[:printed] == list(range(1, printed + 1))


class _Boom:
    name = "boom"

    from semilearn import hookimpl

    @hookimpl
    def on_step_end(self, algorithm, step: int) -> None:
        if step == 7:
            raise ZeroDivisionError("boom at step 7")


def test_failure_gets_a_summary_and_the_traceback_in_the_log(tmp_path: Path, capsys) -> None:
    from semilearn.cli import setup_console

    setup_console()
    with pytest.raises(ZeroDivisionError):
        train_in_process(tmp_path, plugins=[_Boom()], blocked=["checkpoint"])
    out = capsys.readouterr().out
    assert re.search(r"\nfailed at step 7/20 in \d+:\d\d .*· ZeroDivisionError\n", out)
    assert "boom at step 7" not in out  # the message is the command's last line, read once (test_nonfinite)
    log = (_run_dir(tmp_path) / "log.txt").read_text()
    assert "Traceback (most recent call last)" in log and "boom at step 7" in log


def test_interrupt_gets_a_summary(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "semilearn", "run", *FAST, "--set", "num_train_iter=100000", "--set", "save_dir=runs",
         *ONLY_LOGGING],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("step "):
            break
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130
    assert re.search(r"\ninterrupted at step \d+/100000 in .* · SIGINT · resume with: semilearn run --resume ", out)


def test_plot_writes_a_png(process, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    assert process("run", *FAST, "--set", "save_dir=runs", *ONLY_LOGGING).code == 0
    run_dir = _run_dir(tmp_path)
    result = process("plot", str(run_dir))
    assert result.code == 0, result.err
    image = run_dir / "metrics.png"
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 10_000
    custom = process("plot", str(run_dir), "-o", "out/curves.png")
    assert custom.code == 0 and (tmp_path / "out" / "curves.png").is_file()


def test_plot_shares_the_step_axis_marks_the_best_and_compares_runs(process, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from semilearn.metrics import best_evaluation
    from semilearn_logging.plot import Run, plot_runs

    for seed in (0, 1):
        assert process("run", *FAST, "--set", f"seed={seed}", "--set", "save_dir=runs", *ONLY_LOGGING).code == 0
    first, second = sorted(path.parent for path in (tmp_path / "runs").glob("*/metrics.jsonl"))
    run = Run.read(first)
    figure = plot_runs([run], tmp_path / "one.png", "one")
    axes = {axis.get_title(): axis for axis in figure.axes if axis.get_visible()}
    assert list(axes) == ["training loss", "evaluation loss", "accuracy (%)", "mask ratio (%)", "learning rate"]
    panels = list(axes.values())
    assert all(panels[0].get_shared_x_axes().joined(panels[0], axis) for axis in panels[1:])  # one step axis
    accuracy = axes["accuracy (%)"]
    assert accuracy.get_ylim() == (0.0, 100.0) and axes["mask ratio (%)"].get_ylim() == (0.0, 100.0)
    curves = {line.get_label(): line for line in accuracy.get_lines()}
    evaluations = [record for record in run.records if record["split"] == "eval"]
    assert list(curves["eval/top1_acc"].get_ydata()) == pytest.approx([100 * e["top1_acc"] for e in evaluations])
    best = best_evaluation(evaluations, "top1_acc", "max")
    (star,) = [line for line in accuracy.get_lines() if line.get_marker() == "*"]
    assert star.get_label() == f"best {100 * best['top1_acc']:.2f}% (step {best['step']})"
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([best["step"]], [pytest.approx(100 * best["top1_acc"])])
    assert [line.get_label() for line in axes["evaluation loss"].get_lines()] == ["eval/loss"]  # a panel of its own

    compared = process("plot", str(first), str(second), "-o", "both.png")
    assert compared.code == 0, compared.err
    assert (tmp_path / "both.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figure = plot_runs([Run.read(first), Run.read(second)], tmp_path / "two.png")
    accuracy = next(axis for axis in figure.axes if axis.get_title() == "accuracy (%)")
    labels = [line.get_label() for line in accuracy.get_lines() if line.get_marker() != "*"]
    assert labels == [first.name, second.name]  # one curve and one colour per run
    assert len([line for line in accuracy.get_lines() if line.get_marker() == "*"]) == 2

    # the Python twin: the same figure, returned (written only when asked), pyplot left alone
    import matplotlib.pyplot as plt

    from semilearn_logging.plot import plot

    before = plt.get_fignums()
    twin = plot(first, second)
    assert plt.get_fignums() == before and not (tmp_path / "metrics-comparison.png").exists()
    assert twin.get_suptitle() == f"{first.name} vs {second.name}"
    accuracy = next(axis for axis in twin.axes if axis.get_title() == "accuracy (%)")
    assert [line.get_label() for line in accuracy.get_lines() if line.get_marker() != "*"] == [first.name, second.name]
    plot(first, output=tmp_path / "one-twin.png")
    assert (tmp_path / "one-twin.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SemilearnError, match="plot: .* is not a run directory"):
        plot(tmp_path / "nowhere")


def test_plot_without_matplotlib_says_how_to_get_it(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 1.0}\n')
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    result = cli("plot", str(run_dir))
    assert result.code == 1
    assert result.err.strip() == (
        "error: semilearn plot needs matplotlib, which is not installed: pip install 'semilearn-logging[plot]'"
    )


def test_plot_of_a_folder_without_metrics(cli, tmp_path: Path) -> None:
    result = cli("plot", str(tmp_path))
    assert result.code == 1 and "no metrics file in" in result.err


@pytest.mark.parametrize(("key", "value", "why"), [
    ("log_file", "../log.txt", "it holds a path separator"),
    ("metrics_file", "/tmp/metrics.jsonl", "it is an absolute path"),
    ("log_file", "log?.txt", "it holds ?"),
    ("metrics_file", "..", "'..' is the parent folder"),
])
def test_the_log_files_are_names_inside_the_run_directory(cli, tmp_path: Path, key: str, value: str,
                                                          why: str) -> None:
    from test_paths import REFUSED_NAME, tree

    before = tree(tmp_path)
    result = cli("run", *FAST, "--set", "save_dir=runs", "--set", f"logging.{key}={value}", *ONLY_LOGGING)
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"error: configuration key 'logging.{key}' {REFUSED_NAME}{value!r} ({why}); ")
    assert tree(tmp_path) == before


def test_plot_reads_the_metrics_file_a_run_directory_names_only_inside_it(cli, tmp_path: Path) -> None:
    from test_paths import REFUSED_NAME

    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 1.0}\n')
    run_dir = tmp_path / "runs" / "shared"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("logging:\n  metrics_file: ../../metrics.jsonl\n")
    result = cli("plot", str(run_dir))
    assert result.code == 2
    assert result.err == (f"error: {run_dir / 'config.yaml'}: logging.metrics_file {REFUSED_NAME}"
                          f"'../../metrics.jsonl' (it holds a path separator); {NAME_RULE}\n")
    assert not list(run_dir.glob("*.png")) and not list(tmp_path.glob("*.png"))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux), whose every write is ENOSPC")
@pytest.mark.parametrize("key", ["metrics_file", "log_file"])
def test_a_log_file_on_a_full_disk_stops_the_run_with_one_clear_line(cli, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    from semilearn import runner

    claim = runner.claim_run_directory

    def claim_beside_a_full_disk(config):  # noqa: ANN001, ANN202 - the runner's signature
        run_dir = claim(config)
        (run_dir / "full").symlink_to("/dev/full")  # the kernel answers "no space left" to every write
        return run_dir

    # the log files are names inside the run directory (logging.log_file=../full is refused)
    monkeypatch.setattr(runner, "claim_run_directory", claim_beside_a_full_disk)
    result = cli("run", *FAST, "--set", "save_dir=runs", "--set", f"logging.{key}=full", *ONLY_LOGGING)
    assert result.code == 1, result.text
    last = result.err.strip().splitlines()[-1]
    assert re.fullmatch(r"error: cannot write \S*/flexmatch_digits_40_0/full: no "
                        r"space left on the device \([\d.]+ [KMGT]iB free on \S+\); the run stops rather than lose "
                        r"its log", last), last
    assert "Logging error" not in result.err and "Traceback" not in result.err


def test_a_plugin_logging_at_before_run_reaches_log_txt_whatever_its_name(tmp_path: Path) -> None:
    """log.txt opens first at before_run (tryfirst), so a plugin called before the logging
    plugin (registered later, or named to sort first) does not lose its lines."""
    import logging

    from semilearn import Hook, hookimpl

    class Aardvark(Hook):
        name = "aardvark"

        @hookimpl
        def before_run(self, algorithm) -> None:
            logging.getLogger("semilearn").warning("aardvark: ready")

    result = train_in_process(tmp_path, "num_train_iter=2", plugins=[Aardvark()])
    assert result.status == "completed"
    order = result.algorithm.manager.call_order()["before_run"]
    assert order.index("logging") < order.index("aardvark")
    assert "aardvark: ready" in (result.run_dir / "log.txt").read_text(encoding="utf-8")


def test_the_bar_rate_follows_recent_steps_and_shows_elapsed_time() -> None:
    import io

    from semilearn_logging.progress import ProgressBar

    now = [0.0]
    bar = ProgressBar(io.StringIO(), 3000, clock=lambda: now[0])
    for step in range(1, 11):  # a slow start: 0.8 steps/s (start-up, first compilation ...)
        now[0] += 1 / 0.8
        bar.update(step)
    for step in range(11, 41):  # then 1.8 steps/s for 16.7 s, more than the window
        now[0] += 1 / 1.8
        bar.update(step)
    assert bar.rate() == pytest.approx(1.8)  # an average since the start would say 1.4
    line = bar.render(120)
    assert line.startswith("40/3000   1% ") and "0:29<27:24 1.8 it/s" in line  # elapsed<eta, eta at 1.8 it/s


def test_a_narrow_bar_drops_whole_fields() -> None:
    import io

    from semilearn_logging.progress import ProgressBar

    now = [0.0]
    bar = ProgressBar(io.StringIO(), 3000, clock=lambda: now[0])
    for step in range(1, 41):
        now[0] += 0.5
        bar.update(step)
    bar.set(loss="2.6847", mask="100.00%", acc="93.11%")
    fields = ["40/3000   1%", "0:20<24:40", "2.0 it/s", "loss 2.6847", "mask 100.00%", "acc 93.11%"]
    previous = None
    for width in range(120, 5, -1):
        line = bar.render(width)
        assert len(line) <= max(width - 1, len(fields[0])), (width, line)
        for field in fields:  # every field is whole or absent: no value is cut
            first = field.split()[0]
            if first in line.split():
                assert field in line, (width, line)
        assert line.startswith(fields[0])
        if previous is not None:
            assert len(line) <= len(previous)
        previous = line
    assert bar.render(60) == "40/3000   1% ░░░░░░░░░░░░ 0:20<24:40 2.0 it/s | loss 2.6847"
    assert bar.render(30) == "40/3000   1% 0:20<24:40"
    assert bar.render(10) == "40/3000   1%"


def test_prints_and_warnings_keep_clear_of_the_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """While the bar is shown, sys.stdout, sys.stderr and Python warnings go through the
    bar-aware stream: the bar is erased, the line written, the bar drawn again below it."""
    import sys
    import warnings

    from semilearn import Hook, hookimpl
    from semilearn_logging.progress import BarAwareStream

    class Chatty(Hook):
        name = "chatty"

        def __init__(self) -> None:
            super().__init__()
            self.streams: list[tuple[bool, bool]] = []

        @hookimpl
        def after_train_step(self, step: int) -> None:
            self.streams.append((isinstance(sys.stdout, BarAwareStream), isinstance(sys.stderr, BarAwareStream)))
            if step == 3:
                print("chatty: hello")
                warnings.warn("chatty: careful", UserWarning, stacklevel=1)

        @hookimpl
        def after_run(self) -> None:
            print("chatty: the end")

    from semilearn.cli import setup_console

    setup_console()  # as the command line does: the console on this test's stdout
    chatty = Chatty()
    before = (sys.stdout, sys.stderr)
    result = train_in_process(tmp_path, "num_train_iter=4", "logging.progress=on", plugins=[chatty])
    assert result.status == "completed"
    assert chatty.streams == [(True, True)] * 4
    assert (sys.stdout, sys.stderr) == before  # given back at the end
    captured = capsys.readouterr()
    # the bar (drawn with \r ... \x1b[K) is erased before the print, and drawn again after it
    assert re.search(r"\r\x1b\[Kchatty: hello\n\r\d/4 ", captured.out)
    # Python warnings go through logging (and so through the bar-aware console)
    assert any(record.name == "py.warnings" and "UserWarning: chatty: careful" in record.getMessage()
               for record in caplog.records)
    # the last frame comes before the lines printed at the end of the run
    assert captured.out.index("4/4 100%") < captured.out.index("chatty: the end")
    assert "\r" not in captured.out[captured.out.index("chatty: the end"):]
