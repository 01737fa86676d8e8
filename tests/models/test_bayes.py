"""BayesianMF: conformance, the Gibbs kernels against NumPy references, calibration of the
predictive uncertainty, determinism across thread counts, persistence of the std."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec.data.split import holdout
from mfrec.data.synthetic import make_ratings
from mfrec.exceptions import DataError, ParameterError, UnknownIdWarning
from mfrec.kernels import bpmf
from mfrec.models import BayesianMF, get_model_class, load

from .conformance import ModelConformance
from .topn_conformance import TopNConformance


class TestBayesianMFConformance(ModelConformance):
    model_class = BayesianMF
    fast_params = {"n_factors": 3, "n_samples": 30, "burn_in": 20}
    rmse_bound = 0.2
    alternatives = {
        "n_factors": 5,
        "n_samples": 10,
        "burn_in": 5,
        "implicit": "none",
        "noise_precision": 10.0,
    }
    exempt = {
        "n_threads": "must not change the result; covered by test_thread_invariance.py",
    }
    bad_values = {
        "n_factors": 0,
        "n_samples": 0,
        "burn_in": -1,
        "implicit": "yes",
        "noise_precision": 0.0,
        "n_threads": 0,
    }


class TestBayesianMFTopN(TopNConformance):
    model_class = BayesianMF
    fast_params = TestBayesianMFConformance.fast_params
    supports_fold_in = False


def test_registered_under_its_cli_name():
    assert get_model_class("bayes-mf") is BayesianMF


# -- kernels against their references ----------------------------------------------------
def _random_csr(rng, n_rows, n_cols, density=0.4):
    mask = rng.random((n_rows, n_cols)) < density
    mask[np.arange(n_rows), rng.integers(0, n_cols, n_rows)] = True  # no empty row
    mask[rng.integers(0, n_rows, n_cols), np.arange(n_cols)] = True  # no empty column
    rows, cols = np.nonzero(mask)
    indptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
    return rows.astype(np.int32), cols.astype(np.int32), indptr


def test_normal_stream_matches_reference_and_is_standard_normal():
    fast = bpmf.normal_stream(12345, 1000)
    # log/sqrt/cos come from numba's libm in one and numpy's SIMD loops in the other: they
    # may differ in the last bits with the CPU's vector width (AVX2 vs AVX-512).
    np.testing.assert_array_max_ulp(fast, bpmf.normal_stream_reference(12345, 1000), maxulp=4)
    draws = bpmf.normal_stream(7, 200_000)
    assert abs(draws.mean()) < 0.01
    assert draws.std() == pytest.approx(1.0, abs=0.01)
    assert np.mean(np.abs(draws) < 1) == pytest.approx(0.6827, abs=0.005)
    assert not np.array_equal(bpmf.normal_stream(8, 10), draws[:10])


def _row_problem(rng, n_rows=13, n_cols=9, k=3):
    rows, cols, indptr = _random_csr(rng, n_rows, n_cols)
    ratings = rng.uniform(1, 5, len(rows))
    other = rng.normal(size=(n_cols, k))
    other_bias = rng.normal(size=n_cols)
    offset = rng.normal(scale=0.3, size=(n_rows, k))
    root = rng.normal(size=(k + 1, k + 1))
    prior_prec = root @ root.T + np.eye(k + 1)
    prior_h = rng.normal(size=k + 1)
    return indptr, cols, ratings, other, other_bias, offset, prior_prec, prior_h


def test_sample_rows_matches_reference():
    rng = np.random.default_rng(0)
    indptr, cols, ratings, other, other_bias, offset, prior_prec, prior_h = _row_problem(rng)
    n_rows, k = len(indptr) - 1, other.shape[1]
    seeds = np.array([11, 22, 33, 44], dtype=np.int64)
    factors, bias = np.empty((n_rows, k)), np.empty(n_rows)
    args = (indptr, cols, ratings, other, other_bias, offset, 3.5, 2.0, prior_prec, prior_h)
    bpmf.sample_rows(*args, seeds, 4, factors, bias)
    ref_factors, ref_bias = bpmf.sample_rows_reference(*args, seeds, 4)
    np.testing.assert_allclose(factors, ref_factors, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(bias, ref_bias, rtol=1e-9, atol=1e-10)


def test_sample_rows_draws_from_the_gaussian_conditional():
    """Over many seeds, one row's draws have the conditional's mean and covariance:
    precision P + alpha W^T W and mean (P + alpha W^T W)^-1 (h + alpha W^T t)."""
    rng = np.random.default_rng(1)
    _, cols, ratings, other, other_bias, offset, prior_prec, prior_h = _row_problem(
        rng, n_rows=1, n_cols=6, k=2
    )
    alpha, mu = 1.5, 3.0
    n_draws = 4000
    # The same row repeated n_draws times, each in its own block (its own seed).
    m = len(cols)
    factors, bias = np.empty((n_draws, 2)), np.empty(n_draws)
    bpmf.sample_rows(
        np.arange(n_draws + 1, dtype=np.int64) * m, np.tile(cols, n_draws),
        np.tile(ratings, n_draws), other, other_bias, np.repeat(offset, n_draws, axis=0),
        mu, alpha, prior_prec, prior_h, np.arange(n_draws, dtype=np.int64), 1, factors, bias,
    )  # fmt: skip
    draws = np.column_stack([factors, bias])
    W = np.hstack([other[cols], np.ones((len(cols), 1))])
    target = ratings - mu - other_bias[cols] - other[cols] @ offset[0]
    precision = prior_prec + alpha * W.T @ W
    cov = np.linalg.inv(precision)
    mean = cov @ (prior_h + alpha * W.T @ target)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 4 * sd / np.sqrt(n_draws))
    np.testing.assert_allclose(np.cov(draws.T), cov, rtol=0.1, atol=0.05 * sd.max() ** 2)


def test_residuals_kernel_matches_numpy():
    rng = np.random.default_rng(2)
    rows, cols, indptr = _random_csr(rng, 10, 8)
    ratings = rng.uniform(1, 5, len(rows))
    P, Q = rng.normal(size=(10, 4)), rng.normal(size=(8, 4))
    bu, bi = rng.normal(size=10), rng.normal(size=8)
    out = np.empty(len(rows))
    sse = bpmf.residuals(indptr, cols, ratings, P, Q, bu, bi, 3.1, out)
    expected = ratings - (3.1 + bu[rows] + bi[cols] + np.einsum("ij,ij->i", P[rows], Q[cols]))
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert sse == pytest.approx(expected @ expected, rel=1e-12)


@pytest.mark.parametrize("side", ["user", "item"])
def test_implicit_pass_matches_reference(side):
    """The cached-residual kernel equals recomputing each coordinate's conditional from
    scratch, and leaves offsets and residuals consistent with the new implicit vectors."""
    rng = np.random.default_rng(3)
    n_users, n_items, k = 12, 9, 3
    rows, cols, indptr = _random_csr(rng, n_users, n_items)
    n = len(rows)
    item_pos = np.argsort(cols, kind="stable")
    i_indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=n_items))])
    i_rows = rows[item_pos].astype(np.int32)
    if side == "user":  # y: T = users, O = items
        t_args = (indptr, cols, np.arange(n, dtype=np.int64), i_indptr, i_rows)
        n_t, n_o, t_of, o_of = n_users, n_items, rows, cols
    else:  # z: T = items, O = users
        t_args = (i_indptr, i_rows, item_pos.astype(np.int64), indptr, cols)
        n_t, n_o, t_of, o_of = n_items, n_users, cols, rows
    counts = np.bincount(t_of, minlength=n_t)
    norm = 1.0 / np.sqrt(counts)
    other = rng.normal(size=(n_o, k))
    implicit = rng.normal(scale=0.2, size=(n_o, k))
    # offset_t = norm_t * sum of the implicit vectors of t's neighbours
    offset = np.zeros((n_t, k))
    np.add.at(offset, t_of, implicit[o_of] * norm[t_of, None])
    resid = rng.normal(size=n)
    prior_mean, prior_prec = rng.normal(size=k), rng.uniform(0.5, 2, size=k)
    state = [a.copy() for a in (implicit, offset, resid)]
    ref = [a.copy() for a in (implicit, offset, resid)]
    work = np.empty((n_t, 4))
    other_t = np.ascontiguousarray(other.T)
    common = (norm, other_t)
    bpmf.implicit_pass(*t_args, *common, *state, 0.7, prior_mean, prior_prec, 99, work)
    bpmf.implicit_pass_reference(*t_args, *common, *ref, 0.7, prior_mean, prior_prec, 99)
    for got, want in zip(state, ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    new_implicit, new_offset, new_resid = state
    expected_offset = np.zeros((n_t, k))
    np.add.at(expected_offset, t_of, new_implicit[o_of] * norm[t_of, None])
    np.testing.assert_allclose(new_offset, expected_offset, atol=1e-12)
    # Residuals moved by exactly the change of offset_t . other_o on each rating.
    change = np.einsum("ij,ij->i", (new_offset - offset)[t_of], other[o_of])
    np.testing.assert_allclose(new_resid, resid - change, atol=1e-12)


def test_sample_moments_matches_reference():
    rng = np.random.default_rng(4)
    S, k = 6, 3
    UF = rng.normal(size=(7, S * k)).astype(np.float32)
    IF = rng.normal(size=(5, S * k)).astype(np.float32)
    BU = rng.normal(size=(7, S)).astype(np.float32)
    BI = rng.normal(size=(5, S)).astype(np.float32)
    users = rng.integers(0, 7, 20).astype(np.int32)
    items = rng.integers(0, 5, 20).astype(np.int32)
    mean, var = np.empty(20), np.empty(20)
    bpmf.sample_moments(UF, IF, BU, BI, 3.0, users, items, mean, var)
    ref_mean, ref_var = bpmf.sample_moments_reference(UF, IF, BU, BI, 3.0, users, items)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-10)
    np.testing.assert_allclose(var, ref_var, rtol=1e-8, atol=1e-12)


def test_scatter_matches_numpy():
    X = np.random.default_rng(5).normal(size=(50, 4))
    mean = X.mean(axis=0)
    np.testing.assert_allclose(bpmf.scatter(X, mean), (X - mean).T @ (X - mean), rtol=1e-12)


# -- behaviour of the fitted model ---------------------------------------------------------
@pytest.fixture(scope="module")
def calibration_fit():
    """Planted data where the noise model holds: continuous ratings, Gaussian noise."""
    data = make_ratings(
        n_users=300,
        n_items=200,
        density=0.1,
        n_factors=3,
        noise_std=0.5,
        round_to=None,
        scale=None,
        missing="popularity",
        random_state=21,
    )
    fold = holdout(data.ratings, 0.2, random_state=0)
    model = BayesianMF(n_factors=3, n_samples=150, burn_in=50, random_state=0)
    return model.fit(fold.train), fold


def test_predictive_std_is_calibrated(calibration_fit):
    """About 68% of held-out errors within one predictive std, 95% within two."""
    model, fold = calibration_fit
    mean, std = model.predict_ratings(fold.test, return_std=True)
    z = np.abs(fold.test.rating - mean) / std
    assert 0.60 <= np.mean(z < 1) <= 0.76, f"{np.mean(z < 1):.3f} within one std"
    assert 0.91 <= np.mean(z < 2) <= 0.98, f"{np.mean(z < 2):.3f} within two std"
    # The noise level is learned, close to the planted 0.5.
    assert np.sqrt(model.noise_variance_) == pytest.approx(0.5, rel=0.1)


def test_std_is_larger_where_data_is_scarce(calibration_fit):
    """Users (and items) with few training ratings get a larger posterior std of the
    mean prediction than well-observed ones."""
    model, fold = calibration_fit
    train = fold.train.compact()
    _, std = model.predict(
        np.repeat(train.users.ids, len(train.items)),
        np.tile(train.items.ids, len(train.users)),
        return_std=True,
    )
    std_mean = np.sqrt(std**2 - model.noise_variance_).reshape(len(train.users), -1)
    for counts, per_row in (
        (train.user_counts(), std_mean.mean(axis=1)),
        (train.item_counts(), std_mean.mean(axis=0)),
    ):
        few = per_row[counts <= np.quantile(counts, 0.25)].mean()
        many = per_row[counts >= np.quantile(counts, 0.75)].mean()
        assert few > 1.1 * many, f"few ratings: {few:.3f}, many: {many:.3f}"


def test_return_std_shapes_unknown_ids_and_clip(calibration_fit):
    model, fold = calibration_fit
    users, items = model.users_.ids[:4], model.items_.ids[:4]
    mean, std = model.predict(users, items, return_std=True)
    np.testing.assert_array_equal(mean, model.predict(users, items))
    assert std.shape == (4,) and np.all(std > np.sqrt(model.noise_variance_))
    # A scalar user broadcasts; the std is the same per pair as in the full call.
    _, row_std = model.predict(users[0], items, return_std=True)
    assert row_std[0] == std[0]
    with pytest.warns(UnknownIdWarning, match="unseen") as caught:
        _, unknown_std = model.predict([10**9, users[0]], [items[0], 10**9], return_std=True)
    assert caught[0].filename == __file__, "the warning points at the caller"
    np.testing.assert_array_equal(unknown_std, model.rating_std_)
    with pytest.raises(DataError, match="differ in length"):
        model.predict(users[:2], items[:3], return_std=True)
    clipped, clipped_std = model.predict_ratings(fold.test, clip=True, return_std=True)
    low, high = model.rating_scale_
    assert clipped.min() >= low and clipped.max() <= high
    np.testing.assert_array_equal(clipped_std, model.predict_ratings(fold.test, return_std=True)[1])


def test_std_survives_save_and_load(calibration_fit, tmp_path):
    model, fold = calibration_fit
    path = tmp_path / "bayes.mfrec"
    model.save(path)
    loaded = load(path)
    for a, b in zip(
        loaded.predict_ratings(fold.test, return_std=True),
        model.predict_ratings(fold.test, return_std=True),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert loaded.n_samples_ == model.n_samples_ == 150
    assert loaded.n_factors_ == 3
    assert loaded.noise_variance_ == model.noise_variance_


def test_predictions_average_the_stored_samples(calibration_fit):
    """The concatenated, 1/sqrt(S)-scaled factors give the mean of the per-sample
    predictions, which is what return_std's mean is computed from too."""
    model, fold = calibration_fit
    v = model._translate(fold.test)
    ref_mean, _ = bpmf.sample_moments_reference(
        model.user_factors_, model.item_factors_, model.user_bias_samples_,
        model.item_bias_samples_, model.global_mean_, v.user_index, v.item_index,
    )  # fmt: skip
    np.testing.assert_allclose(model.predict_ratings(fold.test), ref_mean, rtol=1e-6, atol=1e-6)


