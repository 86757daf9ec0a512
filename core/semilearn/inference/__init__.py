"""Using a trained model: evaluate, predict, export.

* :func:`load` (also ``semilearn.load``): the trained network of a run directory or a
  checkpoint file, as a :class:`Predictor` (``.predict(images)``, ``.classes``);
* ``semilearn evaluate | predict | export`` (:mod:`semilearn.inference.commands`), added to
  the command line by the built-in ``catalog`` plugin.
"""

from __future__ import annotations

from .predictor import WEIGHTS, ModelCard, Prediction, Predictor, load, model_card, network_weights, saved_config

__all__ = ["load", "Predictor", "Prediction", "ModelCard", "WEIGHTS", "model_card", "network_weights",
           "saved_config"]
