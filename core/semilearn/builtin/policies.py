"""The built-in SSL policies: confidence masks, pseudo-labels, distribution alignment.

The ``policies`` plugin implements the policy hook points of :mod:`semilearn.hookspecs`
(``compute_mask``, ``make_pseudo_labels``, ``align_distribution``) for every policy the
built-in algorithms use (their list and parameters are in the hook points' docstrings).
The policies themselves are plain functions in :mod:`semilearn.algorithms.policies`,
imported on the first call so that loading the plugin does not import torch.

A plugin replaces a policy by implementing the same hook point and returning a tensor
for the policies it handles (it is asked before this plugin); it returns ``None`` for
the others, and this plugin returns ``None`` for names it does not know, so a plugin can
add policies as well as replace these.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from ..hook import Hook, hookimpl

if TYPE_CHECKING:
    import torch

    from ..algorithm import AlgorithmBase

__all__ = ["PolicyHook"]


class PolicyHook(Hook):
    """Built-in implementations of the policy hook points."""

    @hookimpl
    def compute_mask(
        self,
        algorithm: AlgorithmBase,
        policy: str,
        probs: torch.Tensor,
        state: MutableMapping[str, Any],
        probs_lb: torch.Tensor | None,
        indices: torch.Tensor | None,
    ) -> torch.Tensor | None:
        from ..algorithms.policies import MASK_POLICIES

        function = MASK_POLICIES.get(policy)
        if function is None:
            return None
        return function(algorithm.config, algorithm, probs, state, probs_lb, indices)

    @hookimpl
    def make_pseudo_labels(self, policy: str, probs: torch.Tensor, temperature: float) -> torch.Tensor | None:
        from ..algorithms.policies import PSEUDO_LABEL_POLICIES

        function = PSEUDO_LABEL_POLICIES.get(policy)
        return None if function is None else function(probs, temperature)

    @hookimpl
    def align_distribution(
        self,
        algorithm: AlgorithmBase,
        policy: str,
        probs: torch.Tensor,
        state: MutableMapping[str, Any],
        target: str,
        probs_lb: torch.Tensor | None,
    ) -> torch.Tensor | None:
        from ..algorithms.policies import align

        return align(algorithm, policy, probs, state, target, probs_lb)
