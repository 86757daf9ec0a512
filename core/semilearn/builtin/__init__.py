"""Behaviour the loop needs, registered as ordinary plugins.

Each module is one plugin: ``catalog`` (the built-in algorithms, data sets and
networks), ``ema`` (the EMA model), ``evaluation`` (test-split metrics) and ``timing``
(throughput). They are listed by ``semilearn plugins`` and, except ``catalog``, can be
turned off like any plugin (``-p no:ema``). None of them imports torch at import time.
"""
