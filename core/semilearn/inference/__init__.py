"""Using a trained model: evaluate, predict, export.

* :func:`load` (also ``semilearn.load``): the trained network of a run directory or a
  checkpoint file, as a :class:`Predictor` (``.predict(images)``, ``.classes``);
* ``semilearn evaluate | predict | export`` (:mod:`semilearn.inference.commands`), added to
  the command line by the built-in ``catalog`` plugin.

The names below need torch and are imported on first access, so that the command line
starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .predictor import WEIGHTS, ModelCard, Prediction, Predictor, load, model_card, network_weights, saved_config

__all__ = ["load", "Predictor", "Prediction", "ModelCard", "WEIGHTS", "model_card", "network_weights",
           "saved_config"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module 'semilearn.inference' has no attribute {name!r}")
