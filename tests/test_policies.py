"""The SSL policies: the built-in functions and the registry.

Each built-in policy on a case small enough to compute by hand; then the registry: a
plugin replaces a policy for every algorithm without subclassing one, a second
registration needs ``replace=True``, a policy nobody registers is a clear error, and a
policy takes the arguments it names.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from conftest import train_in_process
from semilearn import Hook, Policy, hookimpl
from semilearn.algorithms.policies import (
    BUILTIN_POLICIES,
    class_counts,
    dash_mask,
    ema_alignment,
    fixed_mask,
    flexmatch_class_acc,
    flexmatch_mask,
    freematch_mask,
    hard_labels,
    labelled_distribution,
    queue_alignment,
    relative_mask,
    sharpen,
    softmatch_weights,
)
from semilearn.errors import PluginError
from semilearn.plugins import PluginManager


def tensor(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def close(actual: torch.Tensor, expected: list[float] | float, tol: float = 1e-5) -> bool:
    return torch.allclose(actual, torch.tensor(expected, dtype=actual.dtype), atol=tol, rtol=0)


# ---------------------------------------------------------------------------
# Masks.
# ---------------------------------------------------------------------------


def test_fixed_mask_keeps_predictions_at_or_above_the_cutoff() -> None:
    probs = tensor([0.96, 0.04], [0.6, 0.4], [0.95, 0.05])
    assert fixed_mask(probs, 0.95).tolist() == [1.0, 0.0, 1.0]


def test_class_counts_counts_without_bincount() -> None:
    assert class_counts(torch.tensor([2, 0, 2, 2]), 4).tolist() == [1.0, 0.0, 3.0, 0.0]


def test_flexmatch_learning_effects_with_and_without_warmup() -> None:
    # six unlabelled samples: two last selected as class 0, one as class 1, three never
    selected = torch.tensor([0, 0, 1, -1, -1, -1])
    previous = torch.zeros(3)
    # warm-up: the three unused samples are the largest group -> 2/3, 1/3, 0
    assert close(flexmatch_class_acc(selected, 3, True, previous), [2 / 3, 1 / 3, 0.0])
    # without: normalised by the best class -> 1, 1/2, 0
    assert close(flexmatch_class_acc(selected, 3, False, previous), [1.0, 0.5, 0.0])
    # while every sample carries the same label nothing changes
    unchanged = torch.tensor([0.3, 0.2, 0.1])
    assert close(flexmatch_class_acc(torch.full((6,), -1), 3, True, unchanged), [0.3, 0.2, 0.1])


def test_flexmatch_mask_warms_up_class_thresholds() -> None:
    state: dict = {}
    # First batch: thresholds are 0 (no class learned yet), so everything passes; two
    # samples are confident (>= 0.9) as class 0 and are recorded.
    first = tensor([0.94, 0.02, 0.02, 0.02], [0.91, 0.03, 0.03, 0.03], [0.4, 0.2, 0.2, 0.2])
    mask = flexmatch_mask(first, torch.tensor([0, 1, 2]), state, p_cutoff=0.9, thresh_warmup=True, num_samples=6)
    assert mask.tolist() == [1.0, 1.0, 1.0]
    assert state["selected_label"].tolist() == [0, 0, -1, -1, -1, -1]
    # effects: class 0 has 2 samples, the 4 unused samples dominate -> 0.5, others 0
    assert close(state["classwise_acc"], [0.5, 0.0, 0.0, 0.0])
    # Second batch: class 0's threshold is 0.9 * 0.5 / (2 - 0.5) = 0.3; class 3's is 0.
    second = tensor([0.28, 0.24, 0.24, 0.24], [0.31, 0.23, 0.23, 0.23], [0.1, 0.1, 0.1, 0.7])
    mask = flexmatch_mask(second, torch.tensor([2, 3, 4]), state, p_cutoff=0.9, thresh_warmup=True, num_samples=6)
    assert mask.tolist() == [0.0, 1.0, 1.0]
    assert state["selected_label"].tolist() == [0, 0, -1, -1, -1, -1]  # nothing confident to record


def test_flexmatch_mask_without_warmup_uses_the_best_class() -> None:
    state: dict = {}
    first = tensor([0.94, 0.02, 0.02, 0.02], [0.91, 0.03, 0.03, 0.03], [0.4, 0.2, 0.2, 0.2])
    flexmatch_mask(first, torch.tensor([0, 1, 2]), state, p_cutoff=0.9, thresh_warmup=False, num_samples=6)
    assert close(state["classwise_acc"], [1.0, 0.0, 0.0, 0.0])  # class 0 is fully learned: threshold 0.9
    second = tensor([0.85, 0.05, 0.05, 0.05], [0.92, 0.02, 0.03, 0.03])
    mask = flexmatch_mask(second, torch.tensor([3, 4]), state, p_cutoff=0.9, thresh_warmup=False, num_samples=6)
    assert mask.tolist() == [0.0, 1.0]


def test_freematch_threshold_update() -> None:
    state: dict = {}
    probs = tensor([0.8, 0.2], [0.55, 0.45], [0.45, 0.55])
    mask = freematch_mask(probs, state, momentum=0.5)
    # time_p: 0.5 * 1/2 + 0.5 * mean(0.8, 0.55, 0.55) = 0.25 + 0.31667
    assert close(state["time_p"], 0.25 + 0.5 * 1.9 / 3)
    # p_model: 0.5 * [0.5, 0.5] + 0.5 * mean probs [0.6, 0.4]
    assert close(state["p_model"], [0.55, 0.45])
    # label_hist: 0.5 * [0.5, 0.5] + 0.5 * [2/3, 1/3]
    assert close(state["label_hist"], [0.5 * 0.5 + 0.5 * 2 / 3, 0.5 * 0.5 + 0.5 / 3])
    # thresholds: class 0: 0.56667; class 1: 0.56667 * 0.45 / 0.55 = 0.46364
    assert mask.tolist() == [1.0, 0.0, 1.0]


def test_freematch_quantile_and_clipping() -> None:
    state: dict = {"time_p": torch.tensor(0.99), "p_model": torch.tensor([0.5, 0.5]),
                   "label_hist": torch.tensor([0.5, 0.5])}
    freematch_mask(tensor([0.99, 0.01], [0.98, 0.02]), state, momentum=0.0, clip_thresh=True)
    assert close(state["time_p"], 0.95)
    state["time_p"] = torch.tensor(0.5)
    freematch_mask(tensor([0.6, 0.4], [0.7, 0.3], [0.9, 0.1], [0.8, 0.2], [1.0, 0.0]), state, momentum=0.0,
                   use_quantile=True)
    assert close(state["time_p"], 0.92)  # the 0.8 quantile of 0.6, 0.7, 0.8, 0.9, 1.0


def test_softmatch_weights_follow_a_truncated_gaussian() -> None:
    # fixed estimates (momentum 1 keeps them): mu 0.5, var 0.04, n_sigma 2
    state: dict = {"mu": torch.tensor(0.5), "var": torch.tensor(0.04)}
    probs = tensor([0.3, 0.25, 0.25, 0.2], [0.7, 0.1, 0.1, 0.1], [0.5, 0.5, 0.0, 0.0])
    weights = softmatch_weights(probs, state, momentum=1.0, n_sigma=2.0)
    # top probability 0.3 is below mu: exp(-(0.2)^2 / (2 * 0.04 / 4)) = exp(-2); 0.7 and 0.5: 1
    assert close(weights, [math.exp(-2.0), 1.0, 1.0])


def test_softmatch_estimates_update() -> None:
    state: dict = {}
    probs = tensor([0.9, 0.1], [0.7, 0.3], [0.5, 0.5])
    weights = softmatch_weights(probs, state, momentum=0.5, n_sigma=2.0)
    # batch: mean 0.7, unbiased variance (0.04 + 0 + 0.04) / 2 = 0.04; from mu 1/2, var 1
    assert close(state["mu"], 0.6)
    assert close(state["var"], 0.52)
    assert close(weights, [1.0, 1.0, math.exp(-(0.1**2) / (2 * 0.52 / 4))])


def test_softmatch_per_class_keeps_classes_without_two_samples() -> None:
    state: dict = {"mu": torch.tensor([0.5, 0.5]), "var": torch.tensor([1.0, 1.0])}
    probs = tensor([0.9, 0.1], [0.7, 0.3], [0.2, 0.8])  # class 0 twice, class 1 once
    softmatch_weights(probs, state, momentum=0.5, n_sigma=2.0, per_class=True)
    # class 0: mean 0.8, variance 0.02 -> mu 0.65, var 0.51; class 1 unchanged
    assert close(state["mu"], [0.65, 0.5])
    assert close(state["var"], [0.51, 1.0])


def test_relative_mask_scales_with_labelled_confidence() -> None:
    probs_lb = tensor([0.9, 0.1], [0.7, 0.3])  # mean top probability 0.8 -> threshold 0.9 * 0.8 = 0.72
    assert relative_mask(tensor([0.75, 0.25], [0.3, 0.7]), probs_lb, 0.9).tolist() == [1.0, 0.0]


def test_dash_mask_compares_the_pseudo_label_loss_with_rho() -> None:
    probs = tensor([0.9, 0.1], [0.6, 0.4])
    # hard: -log 0.9 = 0.105, -log 0.6 = 0.511
    assert dash_mask(probs, 0.3, hard=True, temperature=0.5).tolist() == [1.0, 0.0]
    # soft with T = 1: the entropy, 0.325 and 0.673
    assert dash_mask(probs, 0.5, hard=False, temperature=1.0).tolist() == [1.0, 0.0]


# ---------------------------------------------------------------------------
# Pseudo-labels and distribution alignment.
# ---------------------------------------------------------------------------


def test_sharpening_and_hard_labels() -> None:
    probs = tensor([0.6, 0.4], [0.1, 0.9])
    assert close(sharpen(probs, 0.5), [[0.36 / 0.52, 0.16 / 0.52], [0.01 / 0.82, 0.81 / 0.82]])
    assert torch.equal(sharpen(probs, 1.0), probs)
    assert hard_labels(probs).tolist() == [0, 1]
    # tiny temperatures do not underflow
    assert close(sharpen(tensor([0.5, 0.3, 0.2]), 0.01), [1.0, 0.0, 0.0])


def test_ema_alignment_towards_uniform() -> None:
    state: dict = {}
    probs = tensor([0.8, 0.2], [0.6, 0.4])
    aligned = ema_alignment(probs, state, "uniform", momentum=0.5)
    # p_model starts at the batch mean [0.7, 0.3]; row 1: [0.8 / 0.7, 0.2 / 0.3] renormalised
    first = torch.tensor([0.8 / 0.7, 0.2 / 0.3])
    assert close(aligned[0], (first / first.sum()).tolist())
    assert close(state["p_model"], [0.7, 0.3])
    ema_alignment(tensor([0.2, 0.8], [0.4, 0.6]), state, "uniform", momentum=0.5)
    assert close(state["p_model"], [0.5, 0.5])


def test_ema_alignment_towards_the_labelled_and_model_targets() -> None:
    targets = torch.tensor([0, 0, 0, 1])
    assert close(labelled_distribution(targets, 2), [0.75, 0.25])
    state: dict = {}
    aligned = ema_alignment(tensor([0.5, 0.5]), state, "labelled", 0.9, labelled=lambda: labelled_distribution(targets, 2))
    assert close(aligned, [[0.75, 0.25]])
    state = {}
    ema_alignment(tensor([0.5, 0.5]), state, "model", 0.5, probs_lb=tensor([0.9, 0.1], [0.7, 0.3]))
    assert close(state["p_target"], [0.5 * 0.5 + 0.5 * 0.8, 0.5 * 0.5 + 0.5 * 0.2])


def test_queue_alignment_averages_the_last_batches() -> None:
    state: dict = {}
    probs = tensor([0.8, 0.2], [0.6, 0.4])
    aligned = queue_alignment(probs, state, "uniform", length=2)
    # queue [[0.7, 0.3], [0, 0]] -> mean [0.35, 0.15]; the ratio is what matters
    first = torch.tensor([0.8 / 0.35, 0.2 / 0.15])
    assert close(aligned[0], (first / first.sum()).tolist())
    assert state["p_model_ptr"] == 1
    queue_alignment(tensor([0.2, 0.8]), state, "uniform", length=2)
    queue_alignment(tensor([0.4, 0.6]), state, "uniform", length=2)  # overwrites the oldest
    assert state["p_model_ptr"] == 1
    assert close(state["p_model_queue"], [[0.4, 0.6], [0.2, 0.8]])


# ---------------------------------------------------------------------------
# The registry.
# ---------------------------------------------------------------------------


class AcceptEverything(Hook):
    """Replaces the fixed confidence mask (and only it) for every algorithm."""

    name = "accept_everything"

    def __init__(self) -> None:
        super().__init__()
        self.cutoffs: list[float] = []
        self.mask_ratios: list[float] = []

    def accept(self, probs: torch.Tensor, p_cutoff: float) -> torch.Tensor:
        self.cutoffs.append(p_cutoff)
        return torch.ones(probs.shape[0], device=probs.device)

    @hookimpl
    def register_policies(self, register) -> None:
        register(Policy("mask", "fixed", self.accept, "every sample counts"), replace=True)

    @hookimpl
    def after_train_step(self, outputs) -> None:
        self.mask_ratios.append(float(outputs["mask_ratio"]))


def test_a_plugin_replaces_a_policy_without_subclassing(tmp_path: Path) -> None:
    plugin = AcceptEverything()
    result = train_in_process(tmp_path / "replaced", "num_train_iter=4", "algorithm=fixmatch", "p_cutoff=0.9",
                              plugins=[plugin])
    assert result.status == "completed"
    assert plugin.cutoffs == [0.9] * 4  # the algorithm's own parameter, passed explicitly
    assert plugin.mask_ratios == [1.0] * 4  # an untrained FixMatch passes nothing at 0.9

    # other policies stay: FlexMatch keeps its built-in class-wise mask
    untouched = AcceptEverything()
    result = train_in_process(tmp_path / "untouched", "num_train_iter=2", "algorithm=flexmatch", plugins=[untouched])
    assert untouched.cutoffs == []
    assert "selected_label" in result.algorithm.policy_state["mask"]


def _docs_example() -> dict:
    """The code block of the policies section of docs/algorithms.md, executed."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "algorithms.md").read_text(encoding="utf-8")
    section = text[text.index("## Policies"):]
    code = section[section.index("```python\n") + len("```python\n"):]
    namespace: dict = {}
    exec(compile(code[:code.index("```")], "docs/algorithms.md", "exec"), namespace)  # noqa: S102
    return namespace


