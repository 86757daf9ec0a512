"""SSL algorithms, one module each, registered under USB's names.

The built-in ``catalog`` plugin (:mod:`semilearn.builtin.catalog`) registers them through
the ``register_algorithms`` hook point; a plugin adds or replaces algorithms the same way.
"""
