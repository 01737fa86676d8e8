"""Bayesian probabilistic matrix factorization by Gibbs sampling (Salakhutdinov & Mnih
2008), with biases, optional SVD++-style implicit feedback, and predictive uncertainty."""

from __future__ import annotations

import logging
import math
from typing import Any, ClassVar

import numpy as np

from mfrec._params import Constraint, Integer, Options, RandomStateConstraint, Real
from mfrec._random import check_random_state, spawn_seeds
from mfrec.data.ratings import Ratings
from mfrec.exceptions import DataError
from mfrec.models.base import FactorModel, ValidationData

logger = logging.getLogger(__name__)

#: Rows per random-number block in the parallel row sampler (one seed per block and
#: sweep): part of the model's definition, so fixed rather than a setting.
_BLOCK_ROWS = 32
#: Below this many ratings a sweep runs on one thread. A sweep of ML-100K takes tens of
#: milliseconds serially; its two parallel loops save about a tenth of that on an idle
#: machine, but on a busy one every parallel start waits for a time slice, and fitting
#: on 2 threads was measured slower than on 1. The result is the same either way.
_MIN_PARALLEL_RATINGS = 250_000

# Hyperpriors (BPMF's choices): Normal-Wishart with mu0 = 0, beta0 = 2, W0 = I and
# nu0 = dimension, for the factors; the same in one dimension (a Normal-Gamma) for each
# bias and each coordinate of the implicit vectors; Gamma(1, 1) (shape, rate) for the
# noise precision when it is sampled (libFM's choice).
_BETA0 = 2.0
_ALPHA_SHAPE0 = 1.0
_ALPHA_RATE0 = 1.0

IMPLICIT_OPTIONS = ("none", "user", "item", "both")


def _wishart(rng: np.random.Generator, scale: np.ndarray, dof: float) -> np.ndarray:
    """One draw from Wishart(scale, dof) by the Bartlett decomposition."""
    k = scale.shape[0]
    chol = np.linalg.cholesky(scale)
    bartlett = np.zeros((k, k))
    bartlett[np.diag_indices(k)] = np.sqrt(rng.chisquare(dof - np.arange(k)))
    lower = np.tril_indices(k, -1)
    bartlett[lower] = rng.standard_normal(len(lower[0]))
    product = chol @ bartlett
    return product @ product.T


def sample_normal_wishart(
    rng: np.random.Generator, X: np.ndarray, beta0: float = _BETA0
) -> tuple[np.ndarray, np.ndarray]:
    """Draw (mean, precision) of the rows of ``X`` from their Normal-Wishart posterior.

    Prior: precision ~ Wishart(I, k), mean | precision ~ N(0, (beta0 precision)^-1)
    (BPMF eq. 14, with mu0 = 0, W0 = I, nu0 = k).
    """
    from mfrec.kernels.bpmf import scatter

    n, k = X.shape
    mean = X.mean(axis=0)
    spread = scatter(np.ascontiguousarray(X), mean)
    beta = beta0 + n
    w_inv = np.eye(k) + spread + (beta0 * n / beta) * np.outer(mean, mean)
    w = np.linalg.inv(w_inv)
    precision = _wishart(rng, (w + w.T) / 2, k + n)
    chol = np.linalg.cholesky(beta * precision)
    mu = n * mean / beta + np.linalg.solve(chol.T, rng.standard_normal(k))
    return mu, precision