def test_the_documented_replacement_lowers_the_cutoff_for_every_algorithm(tmp_path: Path) -> None:
    example = _docs_example()
    probs = tensor([0.8, 0.2], [0.7, 0.3])
    assert example["lenient_fixed_mask"](probs, p_cutoff=0.95).tolist() == [1.0, 0.0]  # 0.8 >= 0.76 > 0.7
    plugin = example["LenientFixedMask"]()
    result = train_in_process(tmp_path, "num_train_iter=1", "algorithm=fixmatch", plugins=[plugin])
    registry = result.algorithm.manager.registry("policy")
    assert registry.owner("mask/fixed") != "policies"
    assert registry.get("mask/fixed").function is example["lenient_fixed_mask"]


class SoftLabels(Hook):
    name = "soft_labels"

    def __init__(self) -> None:
        super().__init__()
        self.unsup_losses: list[float] = []

    @hookimpl
    def after_train_step(self, outputs) -> None:
        self.unsup_losses.append(float(outputs["unsup_loss"]))

    @hookimpl
    def register_policies(self, register) -> None:
        def uniform(probs: torch.Tensor) -> torch.Tensor:
            return torch.full_like(probs, 1.0 / probs.shape[-1])  # every target uniform

        register(Policy("pseudo_labels", "hard", uniform), replace=True)


