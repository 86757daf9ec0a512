"""``semilearn new-plugin NAME``: a ready plugin distribution skeleton.

Placeholder: the command arrives with the plugin author kit.
"""

from __future__ import annotations

from ..hook import Hook

__all__ = ["ScaffoldHook"]


class ScaffoldHook(Hook):
    """Adds the ``new-plugin`` command."""
