"""Step-by-step parity with USB 0.3.2's own code.

``tests/parity/usb_generate.py`` ran USB's algorithms for three steps from seed 0 on fixed
views and recorded everything a step computes (see ``tests/parity/README.md``). Each test
here builds the same algorithm in this engine from the same seed, feeds it the same views
through the engine's own step (``AlgorithmBase._one_step``: forward, loss, backward,
optimizer, scheduler, the EMA plugin), draws its in-step random numbers (MixUp, VAT noise)
from generators seeded like USB's, and compares: the initial weights (built, not loaded:
the networks draw their initialisation as USB's do), every loss term, the masks,
pseudo-labels and aligned distributions, the gradients, the updated weights, the batch
norm statistics, the EMA weights, the learning rate and the algorithm's state.

Both sides compute in float64 from networks built in float32 (the seed draws USB's initial
weights), and every quantity is compared by the rule of tests/parity/compare.py: 1e-9 of its
layer's scale for a network's tensors, of its own for the rest, integers exactly. A tensor is
compared through its sketch (sums, two random projections, sampled values) or whole when
small. Why float64 and this scale: tests/parity/README.md, "Tolerances".
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from parity.compare import DECISION_MARGIN, Comparison, tolerance
from parity.sketch import PRECISION, default_dtype

from semilearn.data import InputSpec
from semilearn.data.augment import AugmentSpec
from semilearn.data.base import SSLData
from semilearn.plugins import PluginManager
from semilearn.runner import load_config
from semilearn.usb import usb_parameter_name

FIXTURES = Path(__file__).resolve().parent / "parity" / "fixtures"
SEED, STEP_SEED = 0, 1000  # as in tests/parity/usb_generate.py

# USB's log names -> this engine's output names
LOG_NAMES = {
    "train/sup_loss": "sup_loss", "train/unsup_loss": "unsup_loss", "train/total_loss": "loss",
    "train/util_ratio": "mask_ratio", "train/contrast_loss": "contrast_loss", "train/loss_entmin": "ent_loss",
    "train/anti_unsup_loss": "anti_unsup_loss", "train/util_ratio_lb": "mask_ratio_lb",
}
# USB's argument names that are configuration keys here too (the rest are USB's plumbing)
SKIPPED_ARGS = {"algorithm", "net", "dataset", "epoch", "save_dir", "save_name", "num_workers", "gpu", "seed",
                "num_eval_iter", "num_log_iter", "eval_batch_size"}
OUR_NAME = {"fullysupervised": "fullysupervised"}


@functools.cache
def _load(name: str) -> dict[str, Any]:
    return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def _cases() -> list[tuple[str, str]]:
    found = []
    for path in sorted(FIXTURES.glob("*.pt")):
        if path.stem in ("views", "nets", "checkpoint"):
            continue
        for case in _load(path.stem)["cases"]:
            found.append((path.stem, case))
    return found


# ---------------------------------------------------------------------------
# The networks.
# ---------------------------------------------------------------------------

NETWORKS = {
    "wrn_28_2": ("semilearn.nets.wrn:wrn_28_2", 10),
    "wrn_28_8": ("semilearn.nets.wrn:wrn_28_8", 100),
    "wrn_var_37_2": ("semilearn.nets.wrn:wrn_var_37_2", 10),
    "resnet18": ("semilearn.nets.resnet:resnet18", 10),
}


def _builder(target: str) -> Callable[..., torch.nn.Module]:
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _seed_like_usb(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)


@pytest.mark.parametrize("name", list(NETWORKS))
def test_networks_are_usbs_weight_for_weight(name: str) -> None:
    expected = _load("nets")["networks"][name]
    target, classes = NETWORKS[name]
    _seed_like_usb(SEED)
    net = _builder(target)(classes, InputSpec("image", (3, expected["image_size"], expected["image_size"])))
    assert list(net.state_dict()) == expected["keys"]
    assert sum(parameter.numel() for parameter in net.parameters()) == expected["parameters"]
    comparison = Comparison()
    comparison.table(dict(net.state_dict()), expected["initial"], "initial")
    size = expected["image_size"]
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1234)).to(PRECISION)
    net.to(PRECISION).train()
    with torch.no_grad():
        output = net(images)
    comparison.tensor(output["logits"], expected["logits"], "logits")
    comparison.value(output["feat"], expected["feat"], "feat")
    comparison.table({key: value for key, value in net.named_buffers() if not key.endswith("num_batches_tracked")},
                     expected["buffers_after_forward"], "batch norm statistics after the forward pass")
    assert not comparison.failures, comparison.report()


def test_resnet50_is_usbs_weight_for_weight() -> None:
    """USB's resnet50 (fixtures/resnet50, tests/parity/usb_generate_resnet50.py): the same names and
    shapes, the same initial weights from seed 0, the same logits and features of two 64x64 images
    in training mode, batch-norm statistics, then in evaluation mode, all in float64."""
    from semilearn.nets.resnet import resnet50

    expected = _load("resnet50/resnet50")
    _seed_like_usb(SEED)
    net = resnet50(expected["num_classes"], InputSpec("image", (3, expected["image_size"], expected["image_size"])))
    assert [[name, list(value.shape)] for name, value in net.state_dict().items()] == expected["keys"]
    assert [name for name, _ in net.named_parameters()] == expected["named_parameters"]
    assert sum(parameter.numel() for parameter in net.parameters()) == expected["parameters"] == 23_528_522
    assert net.num_features == expected["num_features"] == 2048
    comparison = Comparison()
    comparison.table(dict(net.state_dict()), expected["initial"], "initial")
    size = expected["image_size"]
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1234)).to(PRECISION)
    net.to(PRECISION)
    with torch.no_grad():
        for mode in ("train", "eval"):
            net.train(mode == "train")
            output = net(images)
            comparison.tensor(output["logits"], expected[mode]["logits"], f"{mode} logits")
            comparison.value(output["feat"], expected[mode]["feat"], f"{mode} feat")
            assert torch.equal(net.classifier(output["feat"]), output["logits"])  # USB's only_fc, through classifier
            if mode == "train":
                comparison.table({key: value for key, value in net.named_buffers()
                                  if not key.endswith("num_batches_tracked")},
                                 expected[mode]["buffers_after_forward"], "batch norm statistics after the forward pass")
    assert not comparison.failures, comparison.report()
    print(f"largest relative difference {comparison.largest[0]:.3g} ({comparison.largest[1]})")


# ---------------------------------------------------------------------------
# The algorithms.
# ---------------------------------------------------------------------------


def _stand_in_data(num_classes: int = 10) -> SSLData:
    generator = torch.Generator().manual_seed(0)

    def images(count: int) -> torch.Tensor:
        return torch.randint(0, 256, (count, 3, 32, 32), generator=generator, dtype=torch.uint8)

    return SSLData(
        name="synthetic", num_classes=num_classes, labelled_samples=images(40),
        labelled_targets=torch.arange(40) % num_classes, unlabelled_samples=images(200), unlabelled_targets=None,
        test_samples=images(16), test_targets=torch.arange(16) % num_classes,
        augment=AugmentSpec(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)), default_net="wrn_28_2",
    )


def _our_settings(algorithm: str, record: Mapping[str, Any], tmp_path: Path) -> list[str]:
    """USB's effective arguments as `--set` overrides (the keys this engine knows)."""
    from semilearn.config import CORE_OPTIONS

    manager = PluginManager().load(environ={"SEMILEARN_DISABLE_PLUGIN_AUTOLOAD": "1"})
    known = {option.name for option in CORE_OPTIONS}
    known |= {option.name for option in manager.registry("algorithm").get(algorithm).config_options}
    settings = [f"algorithm={algorithm}", f"dataset={record['args']['dataset']}", "net=wrn_28_2", "channels_last=false", "amp=false",
                "compile=false", f"save_dir={tmp_path}", "num_log_iter=100000", "num_eval_iter=100000", "epoch=1"]
    for key, value in record["args"].items():
        if key in known and key not in SKIPPED_ARGS:
            settings.append(f"{key}={value}")
    if algorithm == "dash":
        settings.append("num_wu_iter=0")  # USB's harness starts Dash after its warm-up
    return settings


