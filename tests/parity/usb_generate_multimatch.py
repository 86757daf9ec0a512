"""Write the MultiMatch parity fixture with USB's own MultiMatch code (run beside USB 0.3.2).

    python tests/parity/usb_generate_multimatch.py --out tests/parity/fixtures/multimatch \\
        --usb-repo /path/to/Semi-supervised-learning/.git

MultiMatch is not in USB's published package (0.3.2): it came later to USB's repository
(commit 93457be, "Add MultiMatch."). This script reads its two files,
``semilearn/algorithms/multimatch/{multimatch,utils}.py``, from a git clone of USB's
repository at ``--commit`` (default 1ef4cbe, the merge that brought them in; the files are
the same as at 93457be) with ``git show``, writes them to a temporary folder outside this
repository and imports them as a module of the installed ``semilearn`` 0.3.2, whose
FreeMatch and FlexMatch thresholding hooks they use. Nothing of USB's code is kept.

USB's MultiMatch wants ``model(x)['logits']`` to be a list of per-head logits. USB's
multi-head BERT cannot be built here, so both sides use the same small network: a fixed
MLP feature extractor and three linear heads (see ``MultiHeadMLP``; the fixture holds its
weights). USB's algorithm object is made with ``object.__new__`` and given the attributes
its ``train_step`` reads (``args``, ``model``, ``num_classes``, ``num_heads``,
``lambda_u``, ``use_cat``, ``epoch``, ``it``, the thresholding arguments through its own
``init_maskinghook_args``); its ``set_hooks`` registers its APM hook and per-head masking
hooks, with AlgorithmBase's training-loop hooks (optimizer, EMA, evaluation, logging ...)
left out. Each step: ``train_step``, ``loss.backward()``, the APM hook's
``after_train_step`` (the recalibration), then a plain SGD step (lr 0.1), which the test
repeats by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sketch import PRECISION, default_dtype  # noqa: E402
from usb_generate import PERTURBATIONS, VIEW_SEED, cpu_name, import_usb, perturbed, set_step_hooks  # noqa: E402

COMMIT = "1ef4cbebcc0b368158315aeb425053858cf6c845"
FILES = ("multimatch.py", "utils.py")
FEATURES, HIDDEN, CLASSES, HEADS = 8, 16, 4, 3
NUM_UNLABELLED, BATCH_LB, BATCH_ULB = 12, 2, 4
EPOCHS = (0, 0, 1, 1, 1, 2)  # the epoch of each step
LR = 0.1
NET_SEED, DATA_SEED = 0, 1234
BASE = dict(num_heads=3, apm_percentile=0.05, smoothness=0.997, apm_disagreement_weight=3.0, no_low=True,
            num_recalibrate_iter=1, average_losses=False, adjust_clf_size=False, hard_label=True, T=0.5,
            ema_p=0.999, ent_loss_ratio=0.01, use_quantile=False, clip_thresh=False, p_cutoff=0.95,
            thresh_warmup=True, ulb_loss_ratio=1.0, use_cat=True, threshold_algo="freematch")
CASES = {
    "freematch": {"ema_p": 0.5, "use_quantile": True},
    "freematch_low_separate": {"no_low": False, "use_cat": False},
    "flexmatch": {"threshold_algo": "flexmatch", "p_cutoff": 0.7},
    "flexmatch_nowarmup_low": {"threshold_algo": "flexmatch", "p_cutoff": 0.7, "thresh_warmup": False,
                               "no_low": False},
    "none": {"threshold_algo": "none"},
}


class MultiHeadMLP(nn.Module):
    """Features ``tanh(W x + b)`` and three linear heads; ``{'logits': [head0, head1, head2], 'feat': ...}``
    as USB's ClassificationBertMultihead returns (the test's twin returns this project's shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(FEATURES, HIDDEN)
        self.heads = nn.ModuleList(nn.Linear(HIDDEN, CLASSES) for _ in range(HEADS))

    def forward(self, x: torch.Tensor) -> dict[str, Any]:
        feat = torch.tanh(self.body(x))
        return {"logits": [head(feat) for head in self.heads], "feat": feat}


def initial_state(centres: torch.Tensor) -> dict[str, torch.Tensor]:
    """Seeded weights; the heads start near a shared prototype classifier of the class centres (so that
    they agree often and every class is predicted), each with its own noise (so that they also disagree)."""
    torch.manual_seed(NET_SEED)
    net = MultiHeadMLP()
    with torch.no_grad():
        prototypes = torch.tanh(net.body(centres))
        for head in net.heads:
            head.weight.mul_(3.0).add_(2.0 * prototypes)
    return {name: value.clone() for name, value in net.state_dict().items()}


