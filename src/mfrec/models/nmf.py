"""Non-negative matrix factorization fitted on the observed ratings only."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mfrec._params import (
    Boolean,
    Constraint,
    Integer,
    Options,
    RandomStateConstraint,
    Real,
)
from mfrec._random import check_random_state
from mfrec.data.ratings import Ratings
from mfrec.exceptions import ParameterError
from mfrec.models.base import FactorModel, ValidationData
from mfrec.models.gd import sweep_threads

#: Added to every multiplicative-update denominator so that 0/0 cannot occur.
EPS = 1e-12
#: Rounds of updates that fold a new user in (items fixed; see NMF._solve_users).
FOLD_IN_ITERATIONS = 200


class NMF(FactorModel):
    """Non-negative matrix factorization fitted on the observed ratings only.

    ``r_hat = p_u . q_i`` with ``p_u, q_i >= 0`` (``+ mu + b_u + b_i`` with
    ``biased=True``).

    Minimises, over the observed ratings (a missing rating is missing, never a zero),

        1/2 sum_obs (r_ui - r_hat_ui)^2 + reg/2 (sum_u n_u |p_u|^2 + sum_i n_i |q_i|^2)
        + reg_bias/2 (sum_u b_u^2 + sum_i b_i^2)

    (n_u, n_i: rating counts, so ``reg`` is per rating as in SGD and Surprise) by
    multiplicative updates: each epoch sets the user biases, then the item biases, to
    their exact minimisers (``biased=True`` only), then updates all user factors and all
    item factors:

        p_uf <- p_uf * sum_i q_if t+_ui / (sum_i q_if (p_u.q_i + t-_ui) + reg n_u p_uf)

    where t_ui = r_ui - mu - b_u - b_i is the target of the factors and t+ / t- its
    positive and negative parts (t- = 0 for non-negative ratings without biases, the
    classic update of Lee & Seung 2001, masked and regularised as in Luo et al. 2014 --
    see :mod:`mfrec.kernels.nmf` for the derivation). Factors start non-negative and
    every update multiplies them by a non-negative ratio, so they stay non-negative
    exactly. By default the item update sees the users' new values
    (``schedule="alternating"``, a block coordinate step); ``schedule="simultaneous"``
    updates both sides from the factors of the start of the epoch, as Luo et al. and
    Surprise's ``NMF`` do. The default was chosen on the search panel of
    ``docs/defaults.md`` (training data only; round r5-nmf, 50 epochs): mean ratio to
    the bias baseline 1.105 alternating vs 1.134 simultaneous at epoch 50 (worst set
    1.307 vs 1.298). Simultaneous is 0.1-0.6% better on four of the five sets, but
    converges slowly on the 1..10 scale (ratio 1.075 vs 1.233 there). Biases are solved
    exactly rather than by SGD steps.

    Parameters
    ----------
    n_factors : int, default 15
    n_epochs : int, default 50
    reg : float, default 0.1
        L2 regularisation of the factors, per rating.
    biased : bool, default True
        Add the global mean and user/item biases (as Surprise's ``biased`` option).
        Without them the non-negative factors must carry the whole rating, and a row
        with a few ratings cannot fall back on anything: the unbiased model (Surprise's
        default) was worse than the global mean on three of the evaluation panel's
        sets, and its search-panel mean ratio to the bias baseline was 1.087 against
        0.984 for the biased defaults (round r9-nmf, docs/defaults.md).
    reg_bias : float, default 10.0
        Regularisation of the biases (additive, as :class:`~mfrec.models.BiasBaseline`);
        only with ``biased=True``.
    init_low, init_high : float, default 0, 0.1
        Factors start uniform in [init_low, init_high). With biases the factors model a
        residual of mean zero, so they start small: Surprise's [0, 1) makes the initial
        product about ``n_factors / 4`` rating points, which the multiplicative updates
        of a rarely rated row never remove (round r9-nmf: worst search-panel ratio 1.060
        with [0, 1), 1.014 with [0, 0.1)). Surprise's NMF is ``NMF(biased=False,
        reg=0.06, init_high=1.0, schedule="simultaneous", patience=None)``.
    schedule : {"alternating", "simultaneous"}, default "alternating"
        Whether the item update of an epoch uses the user factors from after that
        epoch's user update, or from before it (as Surprise).
    random_state : None, int or numpy Generator
        Seeds the initial factors: same seed, same model, bit for bit.
    dtype : {"float32", "float64"}, default "float32"
    patience : int or None, default 3
        Early stopping (see :class:`~mfrec.models.FunkSVD`): on the validation data
        given to ``fit``, else on a held-out ``validation_fraction`` of the training
        ratings, then refitting on all of them for the best epoch count. None: run all
        ``n_epochs``. (The default since the search panel measured it better, mean and
        worst, than running every epoch: docs/defaults.md.)
    validation_fraction : float in [0, 1), default 0.05
        Without validation data and with ``patience`` set, hold out this seeded share
        of the training ratings, find the best epoch count on it, then refit on all the
        ratings for that many epochs (see :class:`~mfrec.models.BiasedMF`); 0: off
        (``patience`` then needs validation data).
    n_threads : int or None, default None
        Threads for the row updates (None: all cores). Does not change the result.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray, non-negative
    user_bias_, item_bias_ : ndarray or None
    history_ : list of dict
        Per epoch: ``train_loss`` (objective per rating) and ``train_rmse`` at the start
        of the epoch's factor updates (after its bias updates), ``val_rmse``, ``seconds``.
    """

    name = "nmf"
    _constraints: ClassVar[dict[str, Constraint]] = {
        "n_factors": Integer(1, 10_000),
        "n_epochs": Integer(1, 100_000),
        "reg": Real(0, None),
        "biased": Boolean(),
        "reg_bias": Real(0, None),
        "init_low": Real(0, None),
        "init_high": Real(0, None, open_low=True),
        "schedule": Options(("simultaneous", "alternating")),
        "random_state": RandomStateConstraint(),
        "dtype": Options(("float32", "float64")),
        "patience": Integer(1, None, none_ok=True),
        "validation_fraction": Real(0, 1, open_high=True),
        "n_threads": Integer(1, None, none_ok=True),
    }

    def __init__(
        self,
        n_factors: int = 15,
        n_epochs: int = 50,
        reg: float = 0.1,
        biased: bool = True,
        reg_bias: float = 10.0,
        init_low: float = 0.0,
        init_high: float = 0.1,
        schedule: str = "alternating",
        random_state: Any = None,
        dtype: str = "float32",
        patience: int | None = 3,
        n_threads: int | None = None,
        validation_fraction: float = 0.05,
    ) -> None:
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.reg = reg
        self.biased = biased
        self.reg_bias = reg_bias
        self.init_low = init_low
        self.init_high = init_high
        self.schedule = schedule
        self.random_state = random_state
        self.dtype = dtype
        self.patience = patience
        self.n_threads = n_threads
        self.validation_fraction = validation_fraction

    def _intercept(self) -> float:
        return self.global_mean_ if self.biased else 0.0

    def _divergence_hint(self) -> str:
        return "Try stronger regularisation (reg) or float64."

    def _solve_users(
        self, indptr: np.ndarray, item_index: np.ndarray, rating: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Fold-in: the user part of the objective with the items fixed is a
        regularised non-negative least-squares problem (convex), solved by the training
        updates themselves -- :data:`FOLD_IN_ITERATIONS` rounds of (bias update,
        multiplicative update) from the mean trained user vector -- so the folded-in
        factors are non-negative too."""
        from mfrec.kernels.nmf import bias_update_rows, nmf_update_rows

        n_rows = len(indptr) - 1
        dtype = self.user_factors_.dtype
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        item_index = np.ascontiguousarray(item_index, dtype=np.int32)
        rating = np.ascontiguousarray(rating, dtype=np.float64)
        start = self.user_factors_.mean(axis=0, dtype=np.float64)
        factors = np.tile(start, (n_rows, 1)).astype(dtype)
        bias = np.zeros(n_rows, dtype=dtype) if self.biased else np.zeros(0, dtype=dtype)
        item_bias = self.item_bias_ if self.biased else np.zeros(0, dtype=dtype)
        mu, sse = self._intercept(), np.zeros(n_rows)
        for _ in range(FOLD_IN_ITERATIONS):
            if self.biased:
                bias_update_rows(
                    indptr, item_index, rating, factors, self.item_factors_, bias, item_bias,
                    mu, float(self.reg_bias),
                )  # fmt: skip
            nmf_update_rows(
                indptr, item_index, rating, factors, self.item_factors_, bias, item_bias, mu,
                float(self.reg), EPS, sse,
            )  # fmt: skip
        return factors, (bias if self.biased else None)

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        from mfrec._threads import numba_threads
        from mfrec.kernels.nmf import bias_update_rows, nmf_update_rows

        if self.init_high <= self.init_low:
            raise ParameterError(
                f"NMF: init_high must be greater than init_low, got init_low={self.init_low}, "
                f"init_high={self.init_high}"
            )
        rng = check_random_state(self.random_state)
        dtype = np.dtype(self.dtype)
        k = self.n_factors
        self.user_factors_ = _uniform(rng, (train.n_users, k), self.init_low, self.init_high, dtype)
        self.item_factors_ = _uniform(rng, (train.n_items, k), self.init_low, self.init_high, dtype)
        P, Q = self.user_factors_, self.item_factors_
        if self.biased:
            self.user_bias_ = np.zeros(train.n_users, dtype=dtype)
            self.item_bias_ = np.zeros(train.n_items, dtype=dtype)
            bu, bi = self.user_bias_, self.item_bias_
        else:
            self.user_bias_ = self.item_bias_ = None
            bu = bi = np.zeros(0, dtype=dtype)
        mu = self._intercept()
        by_user, by_item = train.to_csr(), train.to_csc()
        user_counts = np.diff(by_user.indptr).astype(np.float64)
        item_counts = np.diff(by_item.indptr).astype(np.float64)
        sse_users, sse_items = np.zeros(train.n_users), np.zeros(train.n_items)
        n, reg, reg_bias = len(train), float(self.reg), float(self.reg_bias)
        simultaneous = self.schedule == "simultaneous"

        def epoch(_: int) -> dict[str, float]:
            if self.biased:
                bias_update_rows(
                    by_user.indptr, by_user.indices, by_user.data, P, Q, bu, bi, mu, reg_bias
                )
                bias_update_rows(
                    by_item.indptr, by_item.indices, by_item.data, Q, P, bi, bu, mu, reg_bias
                )
            penalty = reg * (user_counts @ _row_sq(P) + item_counts @ _row_sq(Q))
            if self.biased:
                penalty += reg_bias * (_sq(bu) + _sq(bi))
            users_before = P.copy() if simultaneous else P
            nmf_update_rows(
                by_user.indptr, by_user.indices, by_user.data, P, Q, bu, bi, mu, reg, EPS, sse_users
            )
            total = float(sse_users.sum())
            nmf_update_rows(
                by_item.indptr, by_item.indices, by_item.data, Q, users_before, bi, bu, mu, reg,
                EPS, sse_items,
            )  # fmt: skip
            return {
                "train_loss": 0.5 * (total + penalty) / n,
                "train_rmse": float(np.sqrt(total / n)),
            }

        # Overflow is not worth a RuntimeWarning: it ends as DivergenceError naming the epoch.
        threads = sweep_threads(self.n_threads, n, k)
        with numba_threads(threads), np.errstate(over="ignore", invalid="ignore"):
            # epoch_work: an epoch too small to split on a busy machine runs on one
            # thread there (EpochThreads) instead of stalling on a descheduled one.
            self._run_epochs(
                self.n_epochs, epoch, validation, callback, self.patience, epoch_work=n * k
            )


def _uniform(rng: np.random.Generator, shape: tuple[int, int], low: float, high: float, dtype):
    """Uniform [low, high) draws made directly in ``dtype``."""
    draw = rng.random(shape, dtype=dtype)
    draw *= dtype.type(high - low)
    draw += dtype.type(low)
    return draw


def _row_sq(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a, dtype=np.float64)


def _sq(a: np.ndarray) -> float:
    return float(np.einsum("i,i->", a, a, dtype=np.float64))
