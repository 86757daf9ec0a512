"""Shared helpers: run the CLI in-process or as a real subprocess, on tiny settings."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

# A run small enough for a test: a few seconds on two CPU cores.
FAST = (
    "--set", "num_train_iter=20",
    "--set", "num_eval_iter=10",
    "--set", "num_log_iter=5",
    "--set", "epoch=2",
    "--set", "batch_size=16",
    "--set", "uratio=2",
)


def pytest_configure(config: pytest.Config) -> None:
    """``SEMILEARN_TEST_ONEDNN=0`` runs the tests with oneDNN off in this process (``torch.backends.mkldnn``):
    the convolutions another CPU or build may compute without it (tests/parity/README.md, "Tolerances")."""
    if os.environ.get("SEMILEARN_TEST_ONEDNN") == "0":
        import torch

        torch.backends.mkldnn.enabled = False


def installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def external_plugins() -> list[str]:
    return sorted(ep.name for ep in importlib.metadata.entry_points(group="semilearn.plugins"))


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run ``semilearn ARGS`` in this process (fast); the working directory is tmp_path."""
    from semilearn.cli import main

    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def run_process(
    args: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> Result:
    """Run ``python -m semilearn ARGS`` as a real process."""
    full_env = dict(os.environ)
    full_env.pop("SEMILEARN_DISABLE_PLUGINS", None)
    full_env.pop("SEMILEARN_DISABLE_PLUGIN_AUTOLOAD", None)
    full_env.update(env or {})
    completed = subprocess.run(
        [sys.executable, "-m", "semilearn", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        timeout=timeout,
    )
    # decoded by hand: text mode would turn a progress bar's \r into \n
    return Result(completed.returncode, completed.stdout.decode("utf-8", "replace"),
                  completed.stderr.decode("utf-8", "replace"))


@pytest.fixture
def process(tmp_path: Path):
    """Run ``python -m semilearn ARGS`` as a subprocess in tmp_path."""

    def invoke(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        return run_process(args, cwd=tmp_path, env=env, timeout=timeout)

    return invoke


@pytest.fixture(autouse=True)
def _clean_plugin_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEMILEARN_DISABLE_PLUGINS", "SEMILEARN_DISABLE_PLUGIN_AUTOLOAD", "SEMILEARN_PLUGINS",
                 "SEMILEARN_RECORDER_FILE", "SEMILEARN_DEBUG", "SEMILEARN_DEBUG_HOOKS"):
        monkeypatch.delenv(name, raising=False)


def train_in_process(tmp_path: Path, *overrides: str, plugins: Sequence[object] = (), blocked: Sequence[str] = ()):
    """Run a training in this process with extra plugin objects registered; returns the RunResult."""
    from semilearn.plugins import PluginManager
    from semilearn.runner import load_config, run

    manager = PluginManager().load(blocked=blocked)
    for plugin in plugins:
        manager.add(plugin)
    settings = [item for item in FAST if item != "--set"]
    settings.append(f"save_dir={tmp_path / 'runs'}")
    resolution = load_config(manager, None, [*settings, *overrides])
    return run(resolution.config, manager)