def test_a_plugin_replaces_pseudo_labels(tmp_path: Path) -> None:
    plugin = SoftLabels()
    result = train_in_process(tmp_path, "num_train_iter=2", "algorithm=fixmatch", "p_cutoff=0", plugins=[plugin])
    assert result.status == "completed"
    # every sample counts (p_cutoff 0), and against a uniform target the cross-entropy is at
    # least log(C) whatever the logits; an arg-max target would give less than log(C) here
    assert len(plugin.unsup_losses) == 2
    assert all(loss >= math.log(10) - 1e-4 for loss in plugin.unsup_losses)


class Duplicate(Hook):
    name = "duplicate"

    @hookimpl
    def register_policies(self, register) -> None:
        register(Policy("mask", "fixed", fixed_mask))


def test_registering_a_builtin_policy_twice_needs_replace(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="policy 'mask/fixed' is registered by both plugin 'policies' and plugin "
                                          "'duplicate'; pass replace=True"):
        train_in_process(tmp_path, "num_train_iter=1", "algorithm=fixmatch", plugins=[Duplicate()])


def test_a_policy_nobody_registers_is_a_plugin_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="algorithm 'fixmatch' asks for the mask policy 'fixed', which no plugin "
                                          "registers .*'policies' plugin disabled"):
        train_in_process(tmp_path, "num_train_iter=2", "algorithm=fixmatch", blocked=["policies"])


