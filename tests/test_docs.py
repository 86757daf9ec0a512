"""The documentation site: ``mkdocs build --strict`` passes, and the reference pages hold
every hook point, configuration key and CLI command of the code they are built from.

Needs the docs toolchain (``pip install mkdocs mkdocs-material 'mkdocstrings[python]'``,
nox session ``docs``); skips without it. The site is built once, with the plugins
installed here, into a temporary folder.
"""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("mkdocs", "material", "mkdocstrings_handlers")),
    reason="the docs toolchain (mkdocs, mkdocs-material, mkdocstrings) is not installed",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(target)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**_environment(), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return target


def _environment() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if not key.startswith("SEMILEARN_")}


def _words(text: str) -> str:
    """Text without markup and punctuation, words separated by one space."""
    return " ".join(re.sub(r"\W+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text))).split())


def _page(site: Path, path: str) -> str:
    return (site / path / "index.html").read_text(encoding="utf-8")


def _manager():  # noqa: ANN202
    from semilearn.plugins import PluginManager

    return PluginManager().load(environ={})


def test_every_hook_point_is_in_the_hook_reference_and_on_the_concepts_page(site: Path) -> None:
    from semilearn import hookspecs

    hook_points = _manager().hook_points()
    assert len(hook_points) >= 19 and "after_evaluate" in hook_points
    reference = _page(site, "reference/hooks")
    concepts = _page(site, "concepts")
    reference_words = _words(reference)
    for name in hook_points:
        assert f'id="{name}"' in reference, name
        assert f'href="../reference/hooks/#{name}"' in concepts, name
        summary = (getattr(hookspecs, name).__doc__ or "").strip().split("\n\n")[0]
        summary = _words(re.sub(r":\w+:`~?([^`]+)`", r"\1", summary))  # without reStructuredText roles
        assert summary in reference_words, (name, summary)
    order = [reference.index(f'id="{name}"') for name in hook_points
             if f'id="{name}"' in reference]
    source_order = sorted(hook_points, key=lambda name: getattr(hookspecs, name).__code__.co_firstlineno)
    assert [reference.index(f'id="{name}"') for name in source_order] == sorted(order)


def test_every_configuration_key_is_in_the_configuration_reference(site: Path) -> None:
    from semilearn.config import CORE_OPTIONS

    manager = _manager()
    reference = _page(site, "reference/configuration")
    expected = {f"key-{option.name}": option for option in CORE_OPTIONS}
    for name, cls in manager.registry("algorithm").items():
        expected.update({f"key-{name}-{option.name}": option for option in cls.config_options})
    sections = manager.config_sections()
    assert {"logging", "checkpoint"} <= set(sections) or not _shipped_plugins_installed()
    for section, options in sections.items():
        expected.update({f"key-{section}-{option.name}": option for option in options})
    for anchor, option in expected.items():
        row = re.search(rf'<tr>\s*<td><span id="{re.escape(anchor)}"></span>(.*?)</tr>', reference, re.S)
        assert row is not None, anchor
        cells = re.findall(r"<td>(.*?)</td>", row.group(0), re.S)
        assert option.name in cells[0] and cells[1] == option.type_name, (anchor, cells)
        assert len(cells) == 6, cells
    # the plugin pages carry the same tables, generated from the same options
    for section in ("logging", "checkpoint"):
        if section in sections:
            page = _page(site, f"plugins/{section}")
            for option in sections[section]:
                assert f'id="key-{section}-{option.name}"' in page, (section, option.name)


def _shipped_plugins_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("semilearn_logging", "semilearn_checkpoint"))


def test_every_cli_command_is_in_the_cli_reference(site: Path) -> None:
    import click

    from semilearn.cli import build_cli

    manager = _manager()
    group = build_cli(manager)
    reference = _page(site, "reference/cli")
    text = html.unescape(re.sub(r"<[^>]+>", "", reference))

    def walk(command: click.Group, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], click.Command]]:
        found = []
        for name, child in command.commands.items():
            found.append(((*path, name), child))
            if isinstance(child, click.Group):
                found += walk(child, (*path, name))
        return found

    commands = walk(group, ())
    names = {" ".join(path) for path, _ in commands}
    assert {"run", "plugins", "algorithms", "config show", "new-plugin"} <= names
    for path, command in commands:
        assert f'id="cli-{"-".join(path)}"' in reference, path
        assert f"Usage: semilearn {' '.join(path)}" in text, path
        for parameter in command.params:
            for option in getattr(parameter, "opts", []):
                if option.startswith("-"):
                    assert option in text, (path, option)


def test_the_tutorial_shows_the_example_distribution_as_it_is(site: Path) -> None:
    page = html.unescape(re.sub(r"<[^>]+>", "", _page(site, "writing-plugins")))
    source = (ROOT / "examples/early-stopping/semilearn_early_stopping/__init__.py").read_text(encoding="utf-8")
    for marker in ("def after_evaluate(self, algorithm: RunView, step: int, metrics: Mapping[str, float])",
                   "def save_checkpoint(self, algorithm: RunView, state: MutableMapping[str, Any])",
                   'Option("patience", int, 5,', "algorithm.request_stop(reason)"):
        assert marker in source and marker in page, marker
    assert "--8<--" not in page
    assert 'early_stopping = "semilearn_early_stopping:EarlyStopping"' in page
    assert 'id="check-it-with-mypy"' in _page(site, "writing-plugins")


def test_links_to_repository_files_become_pages_of_the_site(site: Path) -> None:
    concepts = _page(site, "concepts")
    assert 'href="../source/core/semilearn/hookspecs.py/"' in concepts
    hookspecs_page = html.unescape(_page(site, "source/core/semilearn/hookspecs.py"))
    assert "def after_evaluate(" in re.sub(r"<[^>]+>", "", hookspecs_page)


def test_the_navigation_keeps_only_pages_that_exist() -> None:
    sys.path.insert(0, str(ROOT / "docs" / "_gen"))
    try:
        import reference
    finally:
        sys.path.remove(str(ROOT / "docs" / "_gen"))
    nav = [{"Home": "index.md"}, {"Plugins": [{"logging": "plugins/logging.md"}, {"wandb": "plugins/wandb.md"}]},
           {"Later": [{"a": "a.md"}]}, {"Web": "https://example.org/x.md"}]
    present = {"index.md", "plugins/logging.md"}
    assert reference.prune_nav(nav, present.__contains__) == [
        {"Home": "index.md"}, {"Plugins": [{"logging": "plugins/logging.md"}]}, {"Web": "https://example.org/x.md"}
    ]


def test_the_docs_build_strict_without_some_plugins_as_the_environment_says(tmp_path: Path) -> None:
    """The site builds with the core alone or with plugins turned off: a missing shipped
    plugin's options become a note (not a warning), and SEMILEARN_DISABLE_PLUGINS is honoured."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**_environment(), "NO_MKDOCS_2_WARNING": "1", "SEMILEARN_DISABLE_PLUGINS": "wandb,aim"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    wandb_page = html.unescape((tmp_path / "plugins" / "wandb" / "index.html").read_text(encoding="utf-8"))
    assert "when the docs are built with semilearn-wandb installed and active" in wandb_page
    reference = (tmp_path / "reference" / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "key-wandb-" not in reference and "key-aim-" not in reference
