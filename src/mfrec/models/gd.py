"""Full-batch gradient descent on the masked, regularised squared error."""

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
from mfrec.models.base import FactorModel, ValidationData
from mfrec.models.sgd import init_factors

#: Below this much work per sweep (ratings x factors), the row-parallel kernels run on
#: one thread: opening a parallel region costs more than it saves on small data (and
#: far more on a busy machine). The result does not depend on the thread count.
PARALLEL_MIN_WORK = 1_000_000


def sweep_threads(n_threads: int | None, n_ratings: int, n_factors: int) -> int:
    """The thread count for row-parallel sweeps over ``n_ratings`` ratings."""
    from mfrec._threads import resolve_threads

    work = n_ratings * max(n_factors, 1)
    return 1 if work < PARALLEL_MIN_WORK else resolve_threads(n_threads, work)


class GradientDescentMF(FactorModel):
    """Biased matrix factorization trained by full-batch gradient descent.

    ``r_hat = mu + b_u + b_i + p_u . q_i``, every parameter stepped at once from the
    exact gradient over all observed ratings (with optional heavy-ball momentum).

    The objective is BiasedMF's per-rating objective summed over the observed ratings
    (the missing ones are masked out, never zero-filled):

        L = sum_obs [ 1/2 e_ui^2 + reg/2 (|p_u|^2 + |q_i|^2) + reg_bias/2 (b_u^2 + b_i^2) ]

    with e_ui = r_hat_ui - r_ui, whose gradients are  dL/dp_u = sum_i e_ui q_i +
    reg n_u p_u  (n_u: the user's rating count) and likewise for q_i, b_u, b_i. Each
    epoch computes the exact gradient at the current point over every observed rating
    (two parallel sweeps, by user and by item; see :mod:`mfrec.kernels.gd`), then steps
    every parameter at once:

        v <- momentum v - lr D g,    theta <- theta + v

    With ``row_scaling=True`` (default) D divides each user's (item's) gradient by its
    rating count, a diagonal preconditioner: the step for p_u becomes the *mean* over
    its ratings of the per-rating SGD gradient, so ``lr`` means the same on any dataset.
    With ``row_scaling=False`` this is plain gradient descent on L, whose largest
    stable ``lr`` shrinks with the largest rating count (on MovieLens ~100x below the
    scaled one). Near a minimum, heavy-ball descent is stable while
    lr x (largest curvature) < 2 (1 + momentum), the curvature of a user's block being
    about |q|^2 + reg (scaled) or n_u (|q|^2 + reg) (plain). Beyond that the
    parameters blow up, and training stops with
    :class:`~mfrec.exceptions.DivergenceError` naming the epoch.

    The defaults were chosen on the search panel of ``docs/defaults.md`` (training data
    only, round r6-gd): 100 factors with reg 0.12 has the best mean ratio to the bias
    baseline at every epoch count (0.9887 at 100 epochs; 50 factors 0.9896, reg 0.18
    0.9997), and the curves are flat from about epoch 90, so 100 epochs. (They had been
    picked on the u1 test fold; 50 factors and 150 epochs.)

    Parameters
    ----------
    n_factors : int, default 100
    n_epochs : int, default 100
    lr : float, default 0.1
        Step size (0 < lr <= 100).
    momentum : float, default 0.9
        Heavy-ball momentum in [0, 1); 0 is plain gradient descent.
    reg : float, default 0.12
        L2 regularisation of the factors, per rating. Full-batch descent runs to the
        optimum of L, so it needs more regularisation than 20 epochs of SGD do.
    reg_bias : float, default 0.05
        L2 regularisation of the biases, per rating (``biased=True`` only).
    biased : bool, default True
        Learn the global-mean offset and the user and item biases; False gives
        ``r_hat = p_u . q_i`` (as :class:`~mfrec.models.FunkSVD`).
    row_scaling : bool, default True
        Divide each row's gradient by its rating count (see above).
    init_std : float, default 0.1
        Factors start as N(0, init_std^2); biases at 0.
    random_state : None, int or numpy Generator
        Seeds the initial factors (the only randomness): same seed, same model.
    dtype : {"float32", "float64"}, default "float32"
        Storage type of the parameters (gradients are accumulated in float64).
    patience : int or None, default None
        Early stopping on validation RMSE (see :class:`~mfrec.models.FunkSVD`).
    validation_fraction : float in [0, 1), default 0.05
        Without validation data and with ``patience`` set, hold out this seeded share
        of the training ratings, find the best epoch count on it, then refit on all the
        ratings for that many epochs (see :class:`~mfrec.models.BiasedMF`); 0: off
        (``patience`` then needs validation data).
    n_threads : int or None, default None
        Threads for the gradient sweeps (None: all cores). Does not change the result.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray
    user_bias_, item_bias_ : ndarray or None
    history_ : list of dict
        Per epoch: ``train_loss`` (L per rating) and ``train_rmse`` at the point where
        the epoch's gradient was taken (before its step), ``grad_norm`` (Euclidean norm
        of the unscaled gradient of L per rating), ``val_rmse``, ``seconds``.
    """

    name = "gd-mf"
    _constraints: ClassVar[dict[str, Constraint]] = {
        "n_factors": Integer(1, 10_000),
        "n_epochs": Integer(1, 1_000_000),
        "lr": Real(0, 100, open_low=True),
        "momentum": Real(0, 1, open_high=True),
        "reg": Real(0, None),
        "reg_bias": Real(0, None),
        "biased": Boolean(),
        "row_scaling": Boolean(),
        "init_std": Real(0, None, open_low=True),
        "random_state": RandomStateConstraint(),
        "dtype": Options(("float32", "float64")),
        "patience": Integer(1, None, none_ok=True),
        "validation_fraction": Real(0, 1, open_high=True),
        "n_threads": Integer(1, None, none_ok=True),
    }

    def __init__(
        self,
        n_factors: int = 100,
        n_epochs: int = 100,
        lr: float = 0.1,
        momentum: float = 0.9,
        reg: float = 0.12,
        reg_bias: float = 0.05,
        biased: bool = True,
        row_scaling: bool = True,
        init_std: float = 0.1,
        random_state: Any = None,
        dtype: str = "float32",
        patience: int | None = None,
        n_threads: int | None = None,
        validation_fraction: float = 0.05,
    ) -> None:
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr = lr
        self.momentum = momentum
        self.reg = reg
        self.reg_bias = reg_bias
        self.biased = biased
        self.row_scaling = row_scaling
        self.init_std = init_std
        self.random_state = random_state
        self.dtype = dtype
        self.patience = patience
        self.n_threads = n_threads
        self.validation_fraction = validation_fraction

    def _intercept(self) -> float:
        return self.global_mean_ if self.biased else 0.0

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        from mfrec._threads import numba_threads
        from mfrec.kernels.gd import masked_gradient

        rng = check_random_state(self.random_state)
        dtype = np.dtype(self.dtype)
        n_users, n_items, k = train.n_users, train.n_items, self.n_factors
        self.user_factors_ = init_factors(rng, (n_users, k), self.init_std, dtype)
        self.item_factors_ = init_factors(rng, (n_items, k), self.init_std, dtype)
        biased = self.biased
        self.user_bias_ = np.zeros(n_users, dtype=dtype) if biased else None
        self.item_bias_ = np.zeros(n_items, dtype=dtype) if biased else None
        none = np.zeros(0, dtype=dtype)
        params = [self.user_factors_, self.item_factors_]
        if biased:
            params += [self.user_bias_, self.item_bias_]
        P, Q = self.user_factors_, self.item_factors_
        bu = self.user_bias_ if biased else none
        bi = self.item_bias_ if biased else none
        grads = [np.zeros(p.shape) for p in params]
        if not biased:
            grads += [np.zeros(0), np.zeros(0)]
        g_P, g_Q, g_bu, g_bi = grads
        velocity = [np.zeros(p.shape) for p in params]
        by_user, by_item = train.to_csr(), train.to_csc()
        user_counts = np.diff(by_user.indptr).astype(np.float64)
        item_counts = np.diff(by_item.indptr).astype(np.float64)
        scale_rows = [1.0 / user_counts, 1.0 / item_counts] * 2 if self.row_scaling else None
        sse_u, sse_i = np.zeros(n_users), np.zeros(n_items)
        mu = self._intercept()
        n = len(train)
        lr, momentum = float(self.lr), float(self.momentum)
        reg, reg_bias = float(self.reg), float(self.reg_bias)

        def epoch(_: int) -> dict[str, float]:
            masked_gradient(
                by_user.indptr, by_user.indices, by_user.data, P, Q, bu, bi, mu,
                reg, reg_bias, user_counts, g_P, g_bu, sse_u,
            )  # fmt: skip
            masked_gradient(
                by_item.indptr, by_item.indices, by_item.data, Q, P, bi, bu, mu,
                reg, reg_bias, item_counts, g_Q, g_bi, sse_i,
            )  # fmt: skip
            sse = float(sse_u.sum())
            penalty = reg * (user_counts @ _row_sq(P) + item_counts @ _row_sq(Q))
            if biased:
                penalty += reg_bias * (user_counts @ (bu * bu) + item_counts @ (bi * bi))
            grad_sq = sum(float(np.einsum("i,i->", g.ravel(), g.ravel())) for g in grads)
            for j, (param, grad, vel) in enumerate(zip(params, grads, velocity, strict=False)):
                step = grad if scale_rows is None else _scale(grad, scale_rows[j])
                vel *= momentum
                vel -= lr * step
                param += vel.astype(param.dtype, copy=False)
            return {
                "train_loss": 0.5 * (sse + penalty) / n,
                "train_rmse": float(np.sqrt(sse / n)),
                "grad_norm": float(np.sqrt(grad_sq)) / n,
            }

        # Overflow is not worth a RuntimeWarning: it ends as DivergenceError naming the epoch.
        threads = sweep_threads(self.n_threads, n, k)
        with numba_threads(threads), np.errstate(over="ignore", invalid="ignore"):
            # epoch_work: an epoch too small to split on a busy machine runs on one
            # thread there (EpochThreads) instead of stalling on a descheduled one.
            self._run_epochs(
                self.n_epochs, epoch, validation, callback, self.patience, epoch_work=n * k
            )


def _scale(grad: np.ndarray, row_scale: np.ndarray) -> np.ndarray:
    return grad * (row_scale[:, None] if grad.ndim == 2 else row_scale)


def _row_sq(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a, dtype=np.float64)
