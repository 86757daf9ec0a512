"""Write the USB parity fixtures with USB's own code (run in an environment that has USB 0.3.2).

    nox -s usb_parity                      # makes that environment and runs this
    python tests/parity/usb_generate.py --out tests/parity/fixtures [ALGORITHM ...]

USB's package (``semilearn==0.3.2`` on the package index) imports as ``semilearn``, like
this project, so it never shares an environment with ours: this script runs beside USB
alone and writes plain tensor files, which ``tests/test_usb_parity.py`` reads without USB.

For every algorithm and case (USB's defaults, and settings that make the unlabelled
losses act within three steps from a random start) it builds USB's algorithm on the CPU
(WRN-28-2, 10 classes, seed 0), runs three training steps on the fixed views of
``views.pt`` and records, per step: every logged loss term, the masks, pseudo-labels and
aligned distributions its hooks return, the gradients, the updated weights, the batch
norm statistics, the EMA weights and the algorithm's state (thresholds, class
distributions, queues, banks). Large tensors are kept as sketches (sums and sampled
values, see :func:`sketch`), so the fixtures stay small. The networks' initial weights
and outputs are recorded in ``nets.pt``. Everything is computed in float64 from networks
built in float32 (``sketch.PRECISION``), and each case records how far its decisions are
from their boundaries (:func:`decision_margin`); tests/parity/README.md says why.

What runs on the CPU needs a few stand-ins, none of which touches the arithmetic: USB
calls ``.cuda()`` on tensors (made a no-op), imports packages it does not use on this path
(torchvision, torchaudio, transformers, timm, scikit-image, wandb, aim: empty modules whose
contents raise if used), and reads its data sets from disk (replaced by in-memory sets of
the same sizes, never iterated). The training step is USB's loop body: ``process_batch``,
``train_step``, then what USB's ParamUpdateHook and EMAHook do, with the gradients read
before USB's ``zero_grad``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import platform
import random
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

warnings.filterwarnings("ignore", message=r".*(GradScaler|CUDA is not available).*")

SEED = 0  # USB's train.py seeds python, torch and numpy with this before building
STEP_SEED = 1000  # before step k both sides seed torch and numpy with STEP_SEED + k
VIEW_SEED = 1234
STEPS = 3
NUM_CLASSES = 10
NUM_LABELLED, NUM_UNLABELLED = 40, 200  # the sizes of the labelled and unlabelled sets
BATCH, URATIO = 4, 2
IMAGE = 32
SKETCH_LIMIT = 8192  # single tensors with more elements are kept as sketches

ALGORITHMS = [
    "fullysupervised", "pimodel", "pseudolabel", "meanteacher", "vat", "mixmatch", "remixmatch", "uda",
    "fixmatch", "flexmatch", "dash", "crmatch", "comatch", "simmatch", "adamatch", "freematch", "softmatch",
    "defixmatch",
]
# Settings under which the unlabelled parts of each algorithm act within three steps of a
# random start (USB's thresholds of 0.95 mask every sample there). "epoch" is the epoch
# the steps run in (CoMatch and SimMatch switch terms on after the first).
EXERCISED: dict[str, dict[str, Any]] = {
    "pseudolabel": {"p_cutoff": 0.15},
    "uda": {"p_cutoff": 0.15},
    "fixmatch": {"p_cutoff": 0.15},
    "crmatch": {"p_cutoff": 0.15},
    "defixmatch": {"p_cutoff": 0.15},
    "adamatch": {"p_cutoff": 0.7},
    "dash": {"rho_init": 2.25},
    "comatch": {"p_cutoff": 0.12, "contrast_p_cutoff": 0.12, "queue_batch": 1, "epoch": 1},
    "simmatch": {"p_cutoff": 0.15, "epoch": 1},
    # VAT's probe is a finite difference of step xi (USB: 1e-6, a constant of its vat_loss): its
    # direction carries float64's rounding divided by xi; at 1e-3 three orders less of it
    "vat": {"vat_xi": 1e-3},
}
SOFT: dict[str, dict[str, Any]] = {  # soft pseudo-labels
    "fixmatch": {"p_cutoff": 0.15, "hard_label": False},
    "flexmatch": {"hard_label": False},
    "uda": {"p_cutoff": 0.15},  # UDA's targets are always soft
}
SEPARATE: dict[str, dict[str, Any]] = {  # use_cat: False, USB's separate passes (its text and audio files)
    "fixmatch": {"p_cutoff": 0.15, "use_cat": False},
    "flexmatch": {"use_cat": False},
    "crmatch": {"p_cutoff": 0.15, "use_cat": False},
    "comatch": {**EXERCISED["comatch"], "use_cat": False},
    "simmatch": {**EXERCISED["simmatch"], "use_cat": False},
}
DASH_RHO_INIT = 2.0  # USB sets rho_init after a 2048-step warm-up; the harness gives it


def cases(algorithm: str) -> list[tuple[str, dict[str, Any]]]:
    found = [("defaults", {})]
    if algorithm in EXERCISED:
        found.append(("exercised", EXERCISED[algorithm]))
    if algorithm in SOFT and algorithm != "uda":
        found.append(("soft", SOFT[algorithm]))
    if algorithm in SEPARATE:
        found.append(("separate", SEPARATE[algorithm]))
    return found


# ---------------------------------------------------------------------------
# Sketches: what is recorded of a tensor.
# ---------------------------------------------------------------------------


sys.path.insert(0, str(Path(__file__).resolve().parent))  # sketch.py beside this file, however it is run
from sketch import PRECISION, SAMPLES, default_dtype, sketch_row  # noqa: E402


def sketch_table(named: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Many tensors (weights, gradients ...): their names, shapes and sketch rows in one table."""
    names = list(named)
    rows = [sketch_row(named[name]) for name in names]
    return {"names": names, "shapes": [list(named[name].shape) for name in names],
            "stats": torch.stack(rows) if rows else torch.zeros(0, 5 + SAMPLES, dtype=torch.float64)}


