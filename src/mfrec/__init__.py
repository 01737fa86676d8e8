"""mfrec: collaborative filtering by matrix factorization.

Importing ``mfrec`` is cheap: the names below load their modules on first use.

>>> import mfrec
>>> ratings = mfrec.load_dataset("ml-100k")          # doctest: +SKIP
>>> model = mfrec.models.BiasedMF(random_state=0).fit(ratings)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mfrec._version import __version__

# name -> (module, attribute or None for the module itself)
_LAZY = {
    "Ratings": ("mfrec.data.ratings", "Ratings"),
    "Vocabulary": ("mfrec.data.vocab", "Vocabulary"),
    "read_ratings": ("mfrec.data.readers", "read_ratings"),
    "load_dataset": ("mfrec.data.movielens", "load_dataset"),
    "load": ("mfrec.models", "load"),
    "models": ("mfrec.models", None),
    "splits": ("mfrec.data.split", None),
    "metrics": ("mfrec.evaluation.metrics", None),
    "synthetic": ("mfrec.data.synthetic", None),
    "plots": ("mfrec.plots", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'mfrec' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs
    from mfrec import models, plots, synthetic  # noqa: F401
    from mfrec.data import split as splits  # noqa: F401
    from mfrec.data.movielens import load_dataset  # noqa: F401
    from mfrec.data.ratings import Ratings  # noqa: F401
    from mfrec.data.readers import read_ratings  # noqa: F401
    from mfrec.data.vocab import Vocabulary  # noqa: F401
    from mfrec.evaluation import metrics  # noqa: F401
    from mfrec.models import load  # noqa: F401
