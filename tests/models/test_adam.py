"""AdamMF: conformance, mean normalisation, Adam's update, mini-batches, the course's
synthetic problem. Its gradient is checked against finite differences in
test_gradients.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mfrec.data.ratings import Ratings
from mfrec.data.synthetic import make_ratings
from mfrec.exceptions import UnknownIdWarning
from mfrec.models import AdamMF
from mfrec.models.adam import _Adam

from .conformance import ModelConformance
from .topn_conformance import TopNConformance


class TestAdamMFConformance(ModelConformance):
    model_class = AdamMF
    fast_params = {"n_factors": 3, "n_epochs": 100, "lr": 0.05, "reg": 0.3, "patience": None}
    rmse_bound = 0.3
    alternatives = {
        "n_factors": 5,
        "n_epochs": 30,
        "lr": 0.01,
        "reg": 3.0,
        "batch_size": 128,
        "mean": "global",
        "beta1": 0.5,
        "beta2": 0.9,
        "eps": 1e-2,
        "init_std": 0.5,
        "dtype": "float64",
    }
    exempt = {
        "patience": "needs validation data; stops like every model (test_sgd.py)",
        "validation_fraction": "acts with patience only; covered by "
        "tests/models/test_held_out_slice.py",
        "n_threads": "must not change the result; covered by test_thread_invariance.py",
    }
    bad_values = {
        "n_factors": 0,
        "n_epochs": 0,
        "lr": 0.0,
        "reg": -1.0,
        "batch_size": 0,
        "mean": "user",
        "beta1": 1.0,
        "beta2": -0.1,
        "eps": 0.0,
        "init_std": -1.0,
        "dtype": "float16",
        "patience": 0,
        "n_threads": 0,
    }


class TestAdamMFTopN(TopNConformance):
    model_class = AdamMF
    fast_params = TestAdamMFConformance.fast_params


@pytest.fixture(scope="module")
def ratings():
    return make_ratings(n_users=120, n_items=90, density=0.15, random_state=6).ratings


def test_item_mean_normalisation(ratings):
    """mean='item': the model adds each item's training mean back, and a new user
    gets exactly the item means (the course's reason for normalising)."""
    model = AdamMF(n_epochs=20, random_state=0).fit(ratings)
    means = np.bincount(ratings.item_index, weights=ratings.rating) / ratings.item_counts()
    np.testing.assert_allclose(model.global_mean_ + model.item_bias_, means, rtol=1e-6)
    with pytest.warns(UnknownIdWarning):
        new_user = model.predict(10**9, ratings.items.ids)
    np.testing.assert_allclose(new_user, means, rtol=1e-6)
    # A known user: m_i + b_u + w_u . x_i.
    u = 3
    factors = model.item_factors_.astype(np.float64) @ model.user_factors_[u]
    expected = means + model.user_bias_[u] + factors
    got = model.predict(ratings.users.ids[u], ratings.items.ids)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_global_mean_normalisation(ratings):
    model = AdamMF(n_epochs=20, mean="global", random_state=0).fit(ratings)
    assert model.item_bias_ is None
    with pytest.warns(UnknownIdWarning):
        new_user = model.predict(10**9, ratings.items.ids[:5])
    np.testing.assert_allclose(new_user, ratings.rating.mean(), rtol=1e-6)


def test_adam_step_matches_the_paper():
    """One _Adam step against Algorithm 1 of Kingma & Ba (2015), written out."""
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(4, 3))
    reference = theta.copy()
    adam = _Adam([theta], lr=0.01, beta1=0.8, beta2=0.95, eps=1e-6)
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    for t in range(1, 6):
        g = rng.normal(size=theta.shape)
        adam.step([g])
        m = 0.8 * m + 0.2 * g
        v = 0.95 * v + 0.05 * g * g
        m_hat, v_hat = m / (1 - 0.8**t), v / (1 - 0.95**t)
        reference -= 0.01 * m_hat / (np.sqrt(v_hat) + 1e-6)
        np.testing.assert_allclose(theta, reference, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("batch_size", [None, 256])
def test_training_lowers_the_objective(ratings, batch_size):
    model = AdamMF(n_epochs=60, reg=1.0, batch_size=batch_size, random_state=0).fit(ratings)
    loss = [rec["train_loss"] for rec in model.history_]
    # (With mini-batches the first record is already an average over a learning epoch.)
    assert loss[-1] < 0.7 * loss[0]


def test_mini_batches_are_seeded(ratings):
    fits = [AdamMF(n_epochs=5, batch_size=100, random_state=s).fit(ratings) for s in (1, 1, 2)]
    assert np.array_equal(fits[0].user_factors_, fits[1].user_factors_)
    assert not np.array_equal(fits[0].user_factors_, fits[2].user_factors_)


def test_batch_as_large_as_the_data_is_full_batch(ratings):
    full = AdamMF(n_epochs=5, dtype="float64", random_state=0).fit(ratings)
    one_batch = AdamMF(n_epochs=5, batch_size=len(ratings), dtype="float64", random_state=0)
    one_batch.fit(ratings)
    np.testing.assert_allclose(one_batch.user_factors_, full.user_factors_, rtol=1e-10)


def test_course_notebook_problem():
    """The course's synthetic set-up: 100 items x 30 users, 3 latent features, noise,
    ratings rounded and clipped to 1..5, half of them missing. The top 15 of a user are
    unrated items, ranked by the model's predictions."""
    rng = np.random.default_rng(1234)
    items = rng.normal(size=(100, 3))
    users = rng.normal(size=(30, 3))
    full = np.clip(np.round(items @ users.T + rng.normal(0, 0.5, (100, 30))), 1, 5)
    observed = rng.random(full.shape) >= 0.5
    item_idx, user_idx = np.nonzero(observed)
    ratings = Ratings.from_arrays(
        [f"User_{u + 1}" for u in user_idx],
        [f"Item_{i + 1}" for i in item_idx],
        full[observed],
        scale=(1, 5),
    )
    model = AdamMF(n_factors=3, n_epochs=300, lr=0.05, reg=3.0, patience=None, random_state=0)
    model.fit(ratings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no unknown ids here
        recs = model.recommend("User_11", n=15)
    rated = {f"Item_{i + 1}" for i in np.flatnonzero(observed[:, 10])}
    assert len(recs.item_ids) == 15 and rated.isdisjoint(recs.item_ids.tolist())
    # The model recovers the hidden ratings better than the item means do.
    hidden_i, hidden_u = np.nonzero(~observed)
    predicted = model.predict(
        [f"User_{u + 1}" for u in hidden_u], [f"Item_{i + 1}" for i in hidden_i], clip=True
    )
    item_mean = model.global_mean_ + model.item_bias_
    baseline = item_mean[model.items_.lookup([f"Item_{i + 1}" for i in hidden_i])]
    truth = full[~observed]
    rmse = np.sqrt(np.mean((predicted - truth) ** 2))
    assert rmse < 0.8 * np.sqrt(np.mean((baseline - truth) ** 2))


def test_fold_in_minimises_the_users_part_of_the_cost(ratings):
    """At a folded-in user's (w_u, b_u), dJ/dw_u = sum e x_i + reg w_u = 0 and
    dJ/db_u = sum e = 0, with e = w_u.x_i + b_u - (r - m_i)."""
    model = AdamMF(n_epochs=30, reg=2.0, dtype="float64", random_state=0).fit(ratings)
    items = ratings.items.ids[[1, 4, 9, 16, 25, 36, 49]]
    values = np.array([5.0, 3.0, 4.0, 1.0, 2.0, 4.0, 5.0])
    model.fold_in(10**7, (items, values))
    row = model.users_.lookup([10**7])[0]
    w, b = model.user_factors_[row], model.user_bias_[row]
    idx = model.items_.lookup(items)
    x = model.item_factors_[idx]
    y = values - (model.global_mean_ + model.item_bias_[idx])
    e = x @ w + b - y
    np.testing.assert_allclose(x.T @ e + 2.0 * w, 0.0, atol=1e-8)
    assert abs(e.sum()) < 1e-8