def sketch(tensor: torch.Tensor) -> dict[str, Any]:
    """One tensor: itself if small, else its shape and sketch row."""
    tensor = tensor.detach().cpu()
    if tensor.numel() <= SKETCH_LIMIT:
        return {"tensor": tensor.clone()}
    return {"shape": list(tensor.shape), "stats": sketch_row(tensor)}


# ---------------------------------------------------------------------------
# USB on the CPU.
# ---------------------------------------------------------------------------


def _unavailable(qualified: str) -> type:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"{qualified} is an import-only stand-in of the parity harness; this code path needs it")

    return type(qualified.rsplit(".", 1)[-1], (), {"__init__": fail, "__call__": fail,
                                                   "__init_subclass__": classmethod(lambda cls, **kw: None)})


def install_import_stand_ins() -> None:
    """Modules USB imports at import time but never uses on the path driven here."""
    names = {
        "torchvision": {}, "torchvision.datasets": {"ImageFolder": None}, "torchvision.datasets.folder": {
            "default_loader": None}, "torchvision.transforms": {}, "torchvision.transforms.transforms": {},
        "torchvision.transforms.functional": {}, "torchaudio": {},
        "transformers": {"BertModel": None, "HubertModel": None, "Wav2Vec2Model": None},
        "timm": {}, "timm.models": {}, "timm.models.layers": {"DropPath": None, "to_2tuple": None},
        "skimage": {}, "skimage.util": {"montage": None}, "wandb": {}, "aim": {},
    }
    for name, attributes in names.items():
        if name in sys.modules:
            continue
        module = types.ModuleType(name)
        module.__path__ = []  # a package, so that submodules import
        for attribute in attributes:
            setattr(module, attribute, _unavailable(f"{name}.{attribute}"))
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)


def install_cpu_patches() -> None:
    """USB moves batches and buffers with ``.cuda()``: on the CPU that is the identity."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]


def import_usb() -> Any:
    install_import_stand_ins()
    install_cpu_patches()
    import semilearn

    version = getattr(semilearn, "__version__", None)
    from importlib.metadata import version as distribution_version

    found = distribution_version("semilearn")
    if found != "0.3.2":
        raise SystemExit(f"this harness drives USB 0.3.2; semilearn {found} is installed ({version})")
    import semilearn.lighting.config as lighting_config

    lighting_config.get_port = lambda: 11111  # it shells out to netstat otherwise
    return semilearn


def set_step_hooks(usb: Any) -> None:
    """Register an algorithm object's own hooks (its masking, alignment ... hooks) without
    AlgorithmBase's training-loop hooks (optimizer, EMA, evaluation, logging), which are not
    part of a step's arithmetic: for algorithm objects made with ``object.__new__``."""
    from semilearn.core.algorithmbase import AlgorithmBase

    usb._hooks, usb.hooks_dict = [], {}
    loop_hooks = AlgorithmBase.set_hooks
    AlgorithmBase.set_hooks = lambda self: None
    try:
        usb.set_hooks()
    finally:
        AlgorithmBase.set_hooks = loop_hooks


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    np.random.seed(seed)


