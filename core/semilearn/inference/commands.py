"""``semilearn evaluate | predict | export``: the commands that use a trained model.

Added to the command line by the built-in ``catalog`` plugin (:func:`inference_commands`).
Each command lives beside what it does: :mod:`.evaluate`, :mod:`.predict`, :mod:`.export`.
"""

from __future__ import annotations

import click

__all__ = ["inference_commands"]


def inference_commands() -> list[click.Command]:
    """The commands, imported when the command line starts (they import torch only when run)."""
    from .evaluate import evaluate_command
    from .export import export_command
    from .predict import predict_command

    return [evaluate_command, predict_command, export_command]