def test_history_and_validation_curve(planted):
    _, fold = planted
    model = BayesianMF(n_factors=3, n_samples=20, burn_in=10, random_state=0)
    model.fit(fold.train, validation=fold.test)
    assert len(model.history_) == 30
    assert {"epoch", "train_rmse", "val_rmse", "noise_std", "seconds"} <= set(model.history_[0])
    # The running posterior mean ends better than the first sample after burn-in, and
    # its last validation RMSE is that of the fitted model.
    assert model.history_[-1]["val_rmse"] < model.history_[10]["val_rmse"]
    predicted = model.predict_ratings(fold.test)
    rmse = float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))
    assert model.history_[-1]["val_rmse"] == pytest.approx(rmse, rel=1e-5)


def test_callback_can_stop_during_burn_in(planted):
    _, fold = planted
    model = BayesianMF(n_factors=3, n_samples=20, burn_in=10, random_state=0)
    model.fit(fold.train, callback=lambda record: record["epoch"] < 4)
    assert len(model.history_) == 4 and model.n_samples_ == 1
    assert np.all(np.isfinite(model.predict_ratings(fold.test, return_std=True)[1]))


def test_implicit_feedback_helps_on_planted_data_with_informative_missingness():
    """When which items a user rated carries signal, the SVD++-style terms lower the
    error. Here users rate items they like, like MovieLens users do."""
    data = make_ratings(
        n_users=200, n_items=150, density=0.5, n_factors=3, noise_std=0.3, round_to=None,
        scale=None, missing="uniform", random_state=5,
    )  # fmt: skip
    ratings = data.ratings
    truth = data.truth.expected(ratings.user_index, ratings.item_index)
    liked = truth > np.quantile(truth, 0.4)  # keep mostly the pairs users like
    observed = ratings.subset(liked)
    fold = holdout(observed, 0.2, random_state=0)
    rmse = {}
    for implicit in ("none", "both"):
        model = BayesianMF(
            n_factors=3, n_samples=60, burn_in=30, implicit=implicit, random_state=0
        ).fit(fold.train)
        err = model.predict_ratings(fold.test) - fold.test.rating
        rmse[implicit] = float(np.sqrt(np.mean(err**2)))
    assert rmse["both"] < rmse["none"], rmse


