"""The parity tests still catch the mistakes a reviewer could miss.

Each case below changes one line of the engine, as a slip in a real change would (a step
counted one too early, a temperature inverted, a mask taken from the wrong view, EMA
operations in the wrong order, a batch-norm statistics pass lost, a loss term's weight
dropped, a distribution alignment turned upside down), and runs the USB parity comparison
of tests/test_usb_parity.py on the cases that exercise that line: the comparison must fail.
The unchanged engine passes the same comparisons (tests/test_usb_parity.py), so the
tolerance of tests/parity/compare.py separates rounding from mistakes.

The mutant is made from the function's own source with one substring replaced (which must
occur exactly once, so a mutation that no longer applies fails here instead of passing).
"""

from __future__ import annotations
import __future__

import inspect
import sys
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from test_usb_parity import compare_with_usb

from semilearn.algorithms import common, policies
from semilearn.algorithms.fixmatch import FixMatch
from semilearn.algorithms.mixmatch import MixMatch
from semilearn.algorithms.remixmatch import ReMixMatch
from semilearn.builtin.ema import EMAHook


class Mutation(NamedTuple):
    owner: Any  # a class or a module
    name: str  # the function in it
    old: str
    new: str
    cases: tuple[tuple[str, str], ...]  # (algorithm, case) of the parity fixtures that must catch it


MUTATIONS = {
    "a default off by one step: the unlabelled warm-up counts the current step as done": Mutation(
        common.SSLAlgorithm, "unsup_weight", "unsup_ramp(self.global_step,", "unsup_ramp(self.global_step + 1,",
        (("pimodel", "defaults"), ("meanteacher", "defaults"))),
    "a wrong temperature: MixMatch sharpens its guess with 1 / T instead of T": Mutation(
        MixMatch, "guess_labels", "temperature=self.config.T)", "temperature=1 / self.config.T)",
        (("mixmatch", "defaults"),)),
    "a mask from the strong view: FixMatch thresholds the strong views' confidence": Mutation(
        FixMatch, "fixmatch_terms", 'self.mask("fixed", probs,', 'self.mask("fixed", probabilities(logits_s),',
        (("fixmatch", "exercised"),)),
    "an EMA order: the EMA weights are scaled after the model's share is added": Mutation(
        EMAHook, "after_train_step",
        "torch._foreach_mul_(self._ema_parameters, decay)\n            torch._foreach_add_(self._ema_parameters, moved)",
        "torch._foreach_add_(self._ema_parameters, moved)\n            torch._foreach_mul_(self._ema_parameters, decay)",
        (("fixmatch", "defaults"),)),
    "a missing batch-norm pass: use_cat false's weak pass leaves the running statistics alone": Mutation(
        common.SSLAlgorithm, "forward_outputs", "with torch.no_grad():",
        "with torch.no_grad(), frozen_batch_norm_stats(network):", (("fixmatch", "separate"),)),
    "a loss term's weight: ReMixMatch adds its rotation loss at weight 1 instead of rot_loss_ratio": Mutation(
        ReMixMatch, "train_step", "loss = loss + config.rot_loss_ratio * rot_loss", "loss = loss + rot_loss",
        (("remixmatch", "defaults"),)),
    "an alignment upside down: distribution alignment divides by the target instead of the model": Mutation(
        policies, "_aligned", "(p_target + _EPSILON) / (p_model + _EPSILON)",
        "(p_model + _EPSILON) / (p_target + _EPSILON)", (("adamatch", "defaults"),)),
}


def mutant(mutation: Mutation) -> Any:
    """The function ``mutation.name`` of ``mutation.owner`` compiled from its source with ``old`` replaced by ``new``."""
    function = inspect.getattr_static(mutation.owner, mutation.name)
    source = inspect.getsource(function)  # as it stands in the file (the mutations' text is indented so)
    assert source.count(mutation.old) == 1, f"{mutation.name}: {mutation.old!r} is not in its source once"
    module = sys.modules[function.__module__]
    namespace = dict(vars(module))
    flags = __future__.annotations.compiler_flag  # as the module's own `from __future__ import annotations`
    code = compile(textwrap.dedent(source.replace(mutation.old, mutation.new)),
                   f"<mutant of {module.__name__}.{mutation.name}>", "exec", flags=flags, dont_inherit=True)
    exec(code, namespace)
    return namespace[mutation.name]


@pytest.mark.parametrize("description", list(MUTATIONS))
def test_the_parity_comparison_catches_the_mutation(description: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    mutation = MUTATIONS[description]
    monkeypatch.setattr(mutation.owner, mutation.name, mutant(mutation))
    for algorithm, case in mutation.cases:
        comparison = compare_with_usb(algorithm, case, tmp_path / f"{algorithm}-{case}")
        largest, where = comparison.largest
        print(f"\n{description} | {algorithm} ({case}) | {len(comparison.failures)} quantities beyond the tolerance; "
              f"largest relative difference {largest:.3g} ({where})")
        assert comparison.failures, f"{algorithm} ({case}) still matches USB with the mutation: {description}"
