"""The built-in algorithms, data sets and networks, registered through the registration hooks."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..hook import Hook, hookimpl

__all__ = ["Catalog", "BUILTIN_ALGORITHMS", "BUILTIN_DATASETS", "BUILTIN_NETS", "import_target"]

# name -> "module:attribute"; imported only when a registry is first built
BUILTIN_ALGORITHMS: dict[str, str] = {
    "supervised": "semilearn.algorithms.supervised:Supervised",
    "fixmatch": "semilearn.algorithms.fixmatch:FixMatch",
}
# name -> ("module:builder", description)
BUILTIN_DATASETS: dict[str, tuple[str, str]] = {
    "digits": ("semilearn.data.digits:build_digits", "scikit-learn's 8x8 handwritten digits (1797 images, offline)"),
    "synthetic": ("semilearn.data.synthetic:build_synthetic", "generated 32x32x3 images of 10 classes (speed work)"),
}
BUILTIN_NETS: dict[str, tuple[str, str]] = {
    "small_cnn": ("semilearn.nets.cnn:small_cnn", "4-layer CNN for tiny images (8x8 digits)"),
    "wrn_28_2": ("semilearn.nets.wrn:wrn_28_2", "Wide ResNet 28-2 (USB's classic-CV network, 32x32)"),
    "wrn_28_8": ("semilearn.nets.wrn:wrn_28_8", "Wide ResNet 28-8 (USB's CIFAR-100 network, 32x32)"),
}


def import_target(target: str) -> Any:
    """Import ``"module:attribute"``."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


class Catalog(Hook):
    """Registers the built-in algorithms, data sets and networks."""

    @hookimpl
    def register_algorithms(self, register: Callable[..., None]) -> None:
        for name, target in BUILTIN_ALGORITHMS.items():
            register(name, import_target(target))

    @hookimpl
    def register_datasets(self, register: Callable[..., None]) -> None:
        for name, (target, description) in BUILTIN_DATASETS.items():
            register(name, import_target(target), description)

    @hookimpl
    def register_nets(self, register: Callable[..., None]) -> None:
        for name, (target, description) in BUILTIN_NETS.items():
            register(name, import_target(target), description)
