"""Baselines: they follow the same contract (no hyperparameter is decorative)."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec.models import BiasBaseline, GlobalMean

from .conformance import ModelConformance, planted_problem
from .topn_conformance import TopNConformance


class TestBiasBaselineConformance(ModelConformance):
    model_class = BiasBaseline
    fast_params = {"reg_user": 1.0, "reg_item": 1.0}
    # Biases alone cannot fit the planted interactions (about 0.49), but they must beat
    # the global mean (about 0.59) clearly.
    baseline, baseline_ratio = "global-mean", 0.9
    alternatives = {"reg_user": 5.0, "reg_item": 0.1, "n_epochs": 1}
    bad_values = {"reg_user": -1.0, "reg_item": float("nan"), "n_epochs": 0}


class TestGlobalMeanConformance(ModelConformance):
    model_class = GlobalMean
    iterative = False
    # The mean of the training ratings scores within 2% of the best constant (the test
    # ratings' own mean), whose RMSE is their standard deviation, about 0.59.
    rmse_bound = 1.02 * float(np.std(planted_problem()[1].test.rating))
    baseline_ratio = float("inf")

    def test_predicts_the_mean(self, planted):
        _, fold = planted
        model = GlobalMean().fit(fold.train)
        assert np.allclose(
            model.predict_ratings(fold.test), fold.train.rating.mean(dtype=np.float64)
        )


class TestBiasBaselineTopN(TopNConformance):
    model_class = BiasBaseline
    fast_params = TestBiasBaselineConformance.fast_params
    has_item_space = False


class TestGlobalMeanTopN(TopNConformance):
    model_class = GlobalMean
    has_item_space = False


def test_bias_baseline_solves_its_normal_equations(planted):
    """At convergence each item bias is sum(r - mu - b_u) / (reg_item + n_i)."""
    _, fold = planted
    model = BiasBaseline(reg_user=2.0, reg_item=3.0, n_epochs=200).fit(fold.train)
    tr = fold.train
    r = tr.rating.astype(np.float64) - model.global_mean_
    bu, bi = model.user_bias_.astype(np.float64), model.item_bias_.astype(np.float64)
    n_i = np.bincount(tr.item_index, minlength=tr.n_items)
    expected = np.bincount(tr.item_index, weights=r - bu[tr.user_index], minlength=tr.n_items) / (
        3.0 + n_i
    )
    np.testing.assert_allclose(bi, expected, atol=1e-5)


def test_bias_baseline_beats_global_mean(planted):
    _, fold = planted
    errors = {}
    for model in (GlobalMean(), BiasBaseline()):
        predicted = model.fit(fold.train).predict_ratings(fold.test)
        errors[type(model).__name__] = np.sqrt(np.mean((predicted - fold.test.rating) ** 2))
    assert errors["BiasBaseline"] < errors["GlobalMean"]


def test_bias_baseline_fold_in_is_its_own_user_step(planted):
    """Folding a training user's ratings back in gives the bias the last epoch set:
    b_u = sum_i (r - mu - b_i) / (reg_user + n_u)."""
    _, fold = planted
    model = BiasBaseline(reg_user=3.0, reg_item=2.0, n_epochs=30).fit(fold.train)
    train = fold.train.compact()
    user = 5
    rows = train.user_index == model.users_.lookup([train.users.ids[user]])[0]
    items = train.items.take(train.item_index[rows])
    ratings = dict(zip(items.tolist(), train.rating[rows].tolist(), strict=True))
    model.fold_in(10**9, ratings)
    expected = model.user_bias_[model.users_.lookup([train.users.ids[user]])[0]]
    assert model.user_bias_[-1] == pytest.approx(expected, abs=1e-5)