def test_a_policy_takes_the_arguments_it_names_and_says_what_it_lacks() -> None:
    policy = Policy("mask", "fixed", fixed_mask)
    assert policy.parameters == {"probs", "p_cutoff"}
    probs = tensor([0.9, 0.1], [0.6, 0.4])
    # extra arguments (state, gather ...) are not passed to a function that does not name them
    assert policy(probs=probs, p_cutoff=0.8, state={}, gather=None).tolist() == [1.0, 0.0]
    with pytest.raises(PluginError, match="mask policy 'fixed' needs p_cutoff; its caller gives probs, state"):
        policy(probs=probs, state={})
    catch_all = Policy("alignment", "identity", lambda probs, **rest: probs)
    assert catch_all.parameters is None and catch_all(probs=probs, anything=1) is probs
    with pytest.raises(PluginError, match="kinds are mask, pseudo_labels, alignment"):
        Policy("masks", "fixed", fixed_mask)


def test_the_builtin_policies_are_registered_by_the_policies_plugin() -> None:
    registry = PluginManager().load().registry("policy")
    assert registry.names() == sorted(policy.key for policy in BUILTIN_POLICIES)
    assert {registry.owner(name) for name in registry.names()} == {"policies"}
    assert registry.get("mask/flexmatch").parameters == {"probs", "indices", "state", "p_cutoff", "thresh_warmup",
                                                         "num_samples", "gather"}


