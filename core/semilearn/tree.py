"""Nested data (checkpoint states, configuration values) rebuilt in one walk.

:func:`map_tree` is the one recursive copy of the core and its plugins: the checkpoint
plugin's snapshot copies every tensor to the CPU with it, the configuration copies its
nested values with it. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["map_tree"]


def map_tree(value: Any, leaf: Callable[[Any], Any] | None = None) -> Any:
    """A copy of ``value`` with new dicts, lists and tuples, and ``leaf(x)`` for every other value ``x``.

    Mappings become ``dict``; without ``leaf``, other values are shared with ``value``.
    """
    if isinstance(value, Mapping):
        return {key: map_tree(item, leaf) for key, item in value.items()}
    if isinstance(value, list):
        return [map_tree(item, leaf) for item in value]
    if isinstance(value, tuple):
        return tuple(map_tree(item, leaf) for item in value)
    return value if leaf is None else leaf(value)