class FixedDataset(torch.utils.data.Dataset):
    """What USB reads of a data set outside loading: data, targets, transform, length."""

    def __init__(self, count: int, labelled: bool, seed: int) -> None:
        generator = np.random.default_rng(seed)
        self.data = generator.integers(0, 256, size=(count, IMAGE, IMAGE, 3), dtype=np.uint8)
        self.targets = [index % NUM_CLASSES for index in range(count)] if labelled else None
        self.transform = None

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Any:
        raise RuntimeError("the parity harness feeds its own views; this data set is never iterated")


def usb_args(algorithm: str, overrides: dict[str, Any]) -> Any:
    from semilearn.lighting.config import get_config

    values = dict(
        algorithm=algorithm, net="wrn_28_2", net_from_name=False, dataset="cifar10", num_classes=NUM_CLASSES,
        num_labels=NUM_LABELLED, batch_size=BATCH, uratio=URATIO, eval_batch_size=16, epoch=1, num_train_iter=20,
        num_eval_iter=10, num_log_iter=5, num_workers=0, seed=SEED, gpu=None, save_dir="/tmp/semilearn-parity",
        save_name=algorithm, use_cat=True, amp=False, clip_grad=0,
    )
    values.update({key: value for key, value in overrides.items() if key not in ("epoch", "rho_init", "vat_xi")})
    args = get_config(values)
    args.distributed = False
    args.gpu = None
    return args


def build(algorithm: str, overrides: dict[str, Any]) -> Any:
    from semilearn.core.utils import ALGORITHMS, get_net_builder

    args = usb_args(algorithm, overrides)
    datasets = {"train_lb": FixedDataset(NUM_LABELLED, True, 1), "train_ulb": FixedDataset(NUM_UNLABELLED, False, 2),
                "eval": FixedDataset(16, True, 3), "test": None}

    def set_dataset(self: Any) -> dict[str, Any]:
        self.args.ulb_dest_len = len(datasets["train_ulb"])
        self.args.lb_dest_len = len(datasets["train_lb"])
        return datasets

    def set_model(self: Any) -> Any:  # built from the seed in float32, as USB builds it, then converted
        with default_dtype(torch.float32):
            return base.set_model(self).to(PRECISION)

    def set_ema_model(self: Any) -> Any:
        with default_dtype(torch.float32):
            return base.set_ema_model(self).to(PRECISION)

    base = ALGORITHMS[algorithm]
    cls = type(f"Cpu{base.__name__}", (base,), {"set_dataset": set_dataset, "set_model": set_model,
                                                  "set_ema_model": set_ema_model})
    seed_everything(SEED)
    with contextlib.redirect_stdout(io.StringIO()), default_dtype(PRECISION):  # USB prints its set-up steps
        usb = cls(args=args, net_builder=get_net_builder(args.net, False), tb_log=None, logger=None)
    if algorithm == "dash":
        usb.rho_init = overrides.get("rho_init", DASH_RHO_INIT)
    if "vat_xi" in overrides:  # USB's vat_loss takes xi as an argument its train_step leaves at 1e-6
        usb.vat_loss = functools.partial(usb.vat_loss, xi=overrides["vat_xi"])
        usb.args.vat_xi = overrides["vat_xi"]
    return usb


# ---------------------------------------------------------------------------
# The views.
# ---------------------------------------------------------------------------


def make_views() -> list[dict[str, torch.Tensor]]:
    """Three steps of inputs: every view any algorithm takes. Images are N(0, 1) values on
    the float16 grid, so the float16 file holds exactly the float32 values both sides use."""
    generator = torch.Generator().manual_seed(VIEW_SEED)
    unlabelled = BATCH * URATIO

    def images(count: int) -> torch.Tensor:
        return torch.randn(count, 3, IMAGE, IMAGE, generator=generator).half().float()

    steps = []
    for _ in range(STEPS):
        view = {
            "idx_lb": torch.randperm(NUM_LABELLED, generator=generator)[:BATCH],
            "x_lb": images(BATCH), "x_lb_s": images(BATCH),
            "y_lb": torch.randint(0, NUM_CLASSES, (BATCH,), generator=generator),
            "idx_ulb": torch.randperm(NUM_UNLABELLED, generator=generator)[:unlabelled],
            "x_ulb_w": images(unlabelled), "x_ulb_s": images(unlabelled),
            "x_ulb_s_0": images(unlabelled), "x_ulb_s_1": images(unlabelled),
            "rot_v": torch.randint(0, 4, (unlabelled,), generator=generator),
        }
        # ReMixMatch: the first strong view rotated by rot_v quarter turns (counter-clockwise)
        view["x_ulb_s_0_rot"] = torch.stack([torch.rot90(image, int(turns), dims=(1, 2))
                                             for image, turns in zip(view["x_ulb_s_0"], view["rot_v"], strict=True)])
        # CRMatch: BATCH images, each in its four rotations
        rotated = images(BATCH)
        view["x_ulb_rot"] = torch.cat([torch.rot90(rotated, k, dims=(2, 3)) for k in range(4)])
        view["rot_v_crmatch"] = torch.arange(4).repeat_interleave(BATCH)
        steps.append(view)
    return steps


