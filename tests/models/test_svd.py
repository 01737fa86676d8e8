"""TruncatedSVD: conformance, exact reconstruction, solvers, PureSVD ranking."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from mfrec.data.ratings import Ratings
from mfrec.data.synthetic import make_ratings
from mfrec.exceptions import ParameterError
from mfrec.models import TruncatedSVD
from mfrec.models.svd import DENSE_MAX_CELLS, choose_solver, randomized_svd

from .conformance import ModelConformance
from .topn_conformance import TopNConformance


class TestTruncatedSVDConformance(ModelConformance):
    model_class = TruncatedSVD
    fast_params = {"n_factors": 3}
    # Imputing half of the matrix with the baseline shrinks the factors: the classic
    # weakness of SVD with imputation (masked models reach ~0.15 here, this one ~0.42).
    # Still clearly better than the biases it starts from (~0.49; 0.50 with no factors).
    rmse_bound = 0.5
    baseline_ratio = 0.9
    iterative = False
    alternatives = {
        "n_factors": 5,
        "impute": "mean",
        "reg_user": 0.0,
        "reg_item": 50.0,
    }
    exempt = {
        "solver": "solvers agree to ~1e-9 by design; covered by test_solvers_agree",
        "random_state": "the dense solver (chosen at this size) uses no randomness; the "
        "seeded solvers are covered by test_seeded_solvers_are_deterministic",
    }
    bad_values = {
        "n_factors": 0,
        "impute": "median",
        "solver": "lapack",
        "reg_user": -1.0,
        "reg_item": -0.5,
    }


class TestTruncatedSVDTopN(TopNConformance):
    model_class = TruncatedSVD
    fast_params = TestTruncatedSVDConformance.fast_params


def _full_matrix(n_users=9, n_items=6, seed=0):
    """A fully observed integer rating matrix and its Ratings."""
    rng = np.random.default_rng(seed)
    matrix = rng.integers(1, 6, size=(n_users, n_items)).astype(np.float64)
    users, items = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    ratings = Ratings.from_arrays(users.ravel(), items.ravel(), matrix.ravel(), scale=(1, 5))
    return matrix, ratings


@pytest.mark.parametrize("impute", ["bias", "mean", "zero"])
def test_full_rank_reconstructs_the_matrix_to_machine_precision(impute):
    matrix, ratings = _full_matrix()
    model = TruncatedSVD(n_factors=min(matrix.shape), impute=impute).fit(ratings)
    assert model.solver_ == "dense"
    users, items = np.meshgrid(np.arange(9), np.arange(6), indexing="ij")
    predicted = model.predict(users.ravel(), items.ravel()).reshape(matrix.shape)
    np.testing.assert_allclose(predicted, matrix, rtol=0, atol=1e-12)
    # And the factors themselves are an SVD: U^T U = diag(s) = V^T V.
    s = model.singular_values_
    np.testing.assert_allclose(model.user_factors_.T @ model.user_factors_, np.diag(s), atol=1e-10)
    np.testing.assert_allclose(model.item_factors_.T @ model.item_factors_, np.diag(s), atol=1e-10)
    assert np.all(np.diff(s) <= 0)


def test_low_rank_is_the_best_rank_k_approximation_of_the_imputed_matrix():
    """Eckart-Young: the fit is the dense SVD truncation of (imputed matrix - baseline)."""
    data = make_ratings(n_users=40, n_items=30, density=0.3, random_state=3)
    ratings = data.ratings
    model = TruncatedSVD(n_factors=4, impute="mean").fit(ratings)
    dense = np.full((ratings.n_users, ratings.n_items), model.global_mean_)
    dense[ratings.user_index, ratings.item_index] = ratings.rating
    u, s, vt = np.linalg.svd(dense - model.global_mean_)
    best = model.global_mean_ + (u[:, :4] * s[:4]) @ vt[:4]
    np.testing.assert_allclose(model.predict_matrix(), best, atol=1e-5)
    np.testing.assert_allclose(model.singular_values_, s[:4], rtol=1e-12)


def test_bias_imputation_fills_the_matrix_with_regularised_biases():
    """impute="bias": the biases solve the baseline's normal equations (checked here from
    their definition, not against BiasBaseline), and the fit is the rank-k truncation of
    the matrix whose missing cells hold mu + b_u + b_i (Eckart-Young)."""
    ratings = make_ratings(n_users=50, n_items=40, density=0.2, random_state=4).ratings
    reg_user, reg_item = 7.0, 3.0
    model = TruncatedSVD(n_factors=2, reg_user=reg_user, reg_item=reg_item).fit(ratings)
    mu, bu, bi = model.global_mean_, model.user_bias_, model.item_bias_
    u_idx, i_idx = ratings.user_index, ratings.item_index
    r = ratings.rating.astype(np.float64) - mu
    n_u = np.bincount(u_idx, minlength=ratings.n_users)
    n_i = np.bincount(i_idx, minlength=ratings.n_items)
    assert mu == pytest.approx(ratings.rating.mean(dtype=np.float64), rel=1e-12)
    np.testing.assert_allclose(
        bi, np.bincount(i_idx, r - bu[u_idx], ratings.n_items) / (reg_item + n_i), atol=1e-4
    )
    np.testing.assert_allclose(
        bu, np.bincount(u_idx, r - bi[i_idx], ratings.n_users) / (reg_user + n_u), atol=1e-4
    )
    assert np.abs(bu).max() > 0.05 and np.abs(bi).max() > 0.05  # not trivially zero
    baseline = mu + bu[:, None] + bi[None, :]
    dense = baseline.copy()
    dense[u_idx, i_idx] = ratings.rating
    u, s, vt = np.linalg.svd(dense - baseline)
    np.testing.assert_allclose(
        model.predict_matrix(), baseline + (u[:, :2] * s[:2]) @ vt[:2], atol=1e-6
    )


@pytest.fixture(scope="module")
def mid_problem():
    """700 x 400 (above DENSE_MAX_CELLS), 5% observed: auto picks an iterative solver."""
    return make_ratings(n_users=700, n_items=400, density=0.05, random_state=5).ratings


def test_solvers_agree(mid_problem):
    fits = {
        solver: TruncatedSVD(n_factors=6, solver=solver, random_state=0).fit(mid_problem)
        for solver in ("dense", "sparse", "randomized")
    }
    dense, arpack, randomized = fits["dense"], fits["sparse"], fits["randomized"]
    np.testing.assert_allclose(arpack.singular_values_, dense.singular_values_, rtol=1e-10)
    np.testing.assert_allclose(randomized.singular_values_, dense.singular_values_, rtol=1e-4)
    # Same signs by construction, so the factors agree too (the spectrum has gaps here).
    np.testing.assert_allclose(arpack.user_factors_, dense.user_factors_, atol=1e-7)
    np.testing.assert_allclose(arpack.item_factors_, dense.item_factors_, atol=1e-7)
    a, b = dense.predict_matrix(), randomized.predict_matrix()
    assert np.max(np.abs(a - b)) < 0.05


def test_auto_solver_follows_the_documented_thresholds(mid_problem):
    assert choose_solver("auto", 100, 100, 5) == "dense"
    assert choose_solver("auto", 512, 512, 10) == "dense"  # exactly DENSE_MAX_CELLS
    assert DENSE_MAX_CELLS == 512 * 512
    assert choose_solver("auto", 2000, 1000, 100) == "sparse"  # 10% of min dimension
    assert choose_solver("auto", 2000, 1000, 101) == "randomized"
    assert choose_solver("auto", 2000, 1000, 1000) == "dense"  # full rank needs LAPACK
    assert choose_solver("randomized", 10, 10, 3) == "randomized"  # explicit wins
    assert TruncatedSVD(n_factors=5).fit(mid_problem).solver_ == "sparse"


def test_solver_limits_are_explained():
    with pytest.raises(ParameterError, match="solver='dense' for the full rank"):
        choose_solver("sparse", 100, 50, 50)
    with pytest.raises(ParameterError, match="dense solver would build"):
        choose_solver("dense", 200_000, 60_000, 10)
    _, ratings = _full_matrix()
    with pytest.raises(ParameterError, match=r"n_factors=7 exceeds .* = 6"):
        TruncatedSVD(n_factors=7).fit(ratings)


@pytest.mark.parametrize("solver", ["sparse", "randomized"])
def test_iterative_solvers_never_densify(mid_problem, monkeypatch, solver):
    def refuse(*args, **kwargs):
        raise AssertionError("the residual matrix was densified")

    monkeypatch.setattr(sp.csr_matrix, "toarray", refuse)
    monkeypatch.setattr(sp.csr_matrix, "todense", refuse)
    model = TruncatedSVD(n_factors=4, solver=solver, random_state=0).fit(mid_problem)
    assert model.singular_values_.shape == (4,)


@pytest.mark.parametrize("solver", ["sparse", "randomized"])
def test_seeded_solvers_are_deterministic(mid_problem, solver):
    first = TruncatedSVD(n_factors=5, solver=solver, random_state=11).fit(mid_problem)
    second = TruncatedSVD(n_factors=5, solver=solver, random_state=11).fit(mid_problem)
    assert np.array_equal(first.user_factors_, second.user_factors_)
    assert np.array_equal(first.item_factors_, second.item_factors_)


def test_result_does_not_depend_on_blas_threads(mid_problem, monkeypatch):
    """The SVD runs on one BLAS thread whatever the caller allows (multi-threaded LAPACK
    splits reductions differently per thread count), so the factors are the same under
    a 1-thread and a many-thread BLAS. The spy checks the solve itself saw one thread:
    comparing two fits alone could not fail, both being forced to one thread."""
    from threadpoolctl import threadpool_info

    import mfrec.models.svd as svd_module
    from mfrec._threads import blas_threads

    def blas_counts() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    most = max(blas_counts(), default=1)
    if most < 2:
        pytest.skip("BLAS has a single thread on this machine: nothing to vary")
    seen: list[list[int]] = []
    original = svd_module.truncated_svd

    def spy(*args, **kwargs):
        seen.append(blas_counts())
        return original(*args, **kwargs)

    monkeypatch.setattr(svd_module, "truncated_svd", spy)
    fits = []
    for threads in (1, most):
        with blas_threads(threads):
            assert max(blas_counts()) == threads
            fits.append(
                [
                    TruncatedSVD(n_factors=5, solver=s, random_state=0).fit(mid_problem)
                    for s in ("dense", "sparse", "randomized")
                ]
            )
    assert len(seen) == 6 and all(counts and max(counts) == 1 for counts in seen), seen
    for one, many in zip(*fits, strict=True):
        assert np.array_equal(one.user_factors_, many.user_factors_), one.solver_


def test_randomized_svd_recovers_an_exact_low_rank_matrix():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(80, 5)) @ rng.normal(size=(5, 60))
    u, s, vt = randomized_svd(sp.csr_matrix(matrix), 5, np.random.default_rng(1))
    np.testing.assert_allclose((u * s) @ vt, matrix, atol=1e-10)
    np.testing.assert_allclose(s, np.linalg.svd(matrix, compute_uv=False)[:5], rtol=1e-12)


def test_pure_svd_ranks_by_the_zero_filled_reconstruction():
    """impute='zero' is PureSVD: recommend() ranks unseen items by U S V^T of the
    zero-filled matrix."""
    ratings = make_ratings(n_users=60, n_items=50, density=0.2, random_state=8).ratings
    model = TruncatedSVD(n_factors=5, impute="zero").fit(ratings)
    dense = np.zeros((ratings.n_users, ratings.n_items))
    dense[ratings.user_index, ratings.item_index] = ratings.rating
    u, s, vt = np.linalg.svd(dense)
    reconstruction = (u[:, :5] * s[:5]) @ vt[:5]
    users = ratings.users.ids[:10]
    recs = model.recommend(users, n=5)
    for row in range(len(users)):
        scores = reconstruction[row].copy()
        scores[dense[row] > 0] = -np.inf
        np.testing.assert_allclose(recs.scores[row], np.sort(scores)[::-1][:5], atol=1e-4)
        assert set(recs.item_ids[row]) == set(ratings.items.ids[np.argsort(-scores)[:5]])


@pytest.mark.parametrize("impute", ["bias", "mean", "zero"])
def test_folding_in_a_training_user_gives_back_their_factors(impute):
    """Projection fold-in reproduces U sqrt(s) for a training user's own ratings."""
    ratings = make_ratings(n_users=60, n_items=50, density=0.2, random_state=8).ratings
    model = TruncatedSVD(n_factors=5, impute=impute).fit(ratings)
    seen = model.seen_items
    factors, bias = model._solve_users(seen.indptr, seen.indices, seen.data)
    np.testing.assert_allclose(factors, model.user_factors_, atol=1e-6)
    if impute == "bias":
        np.testing.assert_allclose(bias, model.user_bias_, atol=1e-5)
    else:
        assert bias is None
