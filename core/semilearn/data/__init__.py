"""Data sets as in-memory uint8 tensors, split the way SSL benchmarks split them.

A data set builder (see the ``register_datasets`` hook point) takes the configuration and
the device and returns an :class:`~semilearn.data.base.SSLData`: labelled, unlabelled and
test images as ``uint8`` tensors ``[N, C, H, W]`` on the run's device, integer targets,
and the :class:`~semilearn.data.augment.AugmentSpec` saying how views are made. Batches
are index draws from seeded streams (:mod:`semilearn.data.sampler`); augmentation is
batched on the device (:mod:`semilearn.data.augment`).

This module imports nothing heavy: it only lists the built-in data sets, which the
``catalog`` plugin registers.
"""

from __future__ import annotations

__all__ = ["BUILTIN_DATASETS"]

# name -> ("module:builder", description); imported when the registry is first needed
BUILTIN_DATASETS: dict[str, tuple[str, str]] = {
    "digits": ("semilearn.data.digits:build_digits", "scikit-learn's 8x8 handwritten digits (1797 images, offline)"),
    "synthetic": ("semilearn.data.synthetic:build_synthetic", "generated 32x32x3 images of 10 classes (speed work)"),
}
