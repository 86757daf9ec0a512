"""SSL algorithms, one module each, registered under USB's names.

The built-in ``catalog`` plugin (:mod:`semilearn.builtin.catalog`) registers them through
the ``register_algorithms`` hook point; a plugin adds or replaces algorithms the same way.
The SSL algorithms build on :class:`semilearn.algorithms.common.SSLAlgorithm`, which calls
the policy hook points (masks, pseudo-labels, distribution alignment) and checkpoints
their state; ``docs/algorithms.md`` describes each one.
"""

from __future__ import annotations

__all__ = ["BUILTIN_ALGORITHMS"]

# name -> "module:class"; imported when the registry is first needed
BUILTIN_ALGORITHMS: dict[str, str] = {
    "supervised": "semilearn.algorithms.supervised:Supervised",
    "fullysupervised": "semilearn.algorithms.supervised:FullySupervised",
    "fixmatch": "semilearn.algorithms.fixmatch:FixMatch",
    "pseudolabel": "semilearn.algorithms.pseudolabel:PseudoLabel",
    "pimodel": "semilearn.algorithms.pimodel:PiModel",
    "meanteacher": "semilearn.algorithms.meanteacher:MeanTeacher",
    "vat": "semilearn.algorithms.vat:VAT",
    "mixmatch": "semilearn.algorithms.mixmatch:MixMatch",
    "remixmatch": "semilearn.algorithms.remixmatch:ReMixMatch",
    "uda": "semilearn.algorithms.uda:UDA",
    "flexmatch": "semilearn.algorithms.flexmatch:FlexMatch",
    "freematch": "semilearn.algorithms.freematch:FreeMatch",
    "softmatch": "semilearn.algorithms.softmatch:SoftMatch",
    "dash": "semilearn.algorithms.dash:Dash",
    "adamatch": "semilearn.algorithms.adamatch:AdaMatch",
    "crmatch": "semilearn.algorithms.crmatch:CRMatch",
    "comatch": "semilearn.algorithms.comatch:CoMatch",
    "simmatch": "semilearn.algorithms.simmatch:SimMatch",
    "defixmatch": "semilearn.algorithms.defixmatch:DeFixMatch",
    "refixmatch": "semilearn.algorithms.refixmatch:ReFixMatch",
    "sequencematch": "semilearn.algorithms.sequencematch:SequenceMatch",
    "multimatch": "semilearn.algorithms.multimatch:MultiMatch",
}
