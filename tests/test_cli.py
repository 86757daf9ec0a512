"""The command line: help without torch, listing commands, one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FAST, external_plugins, installed


def _imports_torch(*args: str) -> bool:
    """Run the CLI in a fresh interpreter and report whether torch got imported."""
    code = (
        "import sys\n"
        "from semilearn.cli import main\n"
        f"code = main({list(args)!r})\n"
        "print('torch-imported:', 'torch' in sys.modules)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    last = output.strip().splitlines()[-1]
    assert last.startswith("torch-imported:"), output
    return last.endswith("True")


@pytest.mark.together
def test_help_and_plugins_do_not_import_torch() -> None:
    assert not _imports_torch("--help")
    assert not _imports_torch("plugins", "--json")
    assert not _imports_torch("run", "--help")
    assert _imports_torch("algorithms")  # the check itself can tell


def test_help_lists_the_commands(cli) -> None:
    result = cli("--help")
    assert result.code == 0
    for command in ("run", "plugins", "algorithms", "config"):
        assert command in result.out


def test_version(cli) -> None:
    from semilearn import __version__

    result = cli("--version")
    assert result.code == 0 and __version__ in result.out


def test_plugins_json_lists_builtins_with_call_order(cli) -> None:
    result = cli("plugins", "--json")
    assert result.code == 0
    listing = json.loads(result.out)
    by_name = {record["name"]: record for record in listing["plugins"]}
    for name in ("catalog", "ema", "evaluation", "timing"):
        assert by_name[name]["builtin"] is True
        assert by_name[name]["distribution"] == "semilearn-core"
        assert by_name[name]["status"] == "active"
    assert "after_train_step" in by_name["ema"]["hooks"]
    assert listing["call_order"]["evaluate"][-1] == "evaluation"
    assert listing["call_order"]["after_train_step"][0] == "ema"


def test_plugins_table_and_blocking_a_builtin(cli) -> None:
    result = cli("plugins", "-p", "no:timing")
    assert result.code == 0
    assert "timing" in result.out and "disabled" in result.out
    assert "call order:" in result.out
    assert "timing" not in result.out.split("call order:")[1]


def test_the_catalog_cannot_be_disabled(cli) -> None:
    result = cli("plugins", "-p", "no:catalog")
    assert result.code != 0
    assert result.err.strip() == (
        "error: the built-in plugin 'catalog' provides the algorithms, data sets and networks and cannot be disabled"
    )


def test_algorithms_lists_descriptions_and_keys(cli) -> None:
    result = cli("algorithms")
    assert result.code == 0
    assert "fixmatch" in result.out and "supervised" in result.out
    assert "p_cutoff=0.95" in result.out
    entries = {entry["name"]: entry for entry in json.loads(cli("algorithms", "--json").out)}
    assert entries["fixmatch"]["keys"]["T"] == 0.5
    assert entries["fixmatch"]["plugin"] == "catalog"


def test_config_show_prints_the_resolved_configuration(cli, tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("algorithm: supervised\nlr: 0.1\n")
    result = cli("config", "show", str(config_file), "--set", "seed=4")
    assert result.code == 0
    shown = yaml.safe_load(result.out)
    assert shown["algorithm"] == "supervised" and shown["lr"] == 0.1 and shown["seed"] == 4
    assert shown["num_train_iter"] > 0 and "p_cutoff" not in shown


def test_config_show_schema_lists_every_key(cli) -> None:
    from semilearn.config import CORE_OPTIONS

    result = cli("config", "show", "--schema")
    assert result.code == 0
    for option in CORE_OPTIONS:
        assert f"  {option.name}: " in result.out
    assert "p_cutoff: number = 0.95" in result.out


def _one_line_error(result, expected: str) -> None:
    assert result.code != 0
    assert "Traceback" not in result.text
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: ")
    assert expected in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run", "missing.yaml"), "configuration file not found: missing.yaml"),
        (("run", "--set", "algorithm=fixmach"), "unknown algorithm 'fixmach' (did you mean 'fixmatch'?); known: "),
        (("run", "--set", "dataset=digit"), "unknown dataset 'digit' (did you mean 'digits'?); known: "),
        (("run", "--set", "net=wrn28"), "unknown net 'wrn28'"),
        (("run", "--set", "num_labels=2000"), "asks for 200 labels per class, but class"),
        (("run", "--set", "num_labels=45"), "num_labels (45) must be a multiple of the 10 classes"),
        (("run", "--set", "batch_size=0"), "'batch_size' must be an integer >= 1, got 0"),
        (("run", "--set", "p_cutof=0.9"), "unknown configuration key 'p_cutof' (did you mean 'p_cutoff'?)"),
        (("run", "--set", "lr"), "--set expects KEY=VALUE"),
        (("run", "--set", "device=cuda"), "CUDA is not available"),
    ],
)
def test_bad_input_is_one_clear_line(cli, args: tuple[str, ...], expected: str) -> None:
    import torch

    if "device=cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    _one_line_error(cli(args[0], *FAST, *args[1:]), expected)


def test_bad_yaml_is_one_clear_line(cli, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("algorithm: fixmatch\n  lr: [0.1\n")
    _one_line_error(cli("run", "bad.yaml"), "bad.yaml is not valid YAML at line 2")


def test_debug_shows_the_traceback(cli) -> None:
    result = cli("run", "missing.yaml", "--debug")
    assert result.code != 0
    assert "Traceback" in result.err and "ConfigError" in result.err
    assert result.err.strip().endswith("error: configuration file not found: missing.yaml")


def test_unknown_command_is_a_usage_error(cli) -> None:
    result = cli("trian")
    assert result.code == 2
    assert "No such command 'trian'" in result.err


@pytest.mark.skipif(bool(external_plugins()), reason="plugins are installed in this environment")
def test_core_alone_runs_and_says_no_plugin_is_active(process) -> None:
    result = process("run", *FAST, "--set", "save_dir=runs")
    assert result.code == 0, result.err
    assert "plugins: none active" in result.out
    assert "completed at step 20/20" in result.out
    assert "final eval accuracy" in result.out


def test_a_diverging_run_exits_3_and_says_why_once(tmp_path: Path) -> None:
    # A learning rate of a million diverges within the first steps on any machine; the step varies.
    result = subprocess.run(
        [sys.executable, "-m", "semilearn", "run", *FAST, "--set", "lr=1e6", "--set", "save_dir=runs"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert output.count("NaN or infinite") == 1, output
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: the (loss|weights) became NaN or infinite (at|by) step \d+: training diverged .*",
                        last), last


def test_an_unknown_plugin_name_is_an_error_on_every_route(cli, monkeypatch) -> None:
    """A typo never trains with the plugin on: -p, the environment and the configuration key
    each stop with one line naming where the name came from, and a did-you-mean."""
    first = cli("config", "show", "-p", "no:timin")
    assert first.code == 2 and first.out == ""
    assert first.err.startswith("error: -p no:timin: no plugin named 'timin' is installed (did you mean 'timing'?); "
                                "installed: ")
    assert len(first.err.strip().splitlines()) == 1
    monkeypatch.setenv("SEMILEARN_DISABLE_PLUGINS", "timing,polices")
    second = cli("config", "show")
    assert second.code == 2
    assert second.err.startswith("error: SEMILEARN_DISABLE_PLUGINS=timing,polices: no plugin named 'polices' is "
                                 "installed (did you mean 'policies'?)")
    monkeypatch.delenv("SEMILEARN_DISABLE_PLUGINS")
    third = cli("config", "show", "--set", "disable_plugins=[timng]")
    assert third.code == 2
    assert third.err.startswith("error: configuration key 'disable_plugins': no plugin named 'timng' is installed "
                                "(did you mean 'timing'?)")
    # the project's own plugins may be turned off whether or not they are installed
    assert cli("config", "show", "-p", "no:wandb", "--set", "disable_plugins=[aim]").code == 0
    # ... and USB's use_wandb / use_aim never stop a run
    assert cli("config", "show", "--set", "use_wandb=false", "--set", "use_aim=false").code == 0


def test_the_first_line_comes_before_the_configuration_is_resolved(process, tmp_path: Path) -> None:
    """The headline is printed from the configuration as given, before torch and the
    trackers start: it is there even when resolving then fails, and a run prints it once
    (its log file has it too)."""
    failed = process("run", "--set", "algorithm=fixmatch", "--set", "lr=fast")
    assert failed.code == 2
    assert failed.out.splitlines()[0] == "semilearn 0.1.0 · fixmatch on digits (40 labels, seed 0)"
    assert "lr" in failed.err
    done = process("run", *FAST, "--set", "num_train_iter=2", "--set", "save_dir=runs", "--set", "seed=3")
    assert done.code == 0, done.err
    headline = "semilearn 0.1.0 · flexmatch on digits (40 labels, seed 3)"
    assert done.out.splitlines()[0] == headline and done.out.count(headline) == 1
    if installed("semilearn-logging"):
        (log,) = (tmp_path / "runs").glob("*/log.txt")
        assert log.read_text(encoding="utf-8").count(headline) == 1
