"""The built-in SSL policies (confidence masking, pseudo-labels, distribution alignment).

Placeholder: the policy hook points and their built-in implementations arrive with the
algorithm family.
"""

from __future__ import annotations

from ..hook import Hook

__all__ = ["PolicyHook"]


class PolicyHook(Hook):
    """Built-in implementations of the policy hook points."""