def usb_batch(usb: Any, view: dict[str, torch.Tensor], algorithm: str) -> dict[str, torch.Tensor]:
    batch = dict(view)
    if algorithm == "crmatch":
        batch["rot_v"] = view["rot_v_crmatch"]
    del batch["rot_v_crmatch"]
    return usb.process_batch(**batch)


# ---------------------------------------------------------------------------
# One case: three steps of USB's loop body, recorded.
# ---------------------------------------------------------------------------

_PROBED = ("masking", "gen_ulb_targets", "dist_align")
_ALGORITHM_STATE = ("queue_feats", "queue_probs", "queue_ptr", "mem_bank", "labels_bank", "use_hard_label",
                    "p_model", "label_hist", "time_p")


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return sketch(value)
    if isinstance(value, np.ndarray):
        return sketch(torch.from_numpy(value))
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return None


def algorithm_state(usb: Any) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for hook_name, hook in usb.hooks_dict.items():
        if hook_name in ("ParamUpdateHook", "EMAHook", "EvaluationHook", "CheckpointHook", "DistSamplerSeedHook",
                         "TimerHook", "LoggingHook"):
            continue
        for attribute, value in vars(hook).items():
            plain = _plain(value)
            if plain is not None and attribute not in ("priority", "name"):
                state[f"{hook_name}.{attribute}"] = plain
    for attribute in _ALGORITHM_STATE:
        if hasattr(usb, attribute):
            plain = _plain(getattr(usb, attribute))
            if plain is not None:
                state[f"alg.{attribute}"] = plain
    return state


def perturbed(tensor: torch.Tensor, relative: float, generator: torch.Generator) -> torch.Tensor:
    """``tensor * (1 + relative * noise)``, the noise standard normal from ``generator``."""
    noise = torch.randn(tensor.shape, generator=generator, dtype=torch.float64)
    return (tensor.double() * (1 + relative * noise)).to(tensor.dtype)


def run_case(algorithm: str, overrides: dict[str, Any], views: list[dict[str, torch.Tensor]],
             perturbation: float = 0.0) -> dict[str, Any]:
    """Three recorded steps; with ``perturbation``, every weight and view is first multiplied by
    ``1 + perturbation * noise`` (see :func:`decision_margin`)."""
    with default_dtype(PRECISION):
        return _run_case(algorithm, overrides, [{key: value.to(PRECISION) if value.is_floating_point() else value
                                                 for key, value in view.items()} for view in views], perturbation)


