"""The models, and the registry that maps CLI names and file class names to them."""

from __future__ import annotations

from mfrec.exceptions import ParameterError
from mfrec.models.base import FactorModel, Recommendations, Recommender
from mfrec.models.baseline import BiasBaseline, GlobalMean
from mfrec.models.sgd import BiasedMF, FunkSVD

#: CLI name -> class, in the order ``mfrec --help`` lists them.
MODELS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        BiasedMF,
        FunkSVD,
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


__all__ = [
    "MODELS",
    "BiasBaseline",
    "BiasedMF",
    "FactorModel",
    "FunkSVD",
    "GlobalMean",
    "Recommendations",
    "Recommender",
    "get_model_class",
]
