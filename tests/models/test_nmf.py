"""NMF: conformance, non-negativity, monotone objective, kernels, threads."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mfrec.data.ratings import Ratings
from mfrec.data.synthetic import make_ratings
from mfrec.exceptions import ParameterError
from mfrec.kernels.nmf import (
    bias_update_rows,
    bias_update_rows_reference,
    nmf_update_rows,
    nmf_update_rows_reference,
)
from mfrec.models import NMF

from .conformance import ModelConformance
from .topn_conformance import TopNConformance


class TestNMFConformance(ModelConformance):
    model_class = NMF
    # Surprise's unbiased model (the default until round r9-nmf): the non-negative factors
    # carry the whole rating, so a signed planted structure is within their reach.
    fast_params = {
        "n_factors": 6, "n_epochs": 200, "patience": None, "biased": False, "reg": 0.06,
        "init_high": 1.0,
    }  # fmt: skip
    # A non-negative model of a planted signed rank-3 structure: fair, not perfect.
    rmse_bound = 0.35
    alternatives = {
        "n_factors": 4,
        "n_epochs": 50,
        "reg": 0.2,
        "biased": True,
        "init_low": 0.2,
        "init_high": 2.0,
        "schedule": "simultaneous",
        "dtype": "float64",
    }
    exempt = {
        "reg_bias": "only used with biased=True; covered by test_reg_bias_shrinks_biases",
        "patience": "needs validation data; stops like every model (test_sgd.py)",
        "validation_fraction": "acts with patience only; covered by "
        "tests/models/test_held_out_slice.py",
        "n_threads": "must not change the result; covered by test_thread_invariance.py",
    }
    bad_values = {
        "n_factors": 0,
        "n_epochs": 0,
        "reg": -0.1,
        "biased": "yes",
        "reg_bias": -1.0,
        "init_low": -0.5,
        "init_high": 0.0,
        "schedule": "jacobi",
        "dtype": "int8",
        "patience": 0,
        "n_threads": 0,
    }


class TestNMFTopN(TopNConformance):
    model_class = NMF
    fast_params = TestNMFConformance.fast_params


@pytest.fixture(scope="module")
def movielens_like():
    """Rounded 1..5 ratings with MovieLens-like popularity skew."""
    return make_ratings(n_users=300, n_items=200, density=0.08, random_state=2).ratings


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"biased": True},
        # Aggressive: no regularisation, huge initial factors, many epochs, float32.
        {"reg": 0.0, "init_low": 1.0, "init_high": 50.0, "n_epochs": 300, "n_factors": 30},
        {"biased": True, "reg": 0.0, "reg_bias": 0.0, "init_high": 20.0, "n_epochs": 200},
    ],
)
def test_factors_stay_non_negative(movielens_like, params):
    model = NMF(random_state=0, **params).fit(movielens_like)
    assert model.user_factors_.min() >= 0 and model.item_factors_.min() >= 0
    assert np.isfinite(model.user_factors_).all() and np.isfinite(model.item_factors_).all()


def test_factors_stay_non_negative_with_negative_ratings():
    """Targets of both signs (a -10..10 scale): the split update keeps factors >= 0."""
    rng = np.random.default_rng(0)
    n = 3000
    ratings = Ratings.from_arrays(
        rng.integers(0, 100, n), rng.integers(0, 80, n), rng.uniform(-10, 10, n),
        duplicates="last",
    )  # fmt: skip
    for biased in (False, True):
        model = NMF(n_epochs=100, biased=biased, random_state=1).fit(ratings)
        assert model.user_factors_.min() >= 0 and model.item_factors_.min() >= 0
        assert np.isfinite(model.predict_ratings(ratings)).all()


def test_objective_never_increases_without_biases(movielens_like):
    """Lee & Seung's guarantee for non-negative targets: L is non-increasing when each
    side is updated with the other fixed (the alternating schedule)."""
    model = NMF(n_epochs=60, dtype="float64", schedule="alternating", biased=False, random_state=0)
    model.fit(movielens_like)
    loss = [rec["train_loss"] for rec in model.history_]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(loss))
    assert loss[-1] < 0.5 * loss[0]


def test_history_loss_is_the_objective(movielens_like):
    """train_loss at epoch e+1 is L at the end of epoch e (no biases: nothing moves in
    between), computed here from the factors of an (e)-epoch fit."""
    r = movielens_like
    settings = {"dtype": "float64", "patience": None, "biased": False, "reg": 0.06}
    short = NMF(n_epochs=7, random_state=4, **settings).fit(r)
    longer = NMF(n_epochs=8, random_state=4, **settings).fit(r)
    P, Q = short.user_factors_, short.item_factors_
    err = r.rating - np.einsum("ij,ij->i", P[r.user_index], Q[r.item_index])
    penalty = 0.06 * (r.user_counts() @ (P * P).sum(1) + r.item_counts() @ (Q * Q).sum(1))
    expected = 0.5 * (err @ err + penalty) / len(r)
    assert longer.history_[-1]["train_loss"] == pytest.approx(expected, rel=1e-10)


def test_masked_fit_ignores_missing_entries():
    """Missing cells are missing, not zeros: the fit reproduces the level of the
    observed ratings (a zero-filled fit at 30% density predicts about 30% of it)."""
    data = make_ratings(n_users=80, n_items=50, density=0.3, random_state=9).ratings
    model = NMF(n_factors=5, n_epochs=100, patience=None, biased=False, random_state=0).fit(data)
    predicted = model.predict_ratings(data)
    assert abs(predicted.mean() - data.rating.mean()) < 0.1


def test_reg_bias_shrinks_biases(movielens_like):
    loose = NMF(biased=True, reg_bias=0.0, random_state=0).fit(movielens_like)
    tight = NMF(biased=True, reg_bias=100.0, random_state=0).fit(movielens_like)
    assert np.abs(tight.user_bias_).sum() < 0.5 * np.abs(loose.user_bias_).sum()
    assert np.abs(tight.item_bias_).sum() < 0.5 * np.abs(loose.item_bias_).sum()


def test_unbiased_model_scores_without_the_mean(movielens_like):
    model = NMF(biased=False, random_state=0).fit(movielens_like)
    u, i = movielens_like.user_index[:50], movielens_like.item_index[:50]
    expected = np.einsum(
        "ij,ij->i", model.user_factors_[u].astype(np.float64), model.item_factors_[i]
    )
    np.testing.assert_allclose(model._predict_indices(u, i), expected, rtol=1e-6)


def test_init_range_is_checked():
    ratings = make_ratings(n_users=10, n_items=10, density=0.5, random_state=0).ratings
    with pytest.raises(ParameterError, match="init_high must be greater than init_low"):
        NMF(init_low=2.0, init_high=1.0).fit(ratings)


# -- kernels agree with their NumPy references -------------------------------------------
def _sparse_problem(seed, n_rows=30, n_cols=20, n=250, k=4):
    rng = np.random.default_rng(seed)
    cells = rng.choice(n_rows * n_cols, size=n, replace=False)
    cells.sort()
    rows, cols = np.divmod(cells, n_cols)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))]).astype(np.int32)
    values = rng.uniform(-1, 5, n)
    A = rng.uniform(0, 1, (n_rows, k))
    B = rng.uniform(0, 1, (n_cols, k))
    a_bias = rng.normal(size=n_rows)
    b_bias = rng.normal(size=n_cols)
    return indptr, cols.astype(np.int32), values, A, B, a_bias, b_bias


@pytest.mark.parametrize("with_bias", [True, False])
def test_nmf_update_matches_reference(with_bias):
    indptr, cols, values, A, B, a_bias, b_bias = _sparse_problem(0)
    if not with_bias:
        a_bias, b_bias = a_bias[:0], b_bias[:0]
    expected, expected_sse = nmf_update_rows_reference(
        indptr, cols, values, A, B, a_bias, b_bias, 0.7, 0.05, 1e-12
    )
    sse = np.zeros(len(A))
    nmf_update_rows(indptr, cols, values, A, B, a_bias, b_bias, 0.7, 0.05, 1e-12, sse)
    np.testing.assert_allclose(A, expected, rtol=1e-12)
    np.testing.assert_allclose(sse, expected_sse, rtol=1e-12)


def test_bias_update_matches_reference():
    indptr, cols, values, A, B, a_bias, b_bias = _sparse_problem(1)
    expected = bias_update_rows_reference(indptr, cols, values, A, B, b_bias, 3.0, 2.5)
    bias_update_rows(indptr, cols, values, A, B, a_bias, b_bias, 3.0, 2.5)
    np.testing.assert_allclose(a_bias, expected, rtol=1e-12)


@pytest.mark.parametrize("biased", [False, True])
def test_fold_in_solves_the_users_part_as_well_as_training(movielens_like, biased):
    """Folding a training user's ratings back in gives non-negative factors whose
    user objective 1/2 sum (t - p.q)^2 + reg/2 n_u |p|^2 (+ reg_bias/2 b^2) is no worse
    than the trained user's (the subproblem is convex; items stay fixed)."""
    model = NMF(biased=biased, random_state=0).fit(movielens_like)
    seen = model.seen_items
    factors, bias = model._solve_users(seen.indptr, seen.indices, seen.data)
    assert factors.min() >= 0

    def user_objective(u, p, b):
        row = slice(seen.indptr[u], seen.indptr[u + 1])
        items, r = seen.indices[row], seen.data[row].astype(np.float64)
        t = r - model._intercept() - (model.item_bias_[items] + b if biased else 0.0)
        e = t - model.item_factors_[items].astype(np.float64) @ p
        penalty = model.reg * len(items) * (p @ p) + (model.reg_bias * b * b if biased else 0)
        return 0.5 * (e @ e + penalty)

    for u in range(0, len(model.users_), 29):
        trained = user_objective(u, model.user_factors_[u], model.user_bias_[u] if biased else 0)
        folded = user_objective(u, factors[u], bias[u] if biased else 0)
        assert folded <= trained * (1 + 1e-3) + 1e-9, (u, folded, trained)