def sample_normal_gamma(
    rng: np.random.Generator, X: np.ndarray, beta0: float = _BETA0
) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``X``: (mean, precision) from the one-dimensional Normal-Wishart
    (= Normal-Gamma) posterior with mu0 = 0, W0 = 1, nu0 = 1."""
    n = X.shape[0]
    mean = X.mean(axis=0)
    spread = ((X - mean) ** 2).sum(axis=0)
    beta = beta0 + n
    w_inv = 1.0 + spread + (beta0 * n / beta) * mean**2
    precision = rng.gamma((1.0 + n) / 2.0, 2.0 / w_inv)
    mu = n * mean / beta + rng.standard_normal(len(mean)) / np.sqrt(beta * precision)
    return mu, precision


class BayesianMF(FactorModel):
    """Bayesian probabilistic matrix factorization (BPMF) by Gibbs sampling.

    The model of Salakhutdinov & Mnih (2008), with user and item biases, and optionally
    the implicit feedback of SVD++ (which items each user rated) and its "flipped"
    mirror (which users rated each item), as in Rendle's Bayesian factorization machines:

        r_ui ~ N(mu + b_u + b_i + (p_u + ybar_u) . (q_i + zbar_i), 1 / alpha)
        ybar_u = |N(u)|^-1/2 sum_{j in N(u)} y_j,   zbar_i = |N(i)|^-1/2 sum_{v in N(i)} z_v

    ``mu`` is the training mean. Priors: ``p_u ~ N(mu_U, Lambda_U^-1)`` with a
    Normal-Wishart hyperprior on (mu_U, Lambda_U) (mu0 = 0, beta0 = 2, W0 = I, nu0 = k);
    items alike; ``b_u ~ N(mu_bu, 1/lambda_bu)`` with a Normal-Gamma hyperprior (the same
    in one dimension), items alike; each coordinate f of the ``y_j`` (and of the ``z_v``)
    ``~ N(mu_f, 1/lambda_f)`` with a Normal-Gamma hyperprior per coordinate. The noise
    precision ``alpha`` is fixed (``noise_precision``) or sampled with a Gamma(1, 1)
    prior (shape, rate).

    Each sweep draws, in order: alpha; the user hyperparameters; every user's
    ``(p_u, b_u)`` from its (k+1)-dimensional Gaussian conditional (independent given
    the items, so sampled in parallel on large problems); the item
    hyperparameters and every item's ``(q_i, b_i)``; then, when enabled, the ``y`` and
    ``z`` coordinate by coordinate (their conditionals are coupled), with their
    hyperparameters. See :mod:`mfrec.kernels.bpmf` for the formulas. The chain starts
    from factors ~ N(0, 0.1^2) and zero biases and implicit vectors. Random draws come
    from seeds spawned per sweep and per block of rows, so the result depends on
    ``random_state`` only, never on the thread count.

    Predictions average the ``n_samples`` sweeps after ``burn_in``. The samples are
    stored side by side, scaled by 1/sqrt(S): ``user_factors_`` is n_users x (S k), so
    that one dot product gives the posterior mean of the interaction and every
    :class:`FactorModel` method (``predict``, ``recommend``, save/load) works unchanged.
    Memory: (n_users + n_items) x S x k float32.

    Uncertainty: ``predict(users, items, return_std=True)`` (and ``predict_ratings``)
    also returns the posterior predictive standard deviation of a *new rating* of each
    pair, ``sqrt(Var_s[prediction_s] + noise_variance_)``: the spread of the S sampled
    predictions plus the mean noise variance (see :meth:`predict`).

    Parameters
    ----------
    n_factors : int, default 10
        Latent dimensions k.
    n_samples : int, default 200
        Sweeps after burn-in whose samples are averaged (and stored).
    burn_in : int, default 100
        Sweeps discarded before the first kept sample.
    implicit : {"none", "user", "item", "both"}, default "both"
        Implicit-feedback terms: ``"user"`` adds SVD++'s ``ybar_u`` (from the items each
        user rated in training), ``"item"`` the flipped ``zbar_i`` (from the users who
        rated each item), ``"both"`` both; ``"none"`` is plain BPMF with biases.
    noise_precision : float or None, default None
        Fixed alpha (1 / noise variance); None samples it (Gamma(1, 1) prior).
    random_state : None, int or numpy Generator
        Same seed, same model, bit for bit.
    n_threads : int or None, default None
        Threads to sample with (None: all cores; problems under 250,000 ratings use
        one, see ``_MIN_PARALLEL_RATINGS``). Does not change the result.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray of float32, (n_users, S k), (n_items, S k)
        The S kept samples of ``p_u + ybar_u`` (``q_i + zbar_i``), scaled by 1/sqrt(S).
    user_bias_, item_bias_ : ndarray of float32
        Posterior means of the biases.
    user_bias_samples_, item_bias_samples_ : ndarray of float32, (n, S)
        The kept bias samples (for :meth:`predict`'s ``return_std``).
    noise_variance_ : float
        Posterior mean of 1/alpha over the kept samples.
    rating_std_ : float
        Standard deviation of the training ratings (the std reported for pairs with an
        unknown id).
    history_ : list of dict
        Per sweep: ``train_rmse`` and ``val_rmse`` (with validation data) of the
        posterior-mean prediction so far (during burn-in: of the current sample),
        ``noise_std`` (1/sqrt(alpha) of the sweep) and ``seconds``.

    References
    ----------
    R. Salakhutdinov, A. Mnih. Bayesian probabilistic matrix factorization using Markov
    chain Monte Carlo. ICML 2008. S. Rendle. Factorization machines with libFM. ACM
    TIST 2012. Y. Koren. Factorization meets the neighborhood. KDD 2008.
    """

    name = "bayes-mf"
    _biases = (True, True)
    _extra_arrays = ("user_bias_samples_", "item_bias_samples_")
    _constraints: ClassVar[dict[str, Constraint]] = {
        "n_factors": Integer(1, 1_000),
        "n_samples": Integer(1, 1_000_000),
        "burn_in": Integer(0, 1_000_000),
        "implicit": Options(IMPLICIT_OPTIONS),
        "noise_precision": Real(0, None, open_low=True, none_ok=True),
        "random_state": RandomStateConstraint(),
        "n_threads": Integer(1, None, none_ok=True),
    }
    _fitted_scalars: ClassVar[tuple[str, ...]] = ("noise_variance_", "rating_std_")

    def __init__(
        self,
        n_factors: int = 10,
        n_samples: int = 200,
        burn_in: int = 100,
        implicit: str = "both",
        noise_precision: float | None = None,
        random_state: Any = None,
        n_threads: int | None = None,
    ) -> None:
        self.n_factors = n_factors
        self.n_samples = n_samples
        self.burn_in = burn_in
        self.implicit = implicit
        self.noise_precision = noise_precision
        self.random_state = random_state
        self.n_threads = n_threads

    # -- training -------------------------------------------------------------------
    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        from mfrec._threads import numba_threads

        n_threads = self.n_threads if len(train) >= _MIN_PARALLEL_RATINGS else 1
        with numba_threads(n_threads):
            self._gibbs(train, validation, callback)

    def _gibbs(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        from mfrec.kernels.bpmf import implicit_pass, residuals, sample_rows
        from mfrec.kernels.score import score_pairs

        rng = check_random_state(self.random_state)
        k, mu = self.n_factors, self.global_mean_
        n_users, n_items, n = train.n_users, train.n_items, len(train)
        use_y = self.implicit in ("user", "both")
        use_z = self.implicit in ("item", "both")

        # Ratings by user (CSR) and by item; residuals live in the user-CSR order and
        # item_pos maps each item-CSR entry to its user-CSR position.
        by_user = np.argsort(train.user_index, kind="stable")
        u_cols = train.item_index[by_user]
        u_rows = train.user_index[by_user]
        u_vals = train.rating[by_user].astype(np.float64)
        u_indptr = _indptr(train.user_counts())
        item_pos = np.argsort(u_cols, kind="stable")
        i_rows = u_rows[item_pos]
        i_vals = u_vals[item_pos]
        i_indptr = _indptr(train.item_counts())
        u_pos = np.arange(n, dtype=np.int64)
        user_norm = 1.0 / np.sqrt(np.diff(u_indptr).astype(np.float64))
        item_norm = 1.0 / np.sqrt(np.diff(i_indptr).astype(np.float64))

        P = 0.1 * rng.standard_normal((n_users, k))
        Q = 0.1 * rng.standard_normal((n_items, k))
        bu, bi = np.zeros(n_users), np.zeros(n_items)
        Y, Ybar = np.zeros((n_items, k)), np.zeros((n_users, k))
        Z, Zbar = np.zeros((n_users, k)), np.zeros((n_items, k))
        work = np.empty((max(n_users, n_items), 4))
        resid = np.empty(n)

        n_kept_max = self.n_samples
        samples_p = np.empty((n_users, n_kept_max, k), dtype=np.float32)
        samples_q = np.empty((n_items, n_kept_max, k), dtype=np.float32)
        samples_bu = np.empty((n_users, n_kept_max), dtype=np.float32)
        samples_bi = np.empty((n_items, n_kept_max), dtype=np.float32)
        noise_var = []
        pred_sum = np.zeros(n)
        if validation is not None:
            v_users, v_items = validation.user_index, validation.item_index
            v_known = (v_users >= 0) & (v_items >= 0)
            v_u = np.ascontiguousarray(v_users[v_known], dtype=np.int32)
            v_i = np.ascontiguousarray(v_items[v_known], dtype=np.int32)
            v_sum = np.zeros(len(v_users))
            v_pred = np.empty(len(v_users))
            v_known_pred = np.empty(len(v_u))
        sse = residuals(u_indptr, u_cols, u_vals, P, Q, bu, bi, mu, resid)
        state = {"kept": 0, "sse": sse, "P_eff": P, "Q_eff": Q}

        def draw_side(X, b, indptr, cols, vals, other, other_bias, offset, alpha):
            mean_x, prec_x = sample_normal_wishart(rng, X)
            mean_b, prec_b = sample_normal_gamma(rng, b[:, None])
            prior_prec = np.zeros((k + 1, k + 1))
            prior_prec[:k, :k] = prec_x
            prior_prec[k, k] = prec_b[0]
            prior_h = np.append(prec_x @ mean_x, prec_b[0] * mean_b[0])
            seeds = spawn_seeds(rng, -(-len(b) // _BLOCK_ROWS))
            sample_rows(
                indptr, cols, vals, other, other_bias, offset, mu, alpha,
                prior_prec, prior_h, seeds, _BLOCK_ROWS, X, b,
            )  # fmt: skip

        def sweep(e: int) -> dict[str, float]:
            if self.noise_precision is None:
                alpha = rng.gamma(_ALPHA_SHAPE0 + n / 2, 1.0 / (_ALPHA_RATE0 + state["sse"] / 2))
            else:
                alpha = float(self.noise_precision)
            draw_side(P, bu, u_indptr, u_cols, u_vals, Q + Zbar, bi, Ybar, alpha)
            P_eff = P + Ybar
            draw_side(Q, bi, i_indptr, i_rows, i_vals, P_eff, bu, Zbar, alpha)
            Q_eff = Q + Zbar
            if use_y or use_z:
                residuals(u_indptr, u_cols, u_vals, P_eff, Q_eff, bu, bi, mu, resid)
            if use_y:
                mean_y, prec_y = sample_normal_gamma(rng, Y)
                implicit_pass(
                    u_indptr, u_cols, u_pos, i_indptr, i_rows, user_norm, _t(Q_eff), Y, Ybar,
                    resid, alpha, mean_y, prec_y, spawn_seeds(rng, 1)[0], work,
                )  # fmt: skip
                P_eff = P + Ybar
            if use_z:
                mean_z, prec_z = sample_normal_gamma(rng, Z)
                implicit_pass(
                    i_indptr, i_rows, item_pos, u_indptr, u_cols, item_norm, _t(P_eff), Z, Zbar,
                    resid, alpha, mean_z, prec_z, spawn_seeds(rng, 1)[0], work,
                )  # fmt: skip
                Q_eff = Q + Zbar
            state["sse"] = residuals(u_indptr, u_cols, u_vals, P_eff, Q_eff, bu, bi, mu, resid)
            state["P_eff"], state["Q_eff"] = P_eff, Q_eff
            # The current sample, where _run_epochs checks that it stayed finite.
            self.user_factors_, self.item_factors_ = P_eff, Q_eff
            self.user_bias_, self.item_bias_ = bu, bi
            current = u_vals - resid
            kept = state["kept"]
            if e > self.burn_in:
                samples_p[:, kept] = P_eff
                samples_q[:, kept] = Q_eff
                samples_bu[:, kept] = bu
                samples_bi[:, kept] = bi
                noise_var.append(1.0 / alpha)
                kept += 1
                state["kept"] = kept
                pred_sum[:] += current
                train_rmse = _rmse(u_vals, pred_sum / kept)
            else:
                train_rmse = math.sqrt(state["sse"] / n)
            record = {"train_rmse": train_rmse}
            if validation is not None:
                v_pred[:] = mu
                v_pred[v_users >= 0] += bu[v_users[v_users >= 0]]
                v_pred[v_items >= 0] += bi[v_items[v_items >= 0]]
                score_pairs(P_eff, Q_eff, bu, bi, mu, v_u, v_i, v_known_pred)
                v_pred[v_known] = v_known_pred
                if e > self.burn_in:
                    v_sum[:] += v_pred
                    v_pred[:] = v_sum / kept
                record["val_rmse"] = _rmse(validation.rating, v_pred)
            record["noise_std"] = 1.0 / math.sqrt(alpha)
            return record

        self._run_epochs(self.burn_in + self.n_samples, sweep, None, callback)

        kept = state["kept"]
        if kept == 0:  # stopped by the callback during burn-in: keep the last sample
            logger.warning("BayesianMF stopped during burn-in; predicting from one sample")
            samples_p[:, 0], samples_q[:, 0] = state["P_eff"], state["Q_eff"]
            samples_bu[:, 0], samples_bi[:, 0] = bu, bi
            noise_var.append(state["sse"] / n)
            kept = 1
        # Scaled in place: with every sample kept, the reshape is a view (no copy).
        scale = np.float32(1.0 / math.sqrt(kept))
        self.user_factors_ = np.ascontiguousarray(samples_p[:, :kept]).reshape(n_users, -1)
        self.item_factors_ = np.ascontiguousarray(samples_q[:, :kept]).reshape(n_items, -1)
        self.user_factors_ *= scale
        self.item_factors_ *= scale
        self.user_bias_samples_ = np.ascontiguousarray(samples_bu[:, :kept])
        self.item_bias_samples_ = np.ascontiguousarray(samples_bi[:, :kept])
        self.user_bias_ = self.user_bias_samples_.mean(axis=1, dtype=np.float64).astype(np.float32)
        self.item_bias_ = self.item_bias_samples_.mean(axis=1, dtype=np.float64).astype(np.float32)
        self.noise_variance_ = float(np.mean(noise_var))
        self.rating_std_ = float(np.std(u_vals))

    def _check_fold_in(self) -> None:
        # The generic fold-in solves one ridge regression against the item factors; here
        # those are S posterior samples side by side, and a new user needs a posterior
        # draw per sample (and bias samples for return_std), which is not implemented.
        raise NotImplementedError(
            "BayesianMF does not support fold-in (fold_in, recommend_for_ratings, "
            "partial_fit): a new user would need a posterior sample against each stored "
            "item sample. Refit with the new ratings, or rely on the unknown-user fallback."
        )

    def _divergence_hint(self) -> str:
        return (
            "The Gibbs sampler produced non-finite values (a singular conditional); check "
            "the ratings for extreme values, or fix a smaller noise_precision."
        )

    # -- persistence of the uncertainty -------------------------------------------
    def _extra_state(self) -> dict[str, np.ndarray]:
        return {
            "user_bias_samples_": self.user_bias_samples_,
            "item_bias_samples_": self.item_bias_samples_,
        }

    def _restore_extra_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.user_bias_samples_ = arrays["user_bias_samples_"]
        self.item_bias_samples_ = arrays["item_bias_samples_"]

    @property
    def n_samples_(self) -> int:
        """Number of posterior samples the predictions average."""
        return int(self.user_bias_samples_.shape[1])

    @property
    def n_factors_(self) -> int:
        return int(self.item_factors_.shape[1] // self.n_samples_)

    # -- prediction with uncertainty ----------------------------------------------
    def predict(
        self, users: Any, items: Any, *, clip: bool = False, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Posterior-mean predicted ratings of (user, item) pairs given by raw ids.

        Parameters
        ----------
        users, items : scalar or array-like
            Raw ids; equal lengths, or one side a scalar (broadcast).
        clip : bool, default False
            Clip the predictions (not the std) to the training rating scale.
        return_std : bool, default False
            Also return each prediction's posterior predictive standard deviation.

        Returns
        -------
        mean : ndarray of float64
        std : ndarray of float64, only with ``return_std=True``
            The standard deviation of a *new rating* of the pair under the posterior
            predictive distribution: ``sqrt(Var_s[prediction_s] + E_s[1/alpha_s])``, the
            spread of the per-sample predictions plus the mean noise variance. The std
            of the mean prediction alone (the model's uncertainty about the expected
            rating) is ``sqrt(std**2 - noise_variance_)``. Pairs with an unknown user or
            item get ``rating_std_``, the spread of all training ratings.
        """
        # The base class's steps, inlined so that the std reuses the looked-up indices
        # and the unknown-id warning points at the caller.
        self._check_fitted()
        u = self.users_.lookup(users)
        i = self.items_.lookup(items)
        if len(u) != len(i):
            if len(u) != 1 and len(i) != 1:
                raise DataError(f"users and items differ in length: {len(u)} vs {len(i)}")
            u, i = (np.ascontiguousarray(a) for a in np.broadcast_arrays(u, i))
        self._warn_unknown(u, i)
        mean = self._finish(self._predict_indices(u, i), clip)
        return (mean, self._std_indices(u, i)) if return_std else mean

    def predict_ratings(
        self, ratings: Ratings, *, clip: bool = False, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predictions for every row of ``ratings``; with ``return_std=True`` also each
        one's posterior predictive standard deviation (see :meth:`predict`)."""
        self._check_fitted()
        v = self._translate(ratings)
        self._warn_unknown(v.user_index, v.item_index)
        mean = self._finish(self._predict_indices(v.user_index, v.item_index), clip)
        return (mean, self._std_indices(v.user_index, v.item_index)) if return_std else mean

    def _std_indices(self, user_index: np.ndarray, item_index: np.ndarray) -> np.ndarray:
        from mfrec.kernels.bpmf import sample_moments

        known = (user_index >= 0) & (item_index >= 0)
        std = np.full(len(user_index), self.rating_std_, dtype=np.float64)
        if known.any():
            users = np.ascontiguousarray(user_index[known], dtype=np.int32)
            items = np.ascontiguousarray(item_index[known], dtype=np.int32)
            mean = np.empty(len(users))
            var = np.empty(len(users))
            sample_moments(
                self.user_factors_, self.item_factors_, self.user_bias_samples_,
                self.item_bias_samples_, self.global_mean_, users, items, mean, var,
            )  # fmt: skip
            std[known] = np.sqrt(var + self.noise_variance_)
        return std


def _t(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T)


def _indptr(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _rmse(truth: np.ndarray, predicted: np.ndarray) -> float:
    diff = predicted - truth
    return float(np.sqrt(np.mean(diff * diff)))
