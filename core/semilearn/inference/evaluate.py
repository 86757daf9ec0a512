"""``semilearn evaluate TARGET``: score a trained model on its test split or another data set."""

from __future__ import annotations

import click

__all__ = ["evaluate_command"]


@click.command("evaluate")
@click.argument("target", type=click.Path(path_type=str))
def evaluate_command(target: str) -> int:
    """Evaluate the trained model of TARGET (a run directory or a checkpoint file)."""
    raise NotImplementedError("being written")
