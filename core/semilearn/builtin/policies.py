"""The built-in SSL policies: confidence masks, pseudo-labels, distribution alignment.

The ``policies`` plugin registers every policy the built-in algorithms use
(:data:`semilearn.algorithms.policies.BUILTIN_POLICIES`) through the ``register_policies``
hook point. The policies are plain functions, imported when the registry is first built
(by a run), so that loading the plugin does not import torch.

A plugin replaces a policy by registering one of the same kind and name with
``replace=True``; it adds one by registering a new name. Disabling this plugin
(``-p no:policies``) leaves the built-in algorithms without their policies.
"""

from __future__ import annotations

from collections.abc import Callable

from ..hook import Hook, hookimpl

__all__ = ["PolicyHook"]


class PolicyHook(Hook):
    """Registers the built-in policies."""

    @hookimpl
    def register_policies(self, register: Callable[..., None]) -> None:
        from ..algorithms.policies import BUILTIN_POLICIES

        for policy in BUILTIN_POLICIES:
            register(policy)
