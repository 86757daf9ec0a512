"""SSL algorithms, one module each, registered under USB's names.

The built-in ``catalog`` plugin (:mod:`semilearn.builtin.catalog`) registers them through
the ``register_algorithms`` hook point; a plugin adds or replaces algorithms the same way.
"""

from __future__ import annotations

__all__ = ["BUILTIN_ALGORITHMS"]

# name -> "module:class"; imported when the registry is first needed
BUILTIN_ALGORITHMS: dict[str, str] = {
    "supervised": "semilearn.algorithms.supervised:Supervised",
    "fixmatch": "semilearn.algorithms.fixmatch:FixMatch",
}
