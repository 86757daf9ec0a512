"""The built-in algorithms, data sets, modalities and networks, registered through the registration hooks.

The lists live beside what they list (``semilearn.algorithms``, ``semilearn.data``,
``semilearn.nets``); the ``semilearn data`` commands come from :mod:`semilearn.data.commands`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

from ..algorithms import BUILTIN_ALGORITHMS
from ..data import BUILTIN_DATASETS, BUILTIN_MODALITIES
from ..hook import Hook, hookimpl, on_all_ranks
from ..nets import BUILTIN_NETS
from ..plugins import import_target

__all__ = ["Catalog", "BUILTIN_ALGORITHMS", "BUILTIN_DATASETS", "BUILTIN_NETS", "BUILTIN_MODALITIES", "import_target"]


class Catalog(Hook):
    """Registers the built-in algorithms, data sets, modalities and networks."""

    @hookimpl
    def register_algorithms(self, register: Callable[..., None]) -> None:
        for name, target in BUILTIN_ALGORITHMS.items():
            register(name, import_target(target))

    @hookimpl
    def register_datasets(self, register: Callable[..., None]) -> None:
        for name, (target, description) in BUILTIN_DATASETS.items():
            register(name, import_target(target), description)

    @hookimpl
    def register_modalities(self, register: Callable[..., None]) -> None:
        for name, (target, description) in BUILTIN_MODALITIES.items():
            register(name, import_target(target), description)

    @hookimpl
    def register_nets(self, register: Callable[..., None]) -> None:
        for name, (target, description) in BUILTIN_NETS.items():
            register(name, import_target(target), description)

    @on_all_ranks
    @hookimpl
    def register_commands(self, cli: click.Group) -> None:
        from ..data.commands import data_group
        from ..inference.commands import inference_commands

        cli.add_command(data_group)
        for command in inference_commands():
            cli.add_command(command)