def _run_case(algorithm: str, overrides: dict[str, Any], views: list[dict[str, torch.Tensor]],
              perturbation: float) -> dict[str, Any]:
    usb = build(algorithm, overrides)
    model = usb.model
    if perturbation:
        generator = torch.Generator().manual_seed(VIEW_SEED)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(perturbed(parameter, perturbation, generator))
        views = [{key: perturbed(value, perturbation, generator) if value.is_floating_point() else value
                  for key, value in view.items()} for view in views]
    record: dict[str, Any] = {
        "algorithm": algorithm, "overrides": dict(overrides),
        "args": {key: value for key, value in vars(usb.args).items()
                 if isinstance(value, (bool, int, float, str)) and not key.startswith("_")},
        "model_class": type(model).__name__,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "initial": sketch_table(dict(model.state_dict())),
        "initial_state": algorithm_state(usb),
        "steps": [],
    }
    model.train()
    usb.epoch = overrides.get("epoch", 0)
    usb.call_hook("before_run", "EMAHook")
    probes: list[tuple[str, Any]] = []
    call_hook = usb.call_hook

    def recording_call_hook(fn_name: str, hook_name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        result = call_hook(fn_name, hook_name, *args, **kwargs)
        if fn_name in _PROBED and isinstance(result, torch.Tensor):
            probes.append((fn_name, result.detach().clone()))
        return result

    usb.call_hook = recording_call_hook
    for step, view in enumerate(views):
        probes.clear()
        seed_everything(STEP_SEED + step)
        usb.out_dict, usb.log_dict = usb.train_step(**usb_batch(usb, view, algorithm))
        # USB's ParamUpdateHook.after_train_step, with the gradients read before zero_grad
        loss = usb.out_dict["loss"]
        loss.backward()
        gradients = {name: parameter.grad.detach().clone() for name, parameter in model.named_parameters()
                     if parameter.grad is not None}
        usb.optimizer.step()
        usb.scheduler.step()
        model.zero_grad()
        call_hook("after_train_step", "EMAHook")
        usb.it += 1
        record["steps"].append({
            "loss": loss.detach().double(),
            "log": {key: float(value) for key, value in usb.log_dict.items()},
            "probes": [(name, sketch(value)) for name, value in probes],
            "gradients": sketch_table(gradients),
            "parameters": sketch_table(dict(model.named_parameters())),
            "buffers": sketch_table({name: buffer for name, buffer in model.named_buffers()
                                     if not name.endswith("num_batches_tracked")}),
            "ema": sketch_table(dict(usb.ema.shadow)),
            "lr": float(usb.optimizer.param_groups[0]["lr"]),
            "state": algorithm_state(usb),
        })
    return record


# ---------------------------------------------------------------------------
# Decisions: how far each case's discrete outcomes are from their boundaries.
# ---------------------------------------------------------------------------

# Relative perturbations tried, largest first (float64 rounds at 1.1e-16).
PERTURBATIONS = (1e-6, 1e-8, 1e-10)


def discrete_outcomes(record: dict[str, Any]) -> list[torch.Tensor]:
    """What a step decides rather than computes: hard pseudo-labels and masks of 0 and 1 among the
    probes, integer state (FlexMatch's selected labels, queue pointers ...)."""
    found: list[torch.Tensor] = []
    for step in record["steps"]:
        values = [value.get("tensor") for _, value in step["probes"]]
        values += [value.get("tensor") if isinstance(value, dict) else torch.tensor(value)
                   for value in step["state"].values() if not isinstance(value, (str, type(None)))]
        for value in values:
            if value is None:
                continue
            if not value.is_floating_point() or bool(((value == 0) | (value == 1)).all()):
                found.append(value)
    return found


def decision_margin(algorithm: str, overrides: dict[str, Any], views: list[dict[str, torch.Tensor]],
                    record: dict[str, Any]) -> dict[str, Any]:
    """The largest relative perturbation of the weights and views (both signs, the same noise) under
    which every discrete outcome of the three steps stays as it is: a decision nearer its boundary
    than rounding could flip on another CPU; one this far from it cannot. 0.0 if none holds."""
    expected = discrete_outcomes(record)
    for size in PERTURBATIONS:
        if all(all(torch.equal(a, b) for a, b in zip(expected, discrete_outcomes(
                run_case(algorithm, overrides, views, sign * size)), strict=True)) for sign in (1, -1)):
            return {"count": sum(value.numel() for value in expected), "stable_under": size}
    return {"count": sum(value.numel() for value in expected), "stable_under": 0.0}


# ---------------------------------------------------------------------------
# Networks.
# ---------------------------------------------------------------------------


def networks() -> dict[str, Any]:
    from semilearn.nets.resnet import resnet
    from semilearn.nets.wrn import wrn, wrn_var

    builders = {
        "wrn_28_2": (lambda: wrn.wrn_28_2(num_classes=10), 32),
        "wrn_28_8": (lambda: wrn.wrn_28_8(num_classes=100), 32),
        "wrn_var_37_2": (lambda: wrn_var.wrn_var_37_2(num_classes=10), 96),
        "resnet18": (lambda: resnet.ResNet50(block=resnet.BasicBlock, layers=[2, 2, 2, 2], num_classes=10), 96),
    }
    found = {}
    for name, (builder, size) in builders.items():
        seed_everything(SEED)
        net = builder()
        initial = sketch_table(dict(net.state_dict()))
        net.to(PRECISION)
        images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(VIEW_SEED)).to(PRECISION)
        net.train()
        with torch.no_grad():
            output = net(images)
        found[name] = {
            "image_size": size, "parameters": sum(parameter.numel() for parameter in net.parameters()),
            "keys": list(net.state_dict()), "initial": initial,
            "logits": output["logits"].clone(), "feat": sketch(output["feat"]),
            "buffers_after_forward": sketch_table({key: value for key, value in net.named_buffers()
                                                   if not key.endswith("num_batches_tracked")}),
        }
    return found


