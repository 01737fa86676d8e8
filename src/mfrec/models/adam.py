"""The "collaborative filtering cost" model, mean-normalised, trained by Adam."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mfrec._params import Constraint, Integer, Options, RandomStateConstraint, Real
from mfrec._random import check_random_state
from mfrec.data.ratings import Ratings
from mfrec.models.base import FactorModel, ValidationData
from mfrec.models.gd import sweep_threads
from mfrec.models.sgd import init_factors


class AdamMF(FactorModel):
    """The course's collaborative-filtering cost, mean-normalised, trained by Adam.

    Item features x_i, user weights w_u and a per-user bias b_u fitted to
    mean-normalised ratings: ``r_hat_ui = m_i + w_u . x_i + b_u``.

    This is the collaborative-filtering cost of the classic machine-learning course
    (Ng; its notebook trains it with TensorFlow's Adam), with analytic gradients instead
    of automatic differentiation. With y_ui = r_ui - m_i (the normalised ratings),

        J = 1/2 sum_obs (w_u . x_i + b_u - y_ui)^2 + reg/2 (sum_i |x_i|^2 + sum_u |w_u|^2)

    over the observed ratings only (the bias is not regularised, as in the course), and

        dJ/dx_i = sum_u e_ui w_u + reg x_i,  dJ/dw_u = sum_i e_ui x_i + reg w_u,
        dJ/db_u = sum_i e_ui,               e_ui = w_u . x_i + b_u - y_ui.

    Adam (Kingma & Ba 2015) steps every parameter by
    ``lr * m_hat / (sqrt(v_hat) + eps)`` from bias-corrected running means of the
    gradient and its square. ``batch_size=None`` takes one full-batch step per epoch;
    an int shuffles the ratings each epoch (seeded) and takes one step per mini-batch,
    on ``1/2 sum_batch e^2 + (|batch| / n) reg/2 (...)``, whose sum over an epoch's
    batches is J.

    Mean normalisation: ``mean="item"`` (default) subtracts each item's mean rating,
    as the course does, so the factors only explain deviations from the item's mean and
    a user with no ratings is predicted each item's mean (the course's reason for the
    step) -- which is also mfrec's unknown-user policy, since the item means live in
    ``item_bias_`` (as m_i - mu). ``mean="global"`` subtracts the global mean of the
    observed ratings instead. (The course notebook takes ``np.mean`` of the zero-filled
    matrix, counting every missing rating as a 0; mfrec never does that.)

    The defaults were chosen on the search panel of ``docs/defaults.md`` (training data
    only, rounds r7-adam and r8-adam): lr 0.02 with reg 15 has the best mean ratio to
    the bias baseline (1.0174 at 100 epochs, 1.0187 at 200; reg 5 over-fits, 1.056;
    reg 30 and 60 under-fit, 1.034 and 1.036; lr 0.05 1.019), and 100 epochs beat 200
    on the mean and on the worst set. (They had been picked on the u1 test fold, with
    200 epochs; n_factors, 20, was not searched again.)

    Parameters
    ----------
    n_factors : int, default 20
    n_epochs : int, default 100
        Passes over the ratings (one Adam step each with ``batch_size=None``).
    lr : float, default 0.02
        Adam's step size.
    reg : float, default 15.0
        L2 regularisation of x and w (not scaled by rating counts, as in the course).
    batch_size : int or None, default None
        None: full batch. Else ratings per mini-batch.
    mean : {"item", "global"}, default "item"
        What the ratings are normalised by (see above).
    beta1, beta2 : float, default 0.9, 0.999
        Adam's decay rates of the first and second moment estimates.
    eps : float, default 1e-8
        Adam's epsilon.
    init_std : float, default 0.1
        x and w start as N(0, init_std^2); b at 0.
    random_state : None, int or numpy Generator
        Seeds the initial factors and the mini-batch order: same seed, same model.
    dtype : {"float32", "float64"}, default "float32"
        Storage type of x, w and b (gradients and Adam's moments are float64).
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
        Threads for full-batch gradients (None: all cores). Does not change the result.

    Attributes
    ----------
    user_factors_ : ndarray (n_users, n_factors)
        The user weights w.
    item_factors_ : ndarray (n_items, n_factors)
        The item features x.
    user_bias_ : ndarray
        The per-user bias b.
    item_bias_ : ndarray or None
        ``m_i - global_mean_`` with ``mean="item"`` (fixed, not learned); None with
        ``mean="global"``.
    history_ : list of dict
        Per epoch: ``train_loss`` (J per rating) and ``train_rmse`` -- of the full-batch
        gradient's point (before the step), or of the predictions made during the
        epoch's mini-batches (each before its step) -- ``val_rmse``, ``seconds``.
    """

    name = "adam-mf"
    _constraints: ClassVar[dict[str, Constraint]] = {
        "n_factors": Integer(1, 10_000),
        "n_epochs": Integer(1, 1_000_000),
        "lr": Real(0, 10, open_low=True),
        "reg": Real(0, None),
        "batch_size": Integer(1, None, none_ok=True),
        "mean": Options(("item", "global")),
        "beta1": Real(0, 1, open_high=True),
        "beta2": Real(0, 1, open_high=True),
        "eps": Real(0, None, open_low=True),
        "init_std": Real(0, None, open_low=True),
        "random_state": RandomStateConstraint(),
        "dtype": Options(("float32", "float64")),
        "patience": Integer(1, None, none_ok=True),
        "validation_fraction": Real(0, 1, open_high=True),
        "n_threads": Integer(1, None, none_ok=True),
    }

    def _bias_layout(self) -> tuple[bool, bool]:
        return True, self.mean == "item"

    def __init__(
        self,
        n_factors: int = 20,
        n_epochs: int = 100,
        lr: float = 0.02,
        reg: float = 15.0,
        batch_size: int | None = None,
        mean: str = "item",
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        init_std: float = 0.1,
        random_state: Any = None,
        dtype: str = "float32",
        patience: int | None = 3,
        n_threads: int | None = None,
        validation_fraction: float = 0.05,
    ) -> None:
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr = lr
        self.reg = reg
        self.batch_size = batch_size
        self.mean = mean
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.init_std = init_std
        self.random_state = random_state
        self.dtype = dtype
        self.patience = patience
        self.n_threads = n_threads
        self.validation_fraction = validation_fraction

    def _fold_in_penalty(self) -> tuple[np.ndarray, np.ndarray]:
        """Fold-in solves the user part of J: ridge ``reg`` on w_u (not scaled by the
        rating count), no penalty on b_u -- on targets r - m_i (the defaults' design)."""
        base = np.full(self.n_factors_ + 1, float(self.reg))
        base[-1] = 0.0
        return base, np.zeros_like(base)

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        from mfrec._threads import numba_threads

        rng = check_random_state(self.random_state)
        dtype = np.dtype(self.dtype)
        n_users, n_items, k = train.n_users, train.n_items, self.n_factors
        if self.mean == "item":
            item_mean = np.bincount(train.item_index, weights=train.rating, minlength=n_items)
            item_mean /= train.item_counts()
            self.item_bias_ = (item_mean - self.global_mean_).astype(dtype)
            # y = r - m_i with m_i exactly as the model adds it back (mu + item_bias_).
            offset = self.global_mean_ + self.item_bias_[train.item_index].astype(np.float64)
        else:
            self.item_bias_ = None
            offset = self.global_mean_
        normalised = train.rating.astype(np.float64) - offset
        self.user_factors_ = init_factors(rng, (n_users, k), self.init_std, dtype)
        self.item_factors_ = init_factors(rng, (n_items, k), self.init_std, dtype)
        self.user_bias_ = np.zeros(n_users, dtype=dtype)
        W, X, b = self.user_factors_, self.item_factors_, self.user_bias_
        params = (W, X, b)
        grads = tuple(np.zeros(p.shape) for p in params)
        adam = _Adam(params, self.lr, self.beta1, self.beta2, self.eps)
        n, reg = len(train), float(self.reg)

        def objective(sse: float) -> dict[str, float]:
            penalty = reg * (_sq(W) + _sq(X))
            return {"train_loss": 0.5 * (sse + penalty) / n, "train_rmse": float(np.sqrt(sse / n))}

        if self.batch_size is None or self.batch_size >= n:
            epoch = self._full_batch_epoch(train, normalised, params, grads, adam, objective)
        else:
            epoch = self._mini_batch_epoch(train, normalised, params, grads, adam, rng, objective)
        # Overflow is not worth a RuntimeWarning: it ends as DivergenceError naming the epoch.
        threads = sweep_threads(self.n_threads, n, k)
        with numba_threads(threads), np.errstate(over="ignore", invalid="ignore"):
            # epoch_work: an epoch too small to split on a busy machine runs on one
            # thread there (EpochThreads) instead of stalling on a descheduled one.
            self._run_epochs(
                self.n_epochs, epoch, validation, callback, self.patience, epoch_work=n * k
            )

    def _full_batch_epoch(self, train, normalised, params, grads, adam, objective):
        from mfrec.kernels.gd import masked_gradient

        W, X, b = params
        g_W, g_X, g_b = grads
        n_users, n_items = train.n_users, train.n_items
        # The normalised ratings in user-major (CSR) and item-major order.
        by_user = _csr(train.user_index, train.item_index, normalised, n_users, n_items)
        by_item = _csr(train.item_index, train.user_index, normalised, n_items, n_users)
        ones_u, ones_i = np.ones(n_users), np.ones(n_items)
        none, unused = np.zeros(0, dtype=b.dtype), np.zeros(0)
        sse_u, sse_i = np.zeros(n_users), np.zeros(n_items)
        reg = float(self.reg)

        def epoch(_: int) -> dict[str, float]:
            masked_gradient(
                by_user.indptr, by_user.indices, by_user.data, W, X, b, none, 0.0,
                reg, 0.0, ones_u, g_W, g_b, sse_u,
            )  # fmt: skip
            masked_gradient(
                by_item.indptr, by_item.indices, by_item.data, X, W, none, b, 0.0,
                reg, 0.0, ones_i, g_X, unused, sse_i,
            )  # fmt: skip
            record = objective(float(sse_u.sum()))
            adam.step(grads)
            return record

        return epoch

    def _mini_batch_epoch(self, train, normalised, params, grads, adam, rng, objective):
        from mfrec.kernels.gd import batch_gradient

        W, X, b = params
        g_W, g_X, g_b = grads
        users, items = train.user_index, train.item_index
        n, size, reg = len(train), int(self.batch_size), float(self.reg)
        none, unused = np.zeros(0, dtype=b.dtype), np.zeros(0)

        def epoch(_: int) -> dict[str, float]:
            order = rng.permutation(n).astype(np.int32)
            sse = 0.0
            for start in range(0, n, size):
                batch = order[start : start + size]
                for g in grads:
                    g.fill(0.0)
                sse += batch_gradient(
                    users, items, normalised, batch, W, X, b, none, 0.0, g_W, g_X, g_b, unused
                )
                share = reg * len(batch) / n
                np.add(g_W, share * W, out=g_W)
                np.add(g_X, share * X, out=g_X)
                adam.step(grads)
            return objective(sse)

        return epoch


class _Adam:
    """Adam's state for a fixed list of parameter arrays (updated in place)."""

    def __init__(self, params, lr: float, beta1: float, beta2: float, eps: float) -> None:
        self.params = params
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros(p.shape) for p in params]
        self.v = [np.zeros(p.shape) for p in params]
        self.t = 0

    def step(self, grads) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        # Bias corrections folded into the step size (Kingma & Ba 2015, section 2).
        step = self.lr * np.sqrt(1.0 - b2**self.t) / (1.0 - b1**self.t)
        eps_hat = self.eps * np.sqrt(1.0 - b2**self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m *= b1
            m += (1.0 - b1) * g
            v *= b2
            v += (1.0 - b2) * (g * g)
            p -= (step * m / (np.sqrt(v) + eps_hat)).astype(p.dtype, copy=False)


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int):
    import scipy.sparse as sp

    matrix = sp.csr_matrix((values, (rows, cols)), shape=(n_rows, n_cols))
    matrix.sort_indices()
    return matrix


def _sq(a: np.ndarray) -> float:
    # einsum, not vdot/BLAS: a mixed-dtype vdot is slow, and a threaded BLAS dot costs
    # more in thread start-up than it saves at these sizes.
    return float(np.einsum("ij,ij->", a, a, dtype=np.float64))