def make_steps() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The class centres, and the inputs of every step, stacked: 12 unlabelled samples around the centres,
    4 drawn a step (they repeat across steps), weak views close to the sample, strong ones further; 2
    labelled samples a step. Values on the float16 grid."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    centres = torch.randn(CLASSES, FEATURES, generator=generator) * 1.5
    classes = torch.arange(NUM_UNLABELLED) % CLASSES
    samples = centres[classes] + torch.randn(NUM_UNLABELLED, FEATURES, generator=generator)
    steps: dict[str, list[torch.Tensor]] = {"x_lb": [], "y_lb": [], "idx_ulb": [], "x_ulb_w": [], "x_ulb_s": []}
    for _ in EPOCHS:
        idx = torch.randperm(NUM_UNLABELLED, generator=generator)[:BATCH_ULB]
        y_lb = torch.randint(0, CLASSES, (BATCH_LB,), generator=generator)
        steps["x_lb"].append((centres[y_lb] + torch.randn(BATCH_LB, FEATURES, generator=generator)).half().float())
        steps["y_lb"].append(y_lb)
        steps["idx_ulb"].append(idx)
        steps["x_ulb_w"].append((samples[idx] + 0.2 * torch.randn(BATCH_ULB, FEATURES, generator=generator))
                                .half().float())
        steps["x_ulb_s"].append((samples[idx] + 1.0 * torch.randn(BATCH_ULB, FEATURES, generator=generator))
                                .half().float())
    return centres, {name: torch.stack(values) for name, values in steps.items()}


def load_usb_multimatch(repo: Path, commit: str) -> Any:
    """USB's MultiMatch module, from its repository at ``commit``, as ``semilearn.algorithms.multimatch``."""
    import semilearn.algorithms as algorithms
    import semilearn.algorithms.freematch.utils as freematch_utils

    # the later repository spells FreeMatch's hook FreeMatchThresholingHook; 0.3.2's is the same class
    freematch_utils.FreeMatchThresholingHook = freematch_utils.FreeMatchThresholdingHook
    folder = Path(tempfile.mkdtemp(prefix="usb-multimatch-")) / "multimatch"
    folder.mkdir()
    for name in FILES:
        text = subprocess.run(["git", "--git-dir", str(repo), "show", f"{commit}:semilearn/algorithms/multimatch/{name}"],
                              check=True, capture_output=True, text=True).stdout
        (folder / name).write_text(text)
    package = types.ModuleType("semilearn.algorithms.multimatch")
    package.__path__ = [str(folder)]
    sys.modules["semilearn.algorithms.multimatch"] = package
    algorithms.multimatch = package  # type: ignore[attr-defined]
    import semilearn.algorithms.multimatch.multimatch as module

    return module


def build(module: Any, settings: dict[str, Any], net: nn.Module) -> Any:

    args = argparse.Namespace(**settings, num_classes=CLASSES, ulb_dest_len=NUM_UNLABELLED, gpu=None)
    usb = object.__new__(module.MultiMatch)
    usb.args, usb.model, usb.num_classes, usb.num_heads = args, net, CLASSES, args.num_heads
    usb.gpu, usb.distributed, usb.world_size, usb.print_fn = None, False, 1, lambda *a, **k: None
    usb.lambda_u, usb.use_cat, usb.epoch, usb.it = args.ulb_loss_ratio, args.use_cat, 0, 0
    usb.init_maskinghook_args(T=args.T, hard_label=args.hard_label, ema_p=args.ema_p, use_quantile=args.use_quantile,
                              clip_thresh=args.clip_thresh, p_cutoff=args.p_cutoff,
                              thresh_warmup=args.thresh_warmup, threshold_algo=args.threshold_algo)
    set_step_hooks(usb)
    return usb


MASK_STATE = {"freematch": ("p_model", "label_hist", "time_p"), "flexmatch": ("classwise_acc", "selected_label"),
              "none": ()}


def run_case(module: Any, settings: dict[str, Any], state: dict[str, torch.Tensor],
             steps: dict[str, torch.Tensor], perturbation: float = 0.0) -> dict[str, torch.Tensor]:
    """Every step's values, stacked over the steps (first dimension): the losses, the APM hook's memory,
    cut-offs and weak labels, each head's masking-hook state (``<name>_<head>``), the gradients and the
    weights after the SGD step (flattened in ``named_parameters`` order). In float64, from the float32
    weights; with ``perturbation``, the weights and inputs multiplied by ``1 + perturbation * noise`` first."""
    with default_dtype(PRECISION):
        return _run_case(module, settings, state, steps, perturbation)


