"""Tracing of hook calls for debugging plugins: ``SEMILEARN_DEBUG_HOOKS=1``.

With the variable set, the plugin manager writes one line to stderr for every call of a
hook point, once the call has returned::

    hook: after_train_step(algorithm=fixmatch, step=1, outputs={loss, sup_loss, unsup_loss, mask_ratio}) · ema 0.268 ms, logging 0.004 ms · 0.347 ms

that is: the hook point and a summary of its arguments (a tensor as ``Tensor[4, 10]
float32``, the algorithm as its name, a mapping as its keys, a list as its length); the
implementations that ran, in the order they ran, each with its own duration (a hook
wrapper is marked ``(wrapper)``: its time is inside the call's); the duration of the whole
call; and what it returned (``-> ...``) when that is not nothing, or the exception it
raised. A ``firstresult`` hook point lists the implementations up to the one that
answered. A call made inside another is indented under it (its line comes first, as it
ends first); under ``torchrun`` the prefix names the rank (``hook[rank 1]: ``).

The lines go to stderr unbuffered. When stderr is a terminal each line first clears the
terminal's current line, so that a progress bar drawn there (the logging plugin draws its
bar on stdout) is replaced by the line and drawn again below it; ``2> hooks.txt`` keeps
the trace apart. Without the variable nothing is installed: hook calls cost what they
cost without tracing.

Built on pluggy's hook-call monitoring (:meth:`pluggy.PluginManager.add_hookcall_monitoring`)
for the calls and their durations; the implementations' own durations come from wrapping
each implementation's function while tracing is on.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import pluggy

__all__ = ["DEBUG_HOOKS_ENV", "HookTracer", "summarize"]

DEBUG_HOOKS_ENV = "SEMILEARN_DEBUG_HOOKS"

_MAX_KEYS = 6
_MAX_TEXT = 40


@dataclass
class _Call:
    hook_name: str
    kwargs: Mapping[str, object]
    wrappers: list[str]
    started: float
    ran: list[str] = field(default_factory=list)  # "plugin 0.041 ms", in the order they ran


class HookTracer:
    """Writes one line per hook call (see the module docstring).

    :meth:`before` and :meth:`after` are pluggy's monitoring callbacks; :meth:`instrument`
    times one implementation; :meth:`call` traces a hook point the manager calls one
    implementation at a time (``after_run``, the registries).
    """

    def __init__(self, stream: IO[str] | None = None, rank: int | None = None) -> None:
        self._stream = stream  # None: sys.stderr as it is when a line is written
        self.prefix = "hook: " if rank is None else f"hook[rank {rank}]: "
        self._local = threading.local()
        self._originals: list[tuple[pluggy.HookImpl, Callable[..., object]]] = []

    def _stack(self) -> list[_Call]:
        stack: list[_Call] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    # -- pluggy's monitoring ----------------------------------------------------

    def before(self, hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, object]) -> None:
        wrappers = [impl.plugin_name for impl in reversed(hook_impls) if impl.wrapper or impl.hookwrapper]
        self._stack().append(_Call(hook_name, kwargs, wrappers, time.perf_counter()))

    def after(
        self,
        outcome: pluggy.Result[object],
        hook_name: str,
        hook_impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, object],
    ) -> None:
        error = outcome.exception
        self._finish(None if error is not None else outcome.get_result(), error)

    @contextlib.contextmanager
    def call(self, hook_name: str, kwargs: Mapping[str, object]) -> Iterator[None]:
        """Trace a hook point whose implementations the manager calls itself."""
        self._stack().append(_Call(hook_name, kwargs, [], time.perf_counter()))
        try:
            yield
        except BaseException as error:
            self._finish(None, error)
            raise
        self._finish(None, None)

    # -- implementations ----------------------------------------------------------

    def instrument(self, impl: pluggy.HookImpl) -> None:
        """Time ``impl`` from now on (hook wrappers are left as they are)."""
        if impl.wrapper or impl.hookwrapper or getattr(impl.function, "_semilearn_traced", False):
            return
        function, plugin_name = impl.function, impl.plugin_name

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self._stack()
            started = time.perf_counter()
            try:
                result = function(*args, **kwargs)
            except BaseException as error:
                if stack:
                    stack[-1].ran.append(f"{plugin_name} {_ms(started)} raised {type(error).__name__}")
                raise
            if stack:
                stack[-1].ran.append(f"{plugin_name} {_ms(started)}")
            return result

        timed._semilearn_traced = True  # type: ignore[attr-defined]
        self._originals.append((impl, function))
        # pluggy types the attribute Final, but keeps it a plain slot; it is put back by restore()
        impl.function = timed  # type: ignore[misc]

    def restore(self) -> None:
        """Put back every function :meth:`instrument` wrapped."""
        for impl, function in reversed(self._originals):
            impl.function = function  # type: ignore[misc]
        self._originals.clear()

    # -- the line -------------------------------------------------------------------

    def _finish(self, result: object, error: BaseException | None) -> None:
        stack = self._stack()
        call = stack.pop()
        ran = [f"{name} (wrapper)" for name in call.wrappers] + call.ran
        parts = [
            f"{call.hook_name}({', '.join(f'{name}={summarize(value)}' for name, value in call.kwargs.items())})",
            ", ".join(ran) if ran else "no implementation ran",
            _ms(call.started),
        ]
        line = "  " * len(stack) + self.prefix + " · ".join(parts)
        if error is not None:
            line += f" raised {type(error).__name__}"
        elif result is not None and result != []:
            line += f" -> {summarize(result)}"
        self._write(line)

    def _write(self, line: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        try:
            clear = "\r\x1b[K" if stream.isatty() else ""
        except (AttributeError, ValueError):
            clear = ""
        stream.write(clear + line + "\n")
        stream.flush()


def _ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.3f} ms"


def summarize(value: object, depth: int = 0) -> str:
    """A short description of a hook argument or result: types and shapes, not contents."""
    if value is None or isinstance(value, (bool, int)):
        return repr(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str):
        return repr(value if len(value) <= _MAX_TEXT else value[: _MAX_TEXT - 1] + "…")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        device = "" if value.device.type == "cpu" else f" {value.device}"
        return f"Tensor[{', '.join(str(size) for size in value.shape)}] {dtype}{device}"
    algorithm = sys.modules.get("semilearn.algorithm")
    if algorithm is not None and isinstance(value, algorithm.AlgorithmBase):
        return value.name or type(value).__name__
    config = sys.modules.get("semilearn.config")
    if config is not None and isinstance(value, config.Config):
        return "Config"
    if isinstance(value, BaseException):
        return type(value).__name__
    if isinstance(value, Mapping):
        keys = [str(key) for key in list(value)[: _MAX_KEYS + 1]]
        shown = keys[:_MAX_KEYS] + (["…"] if len(keys) > _MAX_KEYS else [])
        return "{" + ", ".join(shown) + "}"
    if isinstance(value, (list, tuple)):
        if depth == 0 and len(value) <= 3:
            items = ", ".join(summarize(item, depth + 1) for item in value)
            return f"[{items}]" if isinstance(value, list) else f"({items})"
        return f"{type(value).__name__}[{len(value)}]"
    if callable(value) and hasattr(value, "__qualname__"):
        return str(value.__qualname__)
    return type(value).__name__