def _build(algorithm: str, record: Mapping[str, Any], tmp_path: Path) -> Any:
    manager = PluginManager().load(environ={"SEMILEARN_DISABLE_PLUGIN_AUTOLOAD": "1"})
    config = load_config(manager, None, _our_settings(algorithm, record, tmp_path)).config
    data = _stand_in_data()
    _seed_like_usb(SEED)
    if algorithm == "crmatch":  # USB's CR-Match starts its rotation loader's iterator before building the network:
        torch.empty((), dtype=torch.int64).random_()  # that draws the loader's base seed from the global generator
    net = manager.registry("net").get("wrn_28_2")(10, InputSpec("image", (3, 32, 32)))
    cls = manager.registry("algorithm").get(algorithm)
    return in_precision(cls(config, data, net, manager, tmp_path / "run", torch.device("cpu")))


def in_precision(ours: Any) -> Any:
    """The algorithm's network (built in float32 from the seed, heads included, as USB builds it) and its
    floating-point buffers in ``PRECISION``, as the generators make USB's."""
    ours.module.to(PRECISION)
    buffers = getattr(ours, "buffers", {})  # an SSL algorithm's own state (the supervised baseline has none)
    for name, value in buffers.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            buffers[name] = value.to(PRECISION)
    return ours


def _probe(ours: Any) -> list[tuple[str, torch.Tensor]]:
    """Record what the policy calls return, as USB's masking / gen_ulb_targets / dist_align hooks."""
    probes: list[tuple[str, torch.Tensor]] = []
    for method, usb_name in (("mask", "masking"), ("pseudo_labels", "gen_ulb_targets"), ("align", "dist_align")):
        original = getattr(ours, method, None)
        if original is None:
            continue

        def recording(*args: Any, _original: Callable[..., torch.Tensor] = original, _name: str = usb_name,
                      **kwargs: Any) -> torch.Tensor:
            result = _original(*args, **kwargs)
            probes.append((_name, result.detach().clone()))
            return result

        setattr(ours, method, recording)
    return probes


