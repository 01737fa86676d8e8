"""The models, and the registry that maps CLI names and file class names to them.

The registry is where models and the model file meet: :meth:`Recommender.save` writes
through :mod:`mfrec.persist`, and :func:`load` reads a file back by handing persist the
classes by name -- persist itself never imports a model.
"""

from __future__ import annotations

import os

from mfrec import persist
from mfrec._defaults import DEFAULT_MODEL
from mfrec.exceptions import ParameterError
from mfrec.models.adam import AdamMF
from mfrec.models.als import ALS
from mfrec.models.base import FactorModel, Recommendations, Recommender
from mfrec.models.baseline import BiasBaseline, GlobalMean
from mfrec.models.bayes import BayesianMF
from mfrec.models.gd import GradientDescentMF
from mfrec.models.implicit import ImplicitALS
from mfrec.models.nmf import NMF
from mfrec.models.sgd import BiasedMF, FunkSVD
from mfrec.models.svd import TruncatedSVD
from mfrec.models.svdpp import SVDpp

#: CLI name -> class, in the order ``mfrec --help`` lists them.
MODELS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        BiasedMF,
        FunkSVD,
        SVDpp,
        ALS,
        BayesianMF,
        ImplicitALS,
        TruncatedSVD,
        NMF,
        GradientDescentMF,
        AdamMF,
        BiasBaseline,
        GlobalMean,
    )
}


def get_model_class(name: str) -> type[Recommender]:
    """The model class for a CLI name (``"biased-mf"``) or class name (``"BiasedMF"``)."""
    if name in MODELS:
        return MODELS[name]
    by_class = {cls.__name__: cls for cls in MODELS.values()}
    if name in by_class:
        return by_class[name]
    raise ParameterError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")


def load(path: str | os.PathLike[str]) -> Recommender:
    """Load a model written by ``model.save(path)`` (``mfrec.load``), verified whole.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    mfrec.exceptions.ModelFileError
        The file is not an mfrec model, is damaged or edited, or holds a model class
        this version does not know; the message names the member at fault and the fix.
    """
    return persist.load(path, {cls.__name__: cls for cls in MODELS.values()})


__all__ = [
    "ALS",
    "DEFAULT_MODEL",
    "MODELS",
    "NMF",
    "AdamMF",
    "BayesianMF",
    "BiasBaseline",
    "BiasedMF",
    "FactorModel",
    "FunkSVD",
    "GlobalMean",
    "GradientDescentMF",
    "ImplicitALS",
    "Recommendations",
    "Recommender",
    "SVDpp",
    "TruncatedSVD",
    "get_model_class",
    "load",
]
