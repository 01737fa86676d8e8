"""GradientDescentMF: conformance, learning-rate checks, divergence, kernels, threads.

The analytic gradients themselves are checked against finite differences in
test_gradients.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mfrec.data.synthetic import make_ratings
from mfrec.exceptions import DivergenceError, ParameterError
from mfrec.kernels.gd import (
    batch_gradient,
    batch_gradient_reference,
    masked_gradient,
    masked_gradient_reference,
)
from mfrec.models import GradientDescentMF

from .conformance import ModelConformance
from .topn_conformance import TopNConformance


class TestGradientDescentMFConformance(ModelConformance):
    model_class = GradientDescentMF
    fast_params = {"n_factors": 3, "n_epochs": 150, "lr": 0.1, "reg": 0.01}
    rmse_bound = 0.2
    alternatives = {
        "n_factors": 5,
        "n_epochs": 40,
        "lr": 0.05,
        "momentum": 0.5,
        "reg": 0.1,
        "reg_bias": 0.5,
        "biased": False,
        "init_std": 0.3,
        "dtype": "float64",
    }
    exempt = {
        "row_scaling": "False needs a ~100x smaller lr; covered by test_plain_descent_*",
        "patience": "needs validation data; covered by test_early_stopping_keeps_the_best",
        "validation_fraction": "acts with patience only; covered by "
        "tests/models/test_held_out_slice.py",
        "n_threads": "must not change the result; covered by test_thread_invariance.py",
    }
    bad_values = {
        "n_factors": 0,
        "n_epochs": 0,
        "lr": 0.0,
        "momentum": 1.0,
        "reg": -0.1,
        "reg_bias": -1.0,
        "biased": 1,
        "row_scaling": "no",
        "init_std": 0.0,
        "dtype": "float16",
        "patience": 0,
        "n_threads": 0,
    }


class TestGradientDescentMFTopN(TopNConformance):
    model_class = GradientDescentMF
    fast_params = TestGradientDescentMFConformance.fast_params


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=200, n_items=150, density=0.1, random_state=3).ratings


@pytest.mark.parametrize("lr", [0.0, -0.1, 101.0, float("nan"), float("inf"), "0.1", True])
def test_learning_rate_is_validated(ratings, lr):
    with pytest.raises(ParameterError, match=r"GradientDescentMF: lr must be a number in \(0"):
        GradientDescentMF(lr=lr).fit(ratings)


def test_divergence_is_reported_with_the_epoch_and_a_smaller_lr(ratings):
    model = GradientDescentMF(lr=20.0, n_epochs=200, random_state=0)
    with pytest.raises(DivergenceError, match=r"diverged at epoch \d+.*lr=20.*try lr=2"):
        model.fit(ratings)


def test_plain_descent_decreases_the_objective(ratings):
    """Without momentum, with a small enough step, every epoch lowers L."""
    model = GradientDescentMF(
        n_factors=5, n_epochs=60, lr=0.2, momentum=0.0, dtype="float64", random_state=0
    ).fit(ratings)
    loss = [rec["train_loss"] for rec in model.history_]
    assert all(b < a for a, b in itertools.pairwise(loss))
    grad = [rec["grad_norm"] for rec in model.history_]
    assert grad[-1] < grad[0]


def test_plain_descent_without_row_scaling_needs_a_smaller_step(ratings):
    """row_scaling=False is plain gradient descent on L (checked step by step in
    test_gradients.py): stable at a small lr, where it learns a different path."""
    params = {"n_factors": 5, "n_epochs": 40, "momentum": 0.0, "random_state": 0}
    plain = GradientDescentMF(row_scaling=False, lr=0.005, **params).fit(ratings)
    loss = [rec["train_loss"] for rec in plain.history_]
    assert all(b < a for a, b in itertools.pairwise(loss))
    scaled = GradientDescentMF(lr=0.005, **params).fit(ratings)
    assert not np.allclose(plain.user_factors_, scaled.user_factors_)
    with pytest.raises(DivergenceError):
        GradientDescentMF(row_scaling=False, lr=0.5, **params).fit(ratings)


def test_momentum_reaches_a_lower_objective_in_the_same_epochs(ratings):
    params = {"n_factors": 5, "n_epochs": 60, "lr": 0.1, "random_state": 0}
    fits = {m: GradientDescentMF(momentum=m, **params).fit(ratings) for m in (0.0, 0.9)}
    assert fits[0.9].history_[-1]["train_loss"] < fits[0.0].history_[-1]["train_loss"]


def test_recovers_planted_model_to_noise_level():
    noise = 0.1
    data = make_ratings(
        n_users=300, n_items=200, density=0.3, n_factors=3, noise_std=noise, round_to=None,
        scale=None, missing="uniform", random_state=11,
    )  # fmt: skip
    from mfrec.data.split import holdout

    fold = holdout(data.ratings, 0.1, random_state=0)
    model = GradientDescentMF(n_factors=3, n_epochs=300, reg=0.002, random_state=0)
    predicted = model.fit(fold.train).predict_ratings(fold.test)
    rmse = float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))
    assert rmse <= 1.1 * noise, f"test RMSE {rmse:.4f} vs noise {noise}"


def test_early_stopping_keeps_the_best(planted):
    _, fold = planted
    model = GradientDescentMF(
        n_factors=20, n_epochs=500, lr=0.1, reg=0.0, init_std=0.3, patience=5, random_state=0
    ).fit(fold.train, validation=fold.test)
    assert len(model.history_) < 500
    best = min(rec["val_rmse"] for rec in model.history_)
    assert model.history_[model.best_epoch_ - 1]["val_rmse"] == best


# -- kernels agree with their NumPy references -------------------------------------------
def _problem(seed, n_rows=25, n_cols=18, n=200, k=5):
    rng = np.random.default_rng(seed)
    cells = np.sort(rng.choice(n_rows * n_cols, size=n, replace=False))
    rows, cols = np.divmod(cells, n_cols)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))]).astype(np.int32)
    return (
        rows.astype(np.int32),
        indptr,
        cols.astype(np.int32),
        rng.uniform(1, 5, n),
        rng.normal(size=(n_rows, k)),
        rng.normal(size=(n_cols, k)),
        rng.normal(size=n_rows),
        rng.normal(size=n_cols),
    )


@pytest.mark.parametrize("with_bias", [True, False])
def test_masked_gradient_matches_reference(with_bias):
    _, indptr, cols, values, A, B, a_bias, b_bias = _problem(0)
    if not with_bias:
        a_bias, b_bias = a_bias[:0], b_bias[:0]
    weight = np.diff(indptr).astype(np.float64)
    expected = masked_gradient_reference(
        indptr, cols, values, A, B, a_bias, b_bias, 3.0, 0.1, 0.2, weight
    )
    grad_A, grad_a, sse = np.zeros(A.shape), np.zeros(len(a_bias)), np.zeros(len(A))
    masked_gradient(
        indptr, cols, values, A, B, a_bias, b_bias, 3.0, 0.1, 0.2, weight, grad_A, grad_a, sse
    )
    for got, want in zip((grad_A, grad_a, sse), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_batch_gradient_matches_reference():
    rows, _, cols, values, P, Q, bu, bi = _problem(1)
    positions = np.random.default_rng(2).permutation(len(rows))[:70].astype(np.int32)
    grads = [np.zeros(P.shape), np.zeros(Q.shape), np.zeros(len(bu)), np.zeros(len(bi))]
    sse = batch_gradient(rows, cols, values, positions, P, Q, bu, bi, 2.5, *grads)
    expected = batch_gradient_reference(rows, cols, values, positions, P, Q, bu, bi, 2.5)
    for got, want in zip([*grads, sse], expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