def usb_checkpoint(views: list[dict[str, torch.Tensor]], out: Path) -> dict[str, Any]:
    """A checkpoint written by USB's own ``save_model`` after three FixMatch steps, of a small
    wide ResNet from USB's class (depth 10, width 1: a file of about a megabyte), and the
    logits of its model and EMA model on the first labelled view."""
    from semilearn.nets.wrn.wrn import WideResNet

    def tiny(num_classes: int, **kwargs: Any) -> torch.nn.Module:
        return WideResNet(first_stride=1, num_classes=num_classes, depth=10, widen_factor=1)

    usb = build("fixmatch", {"p_cutoff": 0.15})
    seed_everything(SEED)
    with contextlib.redirect_stdout(io.StringIO()):
        usb.net_builder = tiny
        usb.model = usb.set_model().float()  # trained and saved in float32, as USB's runs are
        usb.ema_model = usb.set_ema_model().float()
        usb.optimizer, usb.scheduler = usb.set_optimizer()
    usb.model.train()
    usb.epoch = 0
    usb.call_hook("before_run", "EMAHook")
    for step, view in enumerate(views):
        seed_everything(STEP_SEED + step)
        usb.out_dict, usb.log_dict = usb.train_step(**usb_batch(usb, view, "fixmatch"))
        usb.call_hook("after_train_step", "ParamUpdateHook")
        usb.call_hook("after_train_step", "EMAHook")
        if step == len(views) - 1:  # as USB's CheckpointHook: before the step counter moves
            with contextlib.redirect_stdout(io.StringIO()):
                usb.save_model("usb_fixmatch_wrn_10_1.pth", str(out))
        usb.it += 1
    images = views[0]["x_lb"].to(PRECISION)  # the logits in float64: the test compares them at the parity tolerance
    usb.model.to(PRECISION).eval()
    usb.ema_model.to(PRECISION).eval()
    with torch.no_grad():
        return {"file": "usb_fixmatch_wrn_10_1.pth", "depth": 10, "widen_factor": 1, "it": usb.it,
                "logits_model": usb.model(images)["logits"].clone(),
                "logits_ema_model": usb.ema_model(images)["logits"].clone()}


def cpu_name() -> str:
    """The CPU's model name and the instruction set PyTorch's kernels use (fixtures made elsewhere say so)."""
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("algorithms", nargs="*", default=ALGORITHMS)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "fixtures")
    parser.add_argument("--threads", type=int, default=2, help="torch's CPU threads (default 2)")
    options = parser.parse_args()
    usb = import_usb()
    torch.set_num_threads(options.threads)
    options.out.mkdir(parents=True, exist_ok=True)
    provenance = {"semilearn (USB)": "0.3.2", "torch": str(torch.__version__), "numpy": str(np.__version__),
                  "precision": str(PRECISION), "cpu": cpu_name(), "threads": torch.get_num_threads(),
                  "python": platform.python_version(), "machine": platform.machine(),
                  "usb_module": str(Path(usb.__file__).parent)}
    views = make_views()
    torch.save({"views": [{key: value.half() if value.is_floating_point() else value for key, value in view.items()}
                          for view in views], "provenance": provenance}, options.out / "views.pt")
    if options.algorithms == ALGORITHMS:
        torch.save({"networks": networks(), "provenance": provenance}, options.out / "nets.pt")
        torch.save({**usb_checkpoint(views, options.out), "provenance": provenance}, options.out / "checkpoint.pt")
        print("nets.pt, checkpoint.pt", flush=True)
    for algorithm in options.algorithms:
        records = {name: run_case(algorithm, overrides, views) for name, overrides in cases(algorithm)}
        for name, overrides in cases(algorithm):
            records[name]["decisions"] = decision_margin(algorithm, overrides, views, records[name])
        torch.save({"cases": records, "provenance": provenance}, options.out / f"{algorithm}.pt")
        losses = {name: [round(float(step["loss"]), 6) for step in record["steps"]] for name, record in records.items()}
        print(f"{algorithm}.pt {losses}", flush=True)


if __name__ == "__main__":
    main()