def _run_case(module: Any, settings: dict[str, Any], state: dict[str, torch.Tensor],
              steps: dict[str, torch.Tensor], perturbation: float) -> dict[str, torch.Tensor]:
    net = MultiHeadMLP()
    net.load_state_dict(state)
    net.to(PRECISION).train()
    steps = {name: value.to(PRECISION) if value.is_floating_point() else value for name, value in steps.items()}
    if perturbation:
        generator = torch.Generator().manual_seed(VIEW_SEED)
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.copy_(perturbed(parameter, perturbation, generator))
        steps = {name: perturbed(value, perturbation, generator) if value.is_floating_point() else value
                 for name, value in steps.items()}
    usb = build(module, settings, net)
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    records: dict[str, list[torch.Tensor]] = {}

    def keep(name: str, value: Any) -> None:
        records.setdefault(name, []).append(torch.as_tensor(value).detach().clone())

    for it, epoch in enumerate(EPOCHS):
        usb.it, usb.epoch = it, epoch
        optimizer.zero_grad()
        with contextlib.redirect_stdout(io.StringIO()):  # USB prints "Recomputing apm_cutoff..."
            out, log = usb.train_step(x_lb=steps["x_lb"][it], y_lb=steps["y_lb"][it], x_ulb_w=steps["x_ulb_w"][it],
                                      x_ulb_s=steps["x_ulb_s"][it], idx_ulb=steps["idx_ulb"][it])
            out["loss"].backward()
            usb.call_hook("after_train_step", "APMHook")
        keep("grads", torch.cat([parameter.grad.flatten() for parameter in net.parameters()]))
        optimizer.step()
        keep("weights", torch.cat([parameter.flatten() for parameter in net.parameters()]))
        keep("loss", out["loss"])
        for name in ("sup_loss", "unsup_loss", "total_loss"):
            keep(name, torch.tensor(log[f"train/{name}"], dtype=torch.float64))
        apm_hook = usb.hooks_dict["APMHook"]
        for name in ("apm", "apm_cutoff", "weak_labels"):
            keep(name, getattr(apm_hook, name))
        for head in range(HEADS):
            for name in MASK_STATE[settings["threshold_algo"]]:
                keep(f"{name}_{head}", getattr(usb.hooks_dict[f"MaskingHook{head}"], name))
    return {name: torch.stack(values) for name, values in records.items()}


def decision_margin(module: Any, settings: dict[str, Any], state: dict[str, torch.Tensor],
                    steps: dict[str, torch.Tensor], records: dict[str, torch.Tensor]) -> dict[str, Any]:
    """As usb_generate.decision_margin: the largest relative perturbation (both signs) under which the
    integer records (weak labels, FlexMatch's selected labels) stay as they are."""
    decided = [name for name, value in records.items() if bool((value == value.round()).all())]  # labels, counts
    count = sum(records[name].numel() for name in decided)
    for size in PERTURBATIONS:
        if all(all(torch.equal(records[name], run_case(module, settings, state, steps, sign * size)[name])
                   for name in decided) for sign in (1, -1)):
            return {"count": count, "stable_under": size}
    return {"count": count, "stable_under": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "fixtures" / "multimatch")
    parser.add_argument("--usb-repo", type=Path, required=True,
                        help="git directory of a clone of microsoft/Semi-supervised-learning")
    parser.add_argument("--commit", default=COMMIT)
    options = parser.parse_args()
    usb_package = import_usb()
    torch.set_num_threads(2)
    module = load_usb_multimatch(options.usb_repo, options.commit)
    centres, steps = make_steps()
    state = initial_state(centres)
    cases = {}
    for name, overrides in CASES.items():
        settings = {**BASE, **overrides}
        records = run_case(module, settings, state, steps)
        cases[name] = {"settings": settings, "records": records,
                       "decisions": decision_margin(module, settings, state, steps, records)}
    provenance = {"semilearn (USB)": "0.3.2", "multimatch files": f"{options.commit}:semilearn/algorithms/multimatch",
                  "torch": str(torch.__version__), "python": platform.python_version(),
                  "precision": str(PRECISION), "cpu": cpu_name(), "threads": torch.get_num_threads(),
                  "machine": platform.machine(), "usb_module": str(Path(usb_package.__file__).parent)}
    options.out.mkdir(parents=True, exist_ok=True)
    torch.save({"initial_state": state, "inputs": steps, "epochs": list(EPOCHS), "lr": LR,
                "num_unlabelled": NUM_UNLABELLED, "cases": cases, "provenance": provenance},
               options.out / "multimatch.pt")
    for name, case in cases.items():
        records = case["records"]
        print(name, "loss", [round(float(v), 4) for v in records["loss"]],
              "unsup", [round(float(v), 4) for v in records["unsup_loss"]], flush=True)
        print("  cut-offs", records["apm_cutoff"][-1].tolist(), flush=True)


if __name__ == "__main__":
    main()
