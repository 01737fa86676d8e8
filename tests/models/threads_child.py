"""Child process of test_thread_invariance.py: fit every parallel model with 1 thread and
with ``NUMBA_NUM_THREADS`` threads (set by the parent to more than the cores), record how
many threads each fit really asked numba for, and whether the fitted arrays agree.

Run as ``python threads_child.py CASE [CASE ...]``; prints one JSON object.
"""

from __future__ import annotations

import json
import sys

import numba
import numpy as np

import mfrec.models.bayes
import mfrec.models.gd
from mfrec.data.ratings import Ratings
from mfrec.data.split import holdout
from mfrec.data.synthetic import make_ratings
from mfrec.models import (
    ALS,
    NMF,
    AdamMF,
    BayesianMF,
    BiasedMF,
    FunkSVD,
    GradientDescentMF,
    ImplicitALS,
)

# Run the parallel paths even on these small problems: the size thresholds would
# otherwise (rightly) choose one thread, and the test would compare 1 with 1.
mfrec.models.gd.PARALLEL_MIN_WORK = 0
mfrec.models.bayes._MIN_PARALLEL_RATINGS = 0

_requested: list[int] = []
_set_num_threads = numba.set_num_threads


def _spy(n: int) -> None:
    _requested.append(int(n))
    _set_num_threads(n)


numba.set_num_threads = _spy


def planted() -> Ratings:
    data = make_ratings(
        n_users=60, n_items=40, density=0.5, n_factors=3, noise_std=0.1, round_to=None,
        scale=None, missing="uniform", random_state=7,
    )  # fmt: skip
    return holdout(data.ratings, test_fraction=0.2, random_state=7).train


def movielens_like() -> Ratings:
    return make_ratings(n_users=200, n_items=150, density=0.1, random_state=3).ratings


def preferences() -> Ratings:
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(150, 3)) @ rng.normal(size=(3, 100))
    liked = scores >= np.quantile(scores, 0.8, axis=1, keepdims=True)
    users, items = np.nonzero(liked)
    return Ratings.from_arrays(users, items, np.ones(len(users)))


CASES = {
    "biased-mf": (BiasedMF, {"n_factors": 4, "n_epochs": 5, "n_strata": 4}, planted),
    "funk-svd": (FunkSVD, {"n_factors": 4, "n_epochs": 5, "n_strata": 4}, planted),
    "als": (ALS, {"n_factors": 4, "n_epochs": 4}, planted),
    "nmf": (NMF, {"biased": True, "n_epochs": 10}, movielens_like),
    "gd-mf": (GradientDescentMF, {"n_factors": 4, "n_epochs": 10}, movielens_like),
    "adam-mf": (AdamMF, {"n_epochs": 10}, movielens_like),
    "bayes-mf": (BayesianMF, {"n_factors": 3, "n_samples": 5, "burn_in": 3}, planted),
    "bayes-mf-implicit": (
        BayesianMF,
        {"n_factors": 3, "n_samples": 5, "burn_in": 3, "implicit": "both"},
        planted,
    ),
    "implicit-als": (ImplicitALS, {"n_factors": 4, "n_epochs": 10, "alpha": 5.0}, preferences),
}


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=8 * np.finfo(float).eps, atol=0.0))
    return a == b


def run(case: str) -> dict:
    cls, params, data = CASES[case]
    train = data()
    fits, requested = [], []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        _set_num_threads(1)  # so that restoring the previous count after a fit records 1
        del _requested[:]
        model = cls(**params, n_threads=threads, random_state=0).fit(train)
        fits.append(model)
        requested.append(max(_requested, default=1))
    keys = [k for k in cls._fitted_arrays if getattr(fits[0], k) is not None]
    keys += [k for k in ("user_bias_samples_", "item_bias_samples_") if hasattr(fits[0], k)]
    differ = [k for k in keys if not np.array_equal(getattr(fits[0], k), getattr(fits[1], k))]
    last = [fit.history_[-1] if fit.history_ else {} for fit in fits]
    # The fitted arrays must agree bit for bit. The history's figures are sums that numpy
    # computes over freshly allocated arrays, whose SIMD reduction order can follow the
    # memory alignment: they must agree within a few ULPs.
    differ += [
        f"history_[-1][{key!r}]"
        for key in last[0]
        if key != "seconds" and not _close(last[0][key], last[1].get(key))
    ]
    return {"requested": requested, "compared": keys, "differ": differ}


if __name__ == "__main__":
    print(json.dumps({"numba_threads": numba.config.NUMBA_NUM_THREADS} | {
        case: run(case) for case in sys.argv[1:]
    }))  # fmt: skip
