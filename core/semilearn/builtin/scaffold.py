"""``semilearn new-plugin NAME``: write a ready plugin distribution.

The skeleton installs with pip and passes its own test unchanged::

    semilearn-NAME/
      pyproject.toml               the distribution, its entry point in ``semilearn.plugins``
      README.md                    install, configure, test
      semilearn_NAME/__init__.py   a Hook subclass: a config section and one hook implementation
      semilearn_NAME/py.typed      its types are checked by mypy against semilearn.protocols
      tests/test_NAME.py           `semilearn plugins` lists it; its hook fires during `semilearn run`

The command is added through the ``register_commands`` hook point, like any plugin's.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from ..errors import ConfigError
from ..hook import Hook, hookimpl, on_all_ranks

if TYPE_CHECKING:
    import click

__all__ = ["ScaffoldHook", "PluginNames", "plugin_names", "render_plugin", "write_plugin"]

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*$")


@dataclass(frozen=True)
class PluginNames:
    """Every name of a new plugin, derived from the one the user gave."""

    plugin: str  # entry-point name, config section, key in checkpoints: my_plugin
    distribution: str  # semilearn-my-plugin
    module: str  # semilearn_my_plugin
    cls: str  # MyPlugin

    @property
    def folder(self) -> str:
        return self.distribution


def plugin_names(name: str) -> PluginNames:
    """Check ``name`` and derive the distribution, module and class names from it.

    ``name`` is lower case, starts with a letter, and may use ``_`` or ``-`` between words;
    a leading ``semilearn-`` / ``semilearn_`` is dropped.
    """
    cleaned = re.sub(r"^semilearn[-_]", "", name.strip())
    if not _NAME_PATTERN.match(cleaned):
        raise ConfigError(
            f"plugin name '{name}' is not usable: use lower-case letters, digits and '_' or '-' between words, "
            "starting with a letter (for example: early_stopping)"
        )
    plugin = cleaned.replace("-", "_")
    if keyword.iskeyword(plugin):
        raise ConfigError(f"plugin name '{name}' is a Python keyword")
    from ..plugins import BUILTIN_PLUGINS, SHIPPED_PLUGINS

    if plugin in BUILTIN_PLUGINS:
        raise ConfigError(f"'{plugin}' is the name of a built-in plugin; choose another name")
    if plugin in SHIPPED_PLUGINS:
        raise ConfigError(f"'{plugin}' is the name of a plugin semilearn ships ({SHIPPED_PLUGINS[plugin].distribution}); "
                          "choose another name")
    return PluginNames(
        plugin=plugin,
        distribution="semilearn-" + plugin.replace("_", "-"),
        module="semilearn_" + plugin,
        cls="".join(part.capitalize() for part in plugin.split("_")),
    )


def render_plugin(names: PluginNames) -> dict[str, str]:
    """The skeleton's files: relative path to text."""
    values = {
        "plugin": names.plugin,
        "distribution": names.distribution,
        "module": names.module,
        "cls": names.cls,
        "core_version": __version__,
    }
    return {
        "pyproject.toml": _PYPROJECT.format(**values),
        "README.md": _README.format(**values),
        f"{names.module}/__init__.py": _MODULE.format(**values),
        f"{names.module}/py.typed": "",
        f"tests/test_{names.plugin}.py": _TEST.format(**values),
    }


def write_plugin(names: PluginNames, parent: Path) -> list[Path]:
    """Write the skeleton into ``parent / names.folder``; refuses to overwrite anything."""
    root = parent / names.folder
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ConfigError(f"{root} already exists and is not empty; choose another name or folder")
    written = []
    for relative, text in render_plugin(names).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