def test_bad_parameter_message_names_the_range():
    with pytest.raises(ParameterError, match=r"implicit must be one of 'none', 'user'"):
        BayesianMF(implicit="svd++").fit(make_ratings(20, 10, density=0.5).ratings)


# -- hyperparameter posteriors ------------------------------------------------------------
def test_wishart_draws_have_the_wishart_mean():
    from mfrec.models.bayes import _wishart

    rng = np.random.default_rng(0)
    scale = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 0.5]])
    draws = np.array([_wishart(rng, scale, 7.0) for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(axis=0), 7.0 * scale, atol=0.25)
    assert np.all(np.linalg.eigvalsh(draws) > 0)


def test_hyperparameter_posteriors_concentrate_on_the_sample_moments():
    from mfrec.models.bayes import sample_normal_gamma, sample_normal_wishart

    rng = np.random.default_rng(1)
    cov = np.array([[0.5, 0.2, 0.0], [0.2, 0.3, -0.1], [0.0, -0.1, 0.2]])
    X = rng.multivariate_normal([1.0, -2.0, 0.5], cov, size=20_000)
    mean, precision = sample_normal_wishart(rng, X)
    np.testing.assert_allclose(mean, [1.0, -2.0, 0.5], atol=0.03)
    np.testing.assert_allclose(np.linalg.inv(precision), cov, atol=0.03)
    means, precisions = sample_normal_gamma(rng, X)
    np.testing.assert_allclose(means, [1.0, -2.0, 0.5], atol=0.03)
    np.testing.assert_allclose(1.0 / precisions, np.diag(cov), rtol=0.05)


def test_fold_in_is_refused_with_a_reason(calibration_fit):
    model, _ = calibration_fit
    if not hasattr(model, "fold_in"):
        pytest.skip("this build has no fold-in")
    with pytest.raises(NotImplementedError, match="BayesianMF does not support fold-in"):
        model.fold_in(10**9, {model.items_.ids[0]: 4.0})
