"""``semilearn data ...``: commands for data sets (added by the built-in ``catalog`` plugin)."""

from __future__ import annotations

import click

__all__ = ["data_group"]


@click.group("data")
def data_group() -> None:
    """Work with data sets."""