# ---------------------------------------------------------------------------
# Distributed runs: running estimates agree on every process.
# ---------------------------------------------------------------------------


def _estimates_on_rank(rank: int, init_file: str, results: str) -> None:
    import torch.distributed as dist

    from semilearn.algorithms.policies import gather_from_ranks

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        # each process sees its own half of the batch
        local = tensor([0.8, 0.2], [0.55, 0.45]) if rank == 0 else tensor([0.45, 0.55], [0.9, 0.1])
        freematch: dict = {}
        mask = freematch_mask(local, freematch, momentum=0.5, gather=gather_from_ranks)
        flexmatch: dict = {}
        flexmatch_mask(local, torch.tensor([0, 1]) + 2 * rank, flexmatch, p_cutoff=0.7, thresh_warmup=True,
                       num_samples=4, gather=gather_from_ranks)
        aligned: dict = {}
        queue_alignment(local, aligned, "uniform", length=2, gather=gather_from_ranks)
        torch.save({"mask": mask, "freematch": freematch, "flexmatch": flexmatch, "aligned": aligned},
                   f"{results}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_running_estimates_are_global_in_a_distributed_run(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    results = str(tmp_path / "state")
    mp.spawn(_estimates_on_rank, args=(str(tmp_path / "init"), results), nprocs=2, join=True)
    first, second = (torch.load(f"{results}.{rank}", weights_only=True) for rank in (0, 1))
    for name in ("freematch", "flexmatch", "aligned"):
        for key, value in first[name].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(second[name][key])), (name, key)
    # the estimates are those of the whole batch (the single-process test case, split over two ranks)
    assert close(first["freematch"]["time_p"], 0.25 + 0.5 * (0.8 + 0.55 + 0.55 + 0.9) / 4)
    assert first["flexmatch"]["selected_label"].tolist() == [0, -1, -1, 0]
    # each rank's mask is for its own samples
    assert first["mask"].shape == (2,) and second["mask"].shape == (2,)