class ScaffoldHook(Hook):
    """Adds the ``new-plugin`` command."""

    @on_all_ranks
    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        import click

        @cli.command("new-plugin")
        @click.argument("name")
        @click.option("-d", "--directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                      show_default=True, help="Folder to create the distribution's folder in.")
        def new_plugin(name: str, directory: Path) -> int:
            """Write a ready plugin distribution, semilearn-NAME/, in the current folder.

            It holds a pyproject.toml with the entry point, a Hook subclass with a
            configuration section and one hook implementation, a test and a README; it
            installs with pip and passes its test unchanged. NAME is lower case with '_' or
            '-' between words, e.g. early_stopping.
            """
            names = plugin_names(name)
            from importlib.metadata import entry_points

            if any(entry_point.name == names.plugin for entry_point in entry_points(group="semilearn.plugins")):
                click.echo(f"warning: a plugin named '{names.plugin}' is already installed; "
                           "two plugins with one name cannot be installed together", err=True)
            written = write_plugin(names, directory)
            root = directory / names.folder
            click.echo(f"created {root}: distribution {names.distribution}, plugin '{names.plugin}', "
                       f"class {names.module}.{names.cls}")
            for path in written:
                click.echo(f"  {path}")
            steps = [
                (f"pip install -e '{root}[test]'", "installed means active"),
                ("semilearn plugins", "lists it with its hook points"),
                (f"pytest {root / 'tests'}", "its test passes as generated"),
            ]
            width = max(len(command) for command, _ in steps)
            click.echo("next:")
            for command, comment in steps:
                click.echo(f"  {command.ljust(width)}   # {comment}")
            return 0


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{distribution}"
version = "0.1.0"
description = "semilearn plugin: {plugin}"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["semilearn-core>={core_version}"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# The entry point makes it a plugin: installed means active. Its name ("{plugin}") is the
# plugin's name, its configuration section and its key in checkpoints.
[project.entry-points."semilearn.plugins"]
{plugin} = "{module}:{cls}"

[tool.setuptools]
packages = ["{module}"]

[tool.setuptools.package-data]
{module} = ["py.typed"]
"""

_README = """\
# {distribution}

A plugin for semilearn, the semi-supervised learning engine. It reports an eval metric
after every `every` evaluations; replace that with what your plugin does.

```bash
pip install -e '.[test]'                  # installed means active
semilearn plugins                         # {plugin}: distribution, version, hook points
semilearn run --set {plugin}.every=2      # its configuration section is `{plugin}`
semilearn run -p no:{plugin}              # a run without it
pytest tests
```

## Configuration (section `{plugin}`)

| key | default | meaning |
|---|---|---|
| metric | top1_acc | eval metric to report |
| every | 1 | report every this many evaluations |

## Next steps

- Every hook point, when it fires and its arguments: the hook reference of the semilearn
  documentation (or `semilearn/hookspecs.py`).
- Check your hook implementations with mypy: `{module}/__init__.py` assigns each one to
  its type from `semilearn.protocols` (`mypy {module}`).
"""

_MODULE = '''\
"""{distribution}: a semilearn plugin.

Generated by `semilearn new-plugin {plugin}`. The class below is the entry point
`{plugin}` (see pyproject.toml); the engine creates it once per process, validates the
section `{plugin}` of the configuration against `config_options` and binds it as
`self.config`, then calls the methods marked `@hookimpl` at their hook points.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from semilearn import Hook, Option, hookimpl

if TYPE_CHECKING:
    from semilearn import RunView

__all__ = ["{cls}"]

_log = logging.getLogger("semilearn")  # printed on the console and in log.txt


class {cls}(Hook):
    """Report the eval metric ``metric`` after every ``every`` evaluations."""

    rank_zero_only = True  # act once per run, on global rank 0, under torchrun too
    config_options = (
        Option("metric", str, "top1_acc", "Eval metric to report."),
        Option("every", int, 1, "Report every this many evaluations.", minimum=1),
    )

    def __init__(self) -> None:
        super().__init__()
        self.evaluations = 0

    @hookimpl
    def after_evaluate(self, algorithm: RunView, step: int, metrics: Mapping[str, float]) -> None:
        """Fires after every evaluation, with its metrics."""
        self.evaluations += 1
        metric = self.config.metric
        if self.evaluations % self.config.every == 0 and metric in metrics:
            _log.info(f"{plugin}: step {{step}} · {{metric}} {{metrics[metric]:.4f}}")


if TYPE_CHECKING:  # mypy checks each hook implementation against its hook point
    from semilearn import protocols

    _after_evaluate: protocols.AfterEvaluate = {cls}().after_evaluate
'''

_TEST = '''\
"""Tests of {distribution}, run against the installed distribution: `pytest tests`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def semilearn(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the `semilearn` command (every installed plugin active) in `cwd`."""
    env = {{key: value for key, value in os.environ.items() if not key.startswith("SEMILEARN_")}}
    return subprocess.run([sys.executable, "-m", "semilearn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_semilearn_lists_the_plugin(tmp_path: Path) -> None:
    result = semilearn("plugins", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plugins = {{record["name"]: record for record in json.loads(result.stdout)["plugins"]}}
    assert plugins["{plugin}"]["distribution"] == "{distribution}"
    assert plugins["{plugin}"]["status"] == "active"
    assert plugins["{plugin}"]["hooks"] == ["after_evaluate"]


def test_the_hook_fires_during_a_run(tmp_path: Path) -> None:
    tiny = ["num_train_iter=8", "num_eval_iter=4", "num_log_iter=4", "epoch=1", "batch_size=16", "uratio=2",
            "{plugin}.every=2"]
    result = semilearn("run", *(f"--set={{setting}}" for setting in tiny), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    reports = [line for line in result.stdout.splitlines() if line.startswith("{plugin}: ")]
    assert len(reports) == 1 and reports[0].startswith("{plugin}: step 8 · top1_acc ")
'''
