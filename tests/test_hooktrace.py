"""SEMILEARN_DEBUG_HOOKS: one line per hook call, through real runs and the real plugin manager."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path

import pytest
import torch

from conftest import FAST, installed
from semilearn import Hook, hookimpl, hookspec
from semilearn.hooktrace import summarize
from semilearn.plugins import PluginManager

# hook point(arguments) · plugins that ran, each with its duration · the call's duration [-> result | raised X]
LINE = re.compile(
    r"^(?P<indent> *)hook: (?P<hook>\w+)\((?P<args>.*)\) · (?P<ran>.+) · \d+\.\d{3} ms(?P<end> -> .+| raised \w+)?$"
)
RAN = re.compile(r"^\w+ (\(wrapper\)|\d+\.\d{3} ms( raised \w+)?)$")


def _trace(text: str) -> list[re.Match[str]]:
    lines = [line for line in text.splitlines() if line.lstrip().startswith("hook")]
    matches = [LINE.match(line) for line in lines]
    assert all(matches), [line for line, match in zip(lines, matches, strict=True) if not match][:3]
    for match in matches:
        assert match is not None
        if match["ran"] != "no implementation ran":
            assert all(RAN.match(part) for part in match["ran"].split(", ")), match["ran"]
    return [match for match in matches if match is not None]


def _plugins(match: re.Match[str]) -> list[str]:
    return [part.split(" ")[0] for part in match["ran"].split(", ")]


def test_a_run_with_the_variable_traces_every_hook_call_on_stderr(process) -> None:
    result = process("run", *FAST, "--set", "algorithm=fixmatch", "--set", "num_train_iter=4",
                     "--set", "num_eval_iter=2", "--set", "num_log_iter=2", env={"SEMILEARN_DEBUG_HOOKS": "1"})
    assert result.code == 0, result.err
    assert "hook:" not in result.out
    trace = _trace(result.err)
    hooks = [match["hook"] for match in trace]
    assert hooks.count("after_train_step") == 4 and hooks.count("evaluate") == 2
    assert {"register_algorithms", "register_policies", "configure", "before_run", "log", "after_run"} <= set(hooks)
    assert hooks.index("register_algorithms") < hooks.index("before_run") < hooks.index("after_run")

    step = next(match for match in trace if match["hook"] == "after_train_step")
    assert step["args"].startswith("algorithm=fixmatch, step=1, outputs={") and "loss" in step["args"]
    assert _plugins(step)[0] == "ema"  # tryfirst
    evaluate = next(match for match in trace if match["hook"] == "evaluate")
    assert _plugins(evaluate) == ["timing", "evaluation"] and "timing (wrapper)" in evaluate["ran"]
    assert evaluate["end"] == " -> {top1_acc, balanced_acc, loss}"
    policies = next(match for match in trace if match["hook"] == "register_policies")  # at the first step
    assert _plugins(policies) == ["policies"] and hooks.index("register_policies") > hooks.index("before_run")
    registry = next(match for match in trace if match["hook"] == "register_algorithms")
    assert "catalog" in _plugins(registry)
    after_run = next(match for match in trace if match["hook"] == "after_run")
    assert after_run["args"] == "algorithm=fixmatch, status='completed', error=None"
    if installed("semilearn-logging"):
        assert "logging" in _plugins(next(match for match in trace if match["hook"] == "log"))
    if installed("semilearn-checkpoint"):  # written from on_step_end: the inner call, indented, ends first
        save = next(index for index, match in enumerate(trace) if match["hook"] == "save_checkpoint")
        assert trace[save]["indent"] == "  " and trace[save + 1]["hook"] == "on_step_end"
        assert "checkpoint" in _plugins(trace[save + 1])


def test_without_the_variable_nothing_is_traced_or_wrapped(process) -> None:
    manager = PluginManager().load()
    assert all(not getattr(impl.function, "_semilearn_traced", False)
               for plugin in manager.get_plugins() for caller in manager.get_hookcallers(plugin) or []
               for impl in caller.get_hookimpls())
    result = process("plugins")
    assert result.code == 0 and "hook:" not in result.err


class Answer(Hook):
    @hookimpl
    def evaluate(self, step: int) -> dict[str, float]:
        return {"top1_acc": 0.5, "step": float(step)}


class Silent(Hook):
    @hookimpl
    def evaluate(self) -> None:
        return None


class Failing(Hook):
    @hookimpl
    def on_step_end(self, step: int) -> None:
        raise ValueError(f"failed at {step}")


def test_a_firstresult_call_lists_the_plugins_up_to_the_one_that_answered_and_tracing_stops() -> None:
    manager = PluginManager()
    manager.add(Answer(), "answer")
    stream = io.StringIO()
    stop = manager.trace_hooks(stream)
    manager.add(Silent(), "silent")  # registered while tracing: asked first, returns nothing
    assert manager.hook.evaluate(algorithm=None, step=3) == {"top1_acc": 0.5, "step": 3.0}
    (match,) = _trace(stream.getvalue())
    assert match["hook"] == "evaluate" and match["args"] == "algorithm=None, step=3"
    assert _plugins(match) == ["silent", "answer"] and match["end"] == " -> {top1_acc, step}"
    stop()
    manager.hook.evaluate(algorithm=None, step=4)
    assert len(stream.getvalue().splitlines()) == 1
    assert all(not getattr(impl.function, "_semilearn_traced", False) for impl in manager.hook.evaluate.get_hookimpls())


def test_an_exception_names_the_plugin_that_raised_it() -> None:
    manager = PluginManager()
    manager.add(Failing(), "failing")
    stream = io.StringIO()
    manager.trace_hooks(stream)
    with pytest.raises(ValueError, match="failed at 2"):
        manager.hook.on_step_end(algorithm=None, step=2)
    (match,) = _trace(stream.getvalue())
    assert re.fullmatch(r"failing \d+\.\d{3} ms raised ValueError", match["ran"]) and match["end"] == " raised ValueError"


def test_call_each_is_traced_like_a_hook_call() -> None:
    manager = PluginManager()
    manager.add(Failing(), "failing")
    stream = io.StringIO()
    manager.trace_hooks(stream)
    failures: list[str] = []
    manager.call_each("on_step_end", lambda plugin, error: failures.append(plugin), algorithm=None, step=5)
    assert failures == ["failing"]
    (match,) = _trace(stream.getvalue())
    assert match["hook"] == "on_step_end" and _plugins(match) == ["failing"] and match["end"] is None


def test_on_a_terminal_a_line_first_clears_the_line_a_progress_bar_is_drawn_on() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    manager = PluginManager()
    stream = Terminal()
    manager.trace_hooks(stream)
    manager.hook.before_run(algorithm=None)
    assert stream.getvalue().startswith("\r\x1b[Khook: before_run(algorithm=None) · no implementation ran · ")


def test_arguments_are_summarized_by_type_and_shape() -> None:
    assert summarize(torch.zeros(4, 10)) == "Tensor[4, 10] float32"
    assert summarize(torch.tensor(1, dtype=torch.int64)) == "Tensor[] int64"
    assert summarize({"a": 1, "b": 2}) == "{a, b}"
    assert summarize({str(index): index for index in range(9)}) == "{0, 1, 2, 3, 4, 5, …}"
    assert summarize([{"x": 1}, None]) == "[{x}, None]"
    assert summarize(list(range(100))) == "list[100]"
    assert summarize("x" * 100) == repr("x" * 39 + "…")
    assert summarize(0.123456) == "0.1235" and summarize(Path("a")) == type(Path("a")).__name__
    assert summarize(ValueError("long message")) == "ValueError"


# -- how the contract evolves: retiring an argument or a hook point ----------------------


class _RetiringSpecs:
    """A hook point with an argument on its way out, as hookspecs.py would declare it."""

    @hookspec(warn_on_impl_args={"old": DeprecationWarning("after_example: 'old' is retired; read 'new'")})
    def after_example(self, new: int, old: int) -> None:
        """An example hook point."""

    @hookspec(warn_on_impl=DeprecationWarning("before_example is retired; implement after_example"))
    def before_example(self) -> None:
        """A retired example hook point."""


class _Author(Hook):
    @hookimpl
    def after_example(self, old: int) -> None:
        pass

    @hookimpl
    def before_example(self) -> None:
        pass


class _UpToDate(Hook):
    @hookimpl
    def after_example(self, new: int) -> None:
        pass


def test_a_retired_argument_or_hook_point_warns_the_plugin_author_at_registration() -> None:
    manager = PluginManager()
    manager.add_hookspecs(_RetiringSpecs)
    with pytest.warns(DeprecationWarning) as caught:
        manager.add(_Author(), "author")
    messages = sorted(str(warning.message) for warning in caught)
    assert messages == ["after_example: 'old' is retired; read 'new'", "before_example is retired; implement after_example"]
    assert all(warning.filename == __file__ for warning in caught)  # points at the plugin's code
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manager.add(_UpToDate(), "up_to_date")  # implementations without the retired argument: no warning
