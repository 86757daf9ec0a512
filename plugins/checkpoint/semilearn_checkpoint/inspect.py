"""``semilearn checkpoint inspect PATH``: what a checkpoint holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .files import load_checkpoint_file

__all__ = ["checkpoint_group", "describe"]

_SUMMARY_KEYS = ("algorithm", "dataset", "net", "num_labels", "seed", "batch_size", "uratio", "num_train_iter", "lr")


def describe(path: Path) -> dict[str, Any]:
    state = load_checkpoint_file(path)
    history = state.get("eval_history") or []
    config = state.get("config") or {}
    best = max(history, key=lambda entry: entry.get("top1_acc", float("-inf"))) if history else None
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
    parts += [f"{name} {value:.4f}" for name, value in entry.items() if name != "step"]
    return ", ".join(parts)


@click.group("checkpoint")
def checkpoint_group() -> None:
    """Work with checkpoint files."""


@checkpoint_group.command("inspect")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect_command(path: Path, as_json: bool) -> None:
    """Print a checkpoint's step, metrics, configuration summary and versions."""
    info = describe(path)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    click.echo(f"{info['path']} ({info['bytes'] / 1e6:.1f} MB)")
    click.echo(f"  step {info['step']}/{info['num_train_iter']} (epoch {info['epoch']}) · "
               f"algorithm {info['algorithm']} · {info['world_size']} process(es)")
    click.echo(f"  model: {info['model_parameters']} parameters · EMA model: {'yes' if info['has_ema'] else 'no'}")
    click.echo(f"  last eval: {_format_eval(info['last_eval'])}")
    click.echo(f"  best eval: {_format_eval(info['best_eval'])}")
    click.echo("  config: " + ", ".join(f"{key}={value}" for key, value in info["config"].items()))
    versions = info["versions"] or {}
    plugins = versions.get("plugins", {})
    click.echo(f"  versions: semilearn-core {versions.get('semilearn-core')}"
               + "".join(f", {entry['distribution']} {entry['version']}" for entry in plugins.values()))
    click.echo(f"  plugin state: {', '.join(info['plugins']) or '-'}")
