"""Data with no interaction structure (ratings = mean + biases + noise): the factor models
at their defaults must not make it worse than their own bias part, nor fall much behind
the bias baseline (docs/defaults.md, "syn-rank0")."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mfrec.data.split import holdout
from mfrec.data.synthetic import make_ratings
from mfrec.models import BiasBaseline, BiasedMF, SVDpp


def _rmse(model, fold) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few test ids unseen in training
        predicted = model.predict_ratings(fold.test, clip=True)
    return float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))


@pytest.fixture(scope="module", params=[0, 2])
def structure_free(request):
    data = make_ratings(
        n_users=800, n_items=500, n_ratings=16_000, n_factors=0, noise_std=0.9,
        random_state=request.param,
    ).ratings  # fmt: skip
    return holdout(data, 0.2, random_state=0)


@pytest.mark.parametrize("cls", [BiasedMF, SVDpp])
def test_defaults_fall_back_to_the_biases_without_structure(cls, structure_free):
    """Early stopping keeps the interaction term from fitting noise: the test RMSE is
    that of the model's biases alone (within 0.001) and within 0.3% of the bias
    baseline's. Without early stopping (``patience=None``, 100 epochs) the same model is
    3-6% worse than its biases (seed 0): the check can fail."""
    fold = structure_free
    baseline = _rmse(BiasBaseline().fit(fold.train), fold)
    model = cls(random_state=0).fit(fold.train)
    full = _rmse(model, fold)
    factors = model.user_factors_.copy()
    model.user_factors_[:] = 0  # the model's own bias part: mu + b_u + b_i
    biases_only = _rmse(model, fold)
    model.user_factors_[:] = factors
    assert full <= biases_only + 1e-3, (full, biases_only)
    assert full <= 1.003 * baseline, (full, baseline)
    assert model.best_epoch_ < 20  # it stopped early rather than ran to the cap
