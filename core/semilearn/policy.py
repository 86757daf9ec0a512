"""A named SSL policy: what the ``register_policies`` hook point registers.

The decisions several SSL algorithms share are policies of three kinds:

* ``"mask"`` -- how much each unlabelled sample's pseudo-label counts (a weight in [0, 1]);
* ``"pseudo_labels"`` -- the training targets made from class probabilities;
* ``"alignment"`` -- class probabilities rescaled towards a target distribution.

An algorithm asks for a policy by kind and name (``self.mask("flexmatch", probs, ...)``)
and passes every parameter as a keyword argument: the values of its own configuration
keys (``p_cutoff``, ``momentum`` ...) and what the engine provides (``state``,
``gather``; see :mod:`semilearn.algorithms.common`). A policy's function takes the
subset of those arguments it names, as a hook implementation does, so a replacement can
be a short function that ignores what it does not need. Defaults live in one place: the
algorithms' configuration options.

The built-in policies are plain functions in :mod:`semilearn.algorithms.policies`,
registered by the built-in ``policies`` plugin; a plugin replaces one by registering a
policy of the same kind and name with ``replace=True``. This module does not import torch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import PluginError

__all__ = ["Policy", "POLICY_KINDS"]

POLICY_KINDS = ("mask", "pseudo_labels", "alignment")


@dataclass(frozen=True)
class Policy:
    """A policy of ``kind`` named ``name``: ``function`` called with keyword arguments.

    :param kind: ``"mask"``, ``"pseudo_labels"`` or ``"alignment"``.
    :param name: the name algorithms ask for (``"fixed"``, ``"flexmatch"``, ``"soft"`` ...).
    :param function: returns a tensor; takes any subset of the arguments its callers give
        (or ``**kwargs`` for all of them).
    :param description: one line for listings.
    """

    kind: str
    name: str
    function: Callable[..., Any]
    description: str = ""
    _accepts: frozenset[str] | None = field(init=False, repr=False, compare=False, default=None)
    _requires: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise PluginError(f"policy '{self.name}' has kind '{self.kind}'; kinds are {', '.join(POLICY_KINDS)}")
        if not isinstance(self.name, str) or not self.name:
            raise PluginError(f"a {self.kind} policy needs a name")
        if not callable(self.function):
            raise PluginError(f"{self.kind} policy '{self.name}': {self.function!r} is not callable")
        parameters = inspect.signature(self.function).parameters.values()
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        if not any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
            object.__setattr__(self, "_accepts", frozenset(p.name for p in parameters if p.kind in keyword))
        object.__setattr__(self, "_requires", frozenset(
            p.name for p in parameters if p.kind in keyword and p.default is inspect.Parameter.empty))

    @property
    def key(self) -> str:
        """``kind/name``: the policy's key in the registry."""
        return f"{self.kind}/{self.name}"

    @property
    def parameters(self) -> frozenset[str] | None:
        """The argument names the function takes (``None``: any, through ``**kwargs``)."""
        return self._accepts

    def __call__(self, **arguments: Any) -> Any:
        missing = self._requires.difference(arguments)
        if missing:
            raise PluginError(
                f"{self.kind} policy '{self.name}' needs {', '.join(sorted(missing))}; its caller gives "
                f"{', '.join(sorted(arguments)) or 'nothing'}"
            )
        if self._accepts is not None:
            arguments = {name: value for name, value in arguments.items() if name in self._accepts}
        return self.function(**arguments)