class RetiredHookMask(Hook):
    """A plugin written against the retired compute_mask hook point."""

    name = "retired_hook_mask"

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    @hookimpl
    def compute_mask(self, policy: str, probs: torch.Tensor):
        self.asked.append(policy)
        return torch.ones(probs.shape[0], device=probs.device) if policy == "fixed" else None


def test_a_retired_policy_hook_warns_its_plugin_and_still_answers_for_a_release(tmp_path: Path) -> None:
    from semilearn.errors import PluginDeprecationWarning

    plugin = RetiredHookMask()
    with pytest.warns(PluginDeprecationWarning, match="compute_mask.*retired: register a semilearn.Policy") as caught:
        result = train_in_process(tmp_path / "fixed", "num_train_iter=2", "algorithm=fixmatch", plugins=[plugin])
    assert caught[0].filename == __file__  # pluggy points at the plugin's own code
    assert issubclass(PluginDeprecationWarning, FutureWarning)  # shown by default, in a user's run too
    assert result.status == "completed" and plugin.asked == ["fixed", "fixed"]
    declined = RetiredHookMask()  # None leaves the policy to the registry: FlexMatch keeps its mask
    with pytest.warns(PluginDeprecationWarning):
        result = train_in_process(tmp_path / "flex", "num_train_iter=1", "algorithm=flexmatch", plugins=[declined])
    assert declined.asked == ["flexmatch"] and "selected_label" in result.algorithm.policy_state["mask"]


def test_semilearn_policies_lists_every_policy_with_its_parameters(cli) -> None:
    import json

    result = cli("policies", "--json")
    assert result.code == 0, result.err
    entries = {f"{entry['kind']}/{entry['name']}": entry for entry in json.loads(result.out)}
    assert set(entries) == {policy.key for policy in BUILTIN_POLICIES}
    assert entries["mask/fixed"]["parameters"] == ["p_cutoff", "probs"]
    assert entries["mask/fixed"]["plugin"] == "policies"
    text = cli("policies").out
    assert "mask/softmatch" in text
    assert "parameters: gather, momentum, n_sigma, per_class, probs, state" in text
