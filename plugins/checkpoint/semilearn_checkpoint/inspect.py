"""``semilearn checkpoint inspect PATH``: what a checkpoint holds; ``semilearn checkpoint
import-usb PATH``: a USB checkpoint's weights as a semilearn checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from semilearn.metrics import best_evaluation, format_metric, saved_monitor
from semilearn.rundir import run_checkpoint

from .files import load_checkpoint_file

__all__ = ["checkpoint_group", "describe"]

_SUMMARY_KEYS = ("algorithm", "dataset", "net", "num_labels", "seed", "batch_size", "uratio", "num_train_iter", "lr")


def describe(path: Path) -> dict[str, Any]:
    state = load_checkpoint_file(path)
    history = state.get("eval_history") or []
    config = state.get("config") or {}
    saved = (state.get("plugins") or {}).get("checkpoint") or {}
    # the run's monitor and mode: engine keys now, the checkpoint plugin's before (its state has them too)
    monitor, mode = saved_monitor(config, saved)
    best = best_evaluation(history, monitor, mode)
    parameters = sum(tensor.numel() for tensor in state.get("model", {}).values() if hasattr(tensor, "numel"))
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "step": state.get("step"),
        "num_train_iter": state.get("num_train_iter"),
        "epoch": state.get("epoch"),
        "algorithm": state.get("algorithm"),
        "world_size": state.get("world_size"),
        "last_eval": history[-1] if history else None,
        "best_eval": best,
        "monitor": monitor,
        "mode": mode,
        "config": {key: config.get(key) for key in _SUMMARY_KEYS if key in config},
        "versions": state.get("versions"),
        "plugins": sorted((state.get("plugins") or {}).keys()),
        "model_parameters": parameters,
        "has_ema": "model" in (state.get("plugins") or {}).get("ema", {}),
    }


def _format_eval(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    parts = [f"step {int(entry['step'])}"]
    parts += [f"{name} {format_metric(name, value)}" for name, value in entry.items() if name != "step"]
    return ", ".join(parts)


@click.group("checkpoint")
def checkpoint_group() -> None:
    """Work with checkpoint files."""


@checkpoint_group.command("inspect")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--checkpoint", "which", type=click.Choice(["last", "best"]), default="last", show_default=True,
              help="For a run directory: which of its checkpoints.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect_command(path: Path, which: str, as_json: bool) -> None:
    """Print a checkpoint's step, metrics, configuration summary and versions.

    PATH is a checkpoint file or a run directory (its last.pt; --checkpoint best for best.pt).
    """
    info = describe(run_checkpoint(path, which))
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    click.echo(f"{info['path']} ({info['bytes'] / 1e6:.1f} MB)")
    click.echo(f"  step {info['step']}/{info['num_train_iter']} (epoch {info['epoch']}) · "
               f"algorithm {info['algorithm']} · {info['world_size']} process(es)")
    click.echo(f"  model: {info['model_parameters']} parameters · EMA model: {'yes' if info['has_ema'] else 'no'}")
    click.echo(f"  last eval: {_format_eval(info['last_eval'])}")
    best = _format_eval(info["best_eval"])
    if info["best_eval"] is None and info["last_eval"] is not None:
        best += f" (no evaluation reported '{info['monitor']}')"
    click.echo(f"  best eval ({info['mode']} {info['monitor']}): {best}")
    click.echo("  config: " + ", ".join(f"{key}={value}" for key, value in info["config"].items()))
    versions = info["versions"] or {}
    plugins = versions.get("plugins", {})
    click.echo(f"  versions: semilearn-core {versions.get('semilearn-core')}"
               + "".join(f", {entry['distribution']} {entry['version']}" for entry in plugins.values()))
    click.echo(f"  plugin state: {', '.join(info['plugins']) or '-'}")


@checkpoint_group.command("import-usb")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("config_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Configuration overrides (the run's net, num_classes ...), as for `semilearn run`.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the semilearn checkpoint.")
@click.pass_context
def import_usb_command(context: click.Context, path: Path, config_file: Path | None, overrides: tuple[str, ...],
                       output: Path) -> None:
    """Turn a USB checkpoint (latest_model.pth, model_best.pth) into a semilearn checkpoint.

    USB's files do not say which network they hold: give the run's USB configuration file
    (CONFIG_FILE) or --set net=... num_classes=...; the model and EMA weights are mapped
    onto that network tensor by tensor. The result holds weights, not a training state: it
    can be inspected and evaluated, not resumed.
    """
    import torch

    from semilearn import CheckpointError
    from semilearn.paths import regular_file
    from semilearn.runner import load_config
    from semilearn.usb import import_usb_checkpoint

    from .files import atomic_save

    manager = context.obj.manager
    regular_file(path, "USB checkpoint", error=CheckpointError)  # a named pipe or a device is never opened
    config = load_config(manager, config_file, overrides).config
    try:
        usb_state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"cannot read {path} as a USB checkpoint: {str(error).splitlines()[0]}") from error
    weights = usb_state.get("model") if isinstance(usb_state, dict) else None
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path} is not a USB checkpoint (it has no 'model' state dict)")
    # what the file itself says: the stem's input channels, the classifier's classes
    channels = next((int(tensor.shape[1]) for tensor in weights.values() if tensor.ndim == 4), 3)
    classes = next((int(tensor.shape[0]) for name, tensor in weights.items() if name.endswith("classifier.weight")),
                   None)
    net = config.net if config.net != "auto" else "wrn_28_2"
    from semilearn.data import InputSpec

    size = config.img_size or 32
    spec = InputSpec("image", (channels, size, size))
    network = manager.registry("net").get(net)(config.num_classes or classes or 10, spec)
    state = import_usb_checkpoint(usb_state, network, config, str(path))
    atomic_save(state, output)
    parameters = sum(parameter.numel() for parameter in network.parameters())
    click.echo(f"{output}: USB's step {state['step']} of {config.net} ({parameters} parameters)"
               + (", with its EMA weights" if "ema" in state["plugins"] else ""))
