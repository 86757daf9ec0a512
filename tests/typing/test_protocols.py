"""The typed hook points (``semilearn.protocols``) mirror the hook specifications, and mypy
checks plugins against them: the shipped plugins and the example pass, mistakes are caught.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

from semilearn import hookspecs, protocols
from semilearn.plugins import BUILTIN_PLUGINS, PluginManager

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHECKS = HERE / "check_plugins.py"
# where mypy finds every checked package from source, installed or not
SOURCES = [ROOT / "core", ROOT / "plugins" / "logging", ROOT / "plugins" / "checkpoint",
           ROOT / "examples" / "early-stopping"]
# mypy analyses torch once per machine, not once per test run
MYPY_CACHE = Path(tempfile.gettempdir()) / f"semilearn-test-mypy-cache-{os.getuid()}" / "checks"

CHECKED_PLUGINS = {
    **BUILTIN_PLUGINS,
    "logging": "semilearn_logging:LoggingHook",
    "checkpoint": "semilearn_checkpoint:CheckpointHook",
    "early_stopping": "semilearn_early_stopping:EarlyStopping",
}


def _load_generator():  # noqa: ANN202 - a module
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_protocols", HERE / "generate_protocols.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _alias(hook_point: str) -> str:
    return "".join(part.capitalize() for part in hook_point.split("_"))


def test_protocols_module_is_generated_from_the_current_hookspecs() -> None:
    generator = _load_generator()
    expected = generator.render((ROOT / "core" / "semilearn" / "hookspecs.py").read_text(encoding="utf-8"))
    current = (ROOT / "core" / "semilearn" / "protocols.py").read_text(encoding="utf-8")
    assert current == expected, "core/semilearn/protocols.py is out of date: python tests/typing/generate_protocols.py"


def test_every_hook_point_has_its_types_with_the_specification_arguments() -> None:
    manager = PluginManager()
    retired = {name for name in manager.hook_points() if getattr(manager.hook, name).spec.warn_on_impl is not None}
    assert retired == {"compute_mask", "make_pseudo_labels", "align_distribution"}  # no alias: deprecated
    assert sorted(protocols.HOOK_POINTS) == sorted(set(manager.hook_points()) - retired)
    in_source_order = [name for name, _ in sorted(
        ((name, function) for name, function in vars(hookspecs).items()
         if hasattr(function, "semilearn_spec") and name not in retired),
        key=lambda item: item[1].__code__.co_firstlineno,
    )]
    assert list(protocols.HOOK_POINTS) == in_source_order
    for name in protocols.HOOK_POINTS:
        spec_arguments = list(inspect.signature(getattr(hookspecs, name)).parameters)
        full = getattr(protocols, f"_{_alias(name)}__" + "__".join(spec_arguments))
        assert list(inspect.signature(full.__call__).parameters)[1:] == spec_arguments
        assert hasattr(protocols, _alias(name)) and hasattr(protocols, _alias(name) + "Wrapper")


def _hook_implementations(target: str) -> dict[str, str]:
    """method name -> the alias its check must use, for every @hookimpl of the class."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # not installed here: read it from its source folder
        sys.path[:0] = [str(path) for path in SOURCES]
        try:
            module = importlib.import_module(module_name)
        finally:
            del sys.path[: len(SOURCES)]
    cls = getattr(module, attribute)
    implementations = {}
    for name in dir(cls):
        options = getattr(getattr(cls, name, None), "semilearn_impl", None)
        if options is not None:
            wrapper = options.get("wrapper") or options.get("hookwrapper")
            implementations[name] = _alias(name) + ("Wrapper" if wrapper else "")
    return implementations


def _checked_lines() -> dict[str, dict[str, str]]:
    """From check_plugins.py: class name -> {method: alias} of its annotated assignments."""
    tree = ast.parse(CHECKS.read_text(encoding="utf-8"))
    instances: dict[str, str] = {}
    checked: dict[str, dict[str, str]] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            instances[node.targets[0].id] = node.value.func.id
        elif (isinstance(node, ast.AnnAssign) and isinstance(node.value, ast.Attribute)
              and isinstance(node.value.value, ast.Name) and isinstance(node.annotation, ast.Attribute)):
            cls = instances[node.value.value.id]
            checked.setdefault(cls, {})[node.value.attr] = node.annotation.attr
    return checked


@pytest.mark.parametrize("plugin", sorted(CHECKED_PLUGINS))
def test_check_file_covers_every_hook_implementation(plugin: str) -> None:
    target = CHECKED_PLUGINS[plugin]
    implementations = _hook_implementations(target)
    checked = _checked_lines().get(target.partition(":")[2], {})
    assert checked == implementations, (
        f"tests/typing/check_plugins.py must check exactly the hook implementations of {target}"
    )


MISTAKES = '''
from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

from semilearn import Hook, hookimpl

if TYPE_CHECKING:
    from semilearn import RunView, protocols


class Wrong(Hook):
    @hookimpl
    def after_evaluate(self, algorithm: RunView, step: str, metrics: Mapping[str, float]) -> None: ...

    @hookimpl
    def log(self, algorithm: RunView, stepp: int) -> None: ...

    @hookimpl
    def after_train_step(self, algorithm: RunView, outputs: dict[str, Any]) -> None: ...

    @hookimpl
    def evaluate(self, algorithm: RunView, step: int) -> list[float]:
        return []

    @hookimpl(wrapper=True)
    def collect_metrics(self, step: int) -> Generator[None, Any, Any]:
        return (yield)

    @hookimpl
    def before_run(self, algorithm: RunView, extra: int) -> None: ...

    @hookimpl
    def on_step_end(self, step: int) -> None: ...  # a subset of the arguments: correct


if TYPE_CHECKING:
    wrong = Wrong()
    a: protocols.AfterEvaluate = wrong.after_evaluate  # error: step is an int
    b: protocols.Log = wrong.log  # error: no argument stepp
    c: protocols.AfterTrainStep = wrong.after_train_step  # error: outputs is a Mapping, not a dict
    d: protocols.Evaluate = wrong.evaluate  # error: returns a mapping or None
    e: protocols.CollectMetrics = wrong.collect_metrics  # error: a wrapper
    f: protocols.CollectMetricsWrapper = wrong.collect_metrics
    g: protocols.BeforeRun = wrong.before_run  # error: extra is not an argument
    h: protocols.OnStepEnd = wrong.on_step_end
'''


def test_mypy_passes_the_plugins_and_catches_wrong_signatures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mypy = pytest.importorskip("mypy.api")
    mistakes = tmp_path / "mistakes.py"
    mistakes.write_text(MISTAKES, encoding="utf-8")
    monkeypatch.setenv("MYPYPATH", os.pathsep.join(str(path) for path in SOURCES))
    monkeypatch.chdir(tmp_path)
    out, err, status = mypy.run([
        "--config-file", os.devnull, "--cache-dir", str(MYPY_CACHE), "--check-untyped-defs",
        "--no-error-summary", "--hide-error-context", str(CHECKS), str(mistakes),
    ])
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert not [line for line in errors if "check_plugins.py" in line], out + err
    expected = [number for number, line in enumerate(MISTAKES.splitlines(), start=1) if "# error:" in line]
    found = sorted({int(re.match(r".*mistakes\.py:(\d+): error:", line).group(1)) for line in errors})  # type: ignore[union-attr]
    assert found == expected, out + err