def _parameters(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {usb_parameter_name(name): parameter for name, parameter in module.named_parameters()}


def _our_state(ours: Any, algorithm: str) -> dict[str, Any]:
    """This engine's state under USB's names (see USB_STATE)."""
    reader = USB_STATE.get(algorithm)
    return reader(ours) if reader is not None else {}


def _policy(ours: Any, use: str, **names: str) -> dict[str, Any]:
    state = ours.policy_state.get(use, {})
    return {usb: state[key] for usb, key in names.items() if key in state}


USB_STATE: dict[str, Callable[[Any], dict[str, Any]]] = {
    "flexmatch": lambda ours: _policy(ours, "mask", **{"MaskingHook.selected_label": "selected_label",
                                                       "MaskingHook.classwise_acc": "classwise_acc"}),
    "freematch": lambda ours: _policy(ours, "mask", **{"MaskingHook.p_model": "p_model",
                                                       "MaskingHook.label_hist": "label_hist",
                                                       "MaskingHook.time_p": "time_p"}),
    "softmatch": lambda ours: {**_policy(ours, "mask", **{"MaskingHook.prob_max_mu_t": "mu",
                                                          "MaskingHook.prob_max_var_t": "var"}),
                               **_policy(ours, "align", **{"DistAlignHook.p_model": "p_model",
                                                           "DistAlignHook.p_target": "p_target"})},
    "dash": lambda ours: _policy(ours, "mask", **{"MaskingHook.rho": "rho", "alg.use_hard_label": "hard_label"}),
    "adamatch": lambda ours: _policy(ours, "align", **{"DistAlignHook.p_model": "p_model",
                                                       "DistAlignHook.p_target": "p_target"}),
    "comatch": lambda ours: {**_policy(ours, "align", **{"DistAlignHook.p_model": "p_model_queue"}),
                             **{usb: ours.buffers[key] for usb, key in (("alg.queue_feats", "bank_embeddings"),
                                                                         ("alg.queue_probs", "bank_probs"),
                                                                         ("alg.queue_ptr", "bank_ptr"))
                                if key in ours.buffers}},
    "simmatch": lambda ours: {**_policy(ours, "align", **{"DistAlignHook.p_model": "p_model_queue"}),
                              "alg.mem_bank": ours.buffers["bank"], "alg.labels_bank": ours.buffers["bank_labels"]},
    "remixmatch": lambda ours: _policy(ours, "align", **{"DistAlignHook.p_model": "p_model",
                                                         "DistAlignHook.p_target": "p_target"}),
}


@pytest.mark.parametrize(("algorithm", "case"), _cases())
def test_three_steps_match_usb(algorithm: str, case: str, tmp_path: Path) -> None:
    record = _load(algorithm)["cases"][case]
    decisions = record["decisions"]
    assert decisions["stable_under"] >= DECISION_MARGIN, (
        f"{algorithm} ({case}): a mask, hard label or integer state of USB's record flips under a relative "
        f"perturbation of {DECISION_MARGIN:g} (stable only under {decisions['stable_under']:g}): a decision sits "
        "within reach of rounding; choose settings that keep it clear (tests/parity/README.md)")
    comparison = compare_with_usb(algorithm, case, tmp_path)
    print(f"\n{algorithm} ({case}): largest relative difference {comparison.largest[0]:.2g} "
          f"({comparison.largest[1] or 'none'})")
    assert not comparison.failures, comparison.report()


def compare_with_usb(algorithm: str, case: str, tmp_path: Path) -> Comparison:
    """This engine's algorithm for USB's case, three steps on the fixture's views, compared with USB's record."""
    record = _load(algorithm)["cases"][case]
    views = [{key: value.to(PRECISION) if value.is_floating_point() else value for key, value in view.items()}
             for view in _load("views")["views"]]
    ours = _build(OUR_NAME.get(algorithm, algorithm), record, tmp_path)
    with default_dtype(PRECISION):
        return _three_steps(algorithm, record, views, ours)


def _three_steps(algorithm: str, record: Mapping[str, Any], views: list[dict[str, torch.Tensor]],
                 ours: Any) -> Comparison:
    # VAT's probe is a difference quotient of step vat_xi (USB's vat_loss: 1e-6 unless given)
    comparison = Comparison(tolerance(record["args"].get("vat_xi", 1e-6) if algorithm == "vat" else None))
    comparison.table({usb_parameter_name(name): value for name, value in ours.module.state_dict().items()},
                     record["initial"], "initial weights")
    prepare = PREPARE.get(algorithm)
    ours.hook.before_run(algorithm=ours)
    if prepare is not None:
        prepare(ours, record)
    ours.epoch = record["overrides"].get("epoch", 0)
    ours.model.train()
    probes = _probe(ours)
    captured: dict[str, torch.Tensor] = {}
    run_train_step = ours.run_train_step

    def capturing() -> dict[str, torch.Tensor]:
        outputs = run_train_step()
        captured.clear()
        captured.update(outputs)
        return outputs

    ours.run_train_step = capturing
    ours._seed_step = lambda step: _seed_like_usb(STEP_SEED + step - 1)
    for index, (view, expected) in enumerate(zip(views, record["steps"], strict=True)):
        ours.sample_batch = lambda view=view: VIEWS[algorithm](view)
        probes.clear()
        ours._one_step(index + 1)
        where = f"step {index + 1}"
        comparison.scalar(float(captured["loss"]), float(expected["loss"]), f"{where} loss")
        for usb_key, value in expected["log"].items():
            name = LOG_NAMES.get(usb_key)
            if name is None:
                continue
            if name not in captured:
                comparison.failures.append(f"{where}: USB logs {usb_key}, this engine has no {name}")
                continue
            logged = captured[name].float() if usb_key.startswith("train/util_ratio") else captured[name]
            comparison.scalar(float(logged), value, f"{where} {usb_key}")  # USB logs mask.float().mean()
        for kind in ("masking", "gen_ulb_targets", "dist_align"):
            theirs = [value for name, value in expected["probes"] if name == kind]
            mine = [value for name, value in probes if name == kind]
            if not theirs:  # USB computes it inline (MixMatch's sharpening ...): the losses cover it
                continue
            if len(mine) != len(theirs):
                comparison.failures.append(f"{where}: {len(mine)} {kind} results here, {len(theirs)} in USB")
                continue
            for number, (a, b) in enumerate(zip(mine, theirs, strict=True)):
                comparison.value(a, b, f"{where} {kind} #{number + 1}")
        gradients = {usb_parameter_name(name): parameter.grad for name, parameter in ours.module.named_parameters()
                     if parameter.grad is not None}
        comparison.table(gradients, expected["gradients"], f"{where} gradient")
        comparison.table(_parameters(ours.module), expected["parameters"], f"{where} weight")
        comparison.table({usb_parameter_name(name): buffer for name, buffer in ours.module.named_buffers()
                          if not name.endswith("num_batches_tracked")}, expected["buffers"], f"{where} buffer")
        comparison.table(_parameters(ours.ema_model), expected["ema"], f"{where} EMA weight")
        comparison.scalar(ours.optimizer.param_groups[0]["lr"], expected["lr"], f"{where} learning rate")
        mine_state = _our_state(ours, algorithm)
        for key, value in mine_state.items():
            if key not in expected["state"]:
                comparison.failures.append(f"{where}: state {key} is not in USB's record")
            elif isinstance(value, torch.Tensor):
                comparison.value(value, expected["state"][key], f"{where} state {key}")
            else:
                comparison.scalar(float(value), float(expected["state"][key]), f"{where} state {key}")
    return comparison


# How each algorithm takes USB's views, and anything set before the first step.
def _views(*names: str, **renamed: str) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    def pick(view: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        picked = {name: view[name] for name in names}
        picked.update({ours: view[theirs] for ours, theirs in renamed.items()})
        return picked

    return pick


_FIXMATCH_VIEWS = _views("x_lb", "y_lb", "x_ulb_w", "x_ulb_s")
VIEWS: dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "fullysupervised": _views("x_lb", "y_lb"),
    "fixmatch": _FIXMATCH_VIEWS,
    "uda": _FIXMATCH_VIEWS,
    "adamatch": _FIXMATCH_VIEWS,
    "freematch": _FIXMATCH_VIEWS,
    "dash": _FIXMATCH_VIEWS,
    "softmatch": _FIXMATCH_VIEWS,
    "flexmatch": _views("x_lb", "y_lb", "idx_ulb", "x_ulb_w", "x_ulb_s"),
    "defixmatch": _views("x_lb", "x_lb_s", "y_lb", "x_ulb_w", "x_ulb_s"),
    "pseudolabel": _views("x_lb", "y_lb", "x_ulb_w"),
    "vat": _views("x_lb", "y_lb", "x_ulb_w"),
    "pimodel": _views("x_lb", "y_lb", "x_ulb_w", x_ulb_w2="x_ulb_s"),  # USB's x_ulb_s: a second weak view
    "meanteacher": _views("x_lb", "y_lb", "x_ulb_w", x_ulb_w2="x_ulb_s"),
    "mixmatch": lambda view: {"x_lb": view["x_lb"], "y_lb": view["y_lb"],  # the K = 2 weak views, stacked
                              "x_ulb_w": torch.cat((view["x_ulb_w"], view["x_ulb_s"]))},
    "crmatch": lambda view: {**_FIXMATCH_VIEWS(view), "x_ulb_rot": view["x_ulb_rot"], "rot_v": view["rot_v_crmatch"]},
    "remixmatch": _views("x_lb", "y_lb", "x_ulb_w", "x_ulb_s_0", "x_ulb_s_1", "x_ulb_s_0_rot", "rot_v"),
    "comatch": _views("x_lb", "y_lb", "x_ulb_w", "x_ulb_s_0", "x_ulb_s_1"),
    "simmatch": _views("idx_lb", "x_lb", "y_lb", "x_ulb_w", "x_ulb_s"),
}
def _prepare_dash(ours: Any, record: Mapping[str, Any]) -> None:
    ours.buffers["rho_init"] = record["overrides"].get("rho_init", 2.0)  # as the harness gave USB's Dash


def _prepare_simmatch(ours: Any, record: Mapping[str, Any]) -> None:
    # USB draws its random initial bank from the global generator after building the network
    # and the EMA copy; the values are given here as they were
    ours.buffers["bank"] = record["initial_state"]["alg.mem_bank"]["tensor"].to(PRECISION)


PREPARE: dict[str, Callable[[Any, Mapping[str, Any]], None]] = {"dash": _prepare_dash, "simmatch": _prepare_simmatch}


def test_a_checkpoint_written_by_usb_imports_with_the_same_logits() -> None:
    """USB's own save_model wrote the file (three FixMatch steps of a small wide ResNet of USB's class)."""
    from semilearn.config import resolve_config
    from semilearn.nets.wrn import WideResNet
    from semilearn.usb import import_usb_checkpoint

    expected = _load("checkpoint")
    usb_state = torch.load(FIXTURES / expected["file"], map_location="cpu", weights_only=True)
    config = resolve_config({"algorithm": "fixmatch", "net": "wrn_28_2"}, algorithm_options={"fixmatch": ()},
                            plugin_sections={}).config
    network = WideResNet(10, depth=expected["depth"], widen_factor=expected["widen_factor"])
    state = import_usb_checkpoint(usb_state, network, config, expected["file"])
    assert state["step"] == expected["it"] and state["imported_from"]["code"] == "USB"
    # USB saved float32 weights; both sides compute the logits from them in float64, compared by the parity rule
    images = _load("views")["views"][0]["x_lb"].to(PRECISION)
    network.to(PRECISION).eval()
    comparison = Comparison()
    for which, weights, logits in (("model", state["model"], expected["logits_model"]),
                                   ("EMA model", state["plugins"]["ema"]["model"], expected["logits_ema_model"])):
        network.load_state_dict(weights)
        with torch.no_grad():
            comparison.tensor(network(images)["logits"], logits, f"{which} logits")
    assert not comparison.failures, comparison.report()
