"""Alternating least squares for explicit ratings: biases, weighted-lambda
regularisation (ALS-WR, Zhou et al. 2008; Spark MLlib's ``ALS``), exact row solves."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mfrec._params import Boolean, Constraint, Integer, Options, RandomStateConstraint, Real
from mfrec._random import check_random_state
from mfrec.data.ratings import Ratings
from mfrec.exceptions import DivergenceError
from mfrec.models.base import FactorModel, ValidationData
from mfrec.models.sgd import init_factors


def _csr_arrays(index: np.ndarray, other: np.ndarray, values: np.ndarray, n_rows: int):
    """(indptr, cols, values) of the ratings grouped by ``index`` (stable order)."""
    order = np.argsort(index, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(index, minlength=n_rows), out=indptr[1:])
    return indptr, np.ascontiguousarray(other[order]), np.ascontiguousarray(values[order])


def _row_sq(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a, dtype=np.float64)


class ALS(FactorModel):
    """Alternating least squares with biases and weighted-lambda regularisation.

    ``r_hat = mu + b_u + b_i + p_u . q_i`` (or ``p_u . q_i`` with ``biased=False``, Spark
    MLlib's explicit model). Each epoch solves every user exactly with the items fixed,
    then every item with the users fixed: a ridge regression per row, by Cholesky of its
    k x k (k + 1 with the bias) normal equations, rows in parallel. The regularisation of
    a row is scaled by its number of ratings -- ``reg * n_u`` -- as in ALS-WR (Zhou et al.
    2008) and Spark MLlib, so ``reg`` means the same as Spark's ``regParam``; on top of
    it, by default, a fixed amount per row (``reg_row``, ``reg_bias_row``) shrinks rows
    with few ratings more. See
    :mod:`mfrec.kernels.als` for the equations.

    Parameters
    ----------
    n_factors : int, default 10
        Rank (Spark's ``rank``).
    n_epochs : int, default 10
        Alternations, each solving all users then all items (Spark's ``maxIter``); 0:
        none, the bias baseline with ``baseline_fallback`` (the global mean without).
    reg : float, default 0.05
        Regularisation of the factors, multiplied by each row's rating count (Spark's
        ``regParam``, whose default is 0.1). Must be > 0: the row systems must be
        positive definite.
    reg_bias : float or None, default None
        Regularisation of the biases, also multiplied by the row's count (None: ``reg``).
    reg_row : float or None, default None
        Count-aware part: a fixed penalty per user and item row on the factors, added to
        ``reg * n_u`` (plain ridge, independent of the count), so rows with few ratings
        are shrunk more. None: 8 with ``biased=True`` (chosen on the search panel,
        docs/defaults.md), 0 without -- with no biases the factors carry the mean
        rating, and shrinking them towards 0 would pull predictions towards a rating of
        0. 0 is ALS-WR / Spark (``ALS(biased=False, reg=0.1, patience=None)`` is MLlib's
        explicit ALS).
    reg_bias_row : float, default 7
        The same for the biases (the pseudo-count of :class:`~mfrec.models.BiasBaseline`);
        0 is ALS-WR.
    biased : bool, default True
        Learn the global mean and user/item biases; False fits ``p_u . q_i`` alone.
    init_std : float or None, default None
        Item factors start as N(0, init_std^2) (users are solved first); biases at 0.
        None: ``1 / sqrt(n_factors)``, rows of unit expected length -- the scale of Spark's
        initial factors (unit vectors); starts much smaller than that converge to worse
        solutions within the usual 10-20 epochs.
    random_state : None, int or numpy Generator
        Seeds the initial item factors, the only randomness.
    dtype : {"float32", "float64"}, default "float32"
        Storage type of the factors (every solve runs in float64).
    patience : int or None, default 3
        Early stopping: with validation data, stop after this many epochs without a
        better validation RMSE and keep the best epoch's factors; without, find the best
        epoch count on a held-out slice and refit (``validation_fraction``). None: run
        all ``n_epochs``, as Spark does. On by default since the estimated bias baseline
        became epoch 0: better on the search panel in the mean and the worst case
        (docs/defaults.md, "ALS and epoch 0").
    validation_fraction : float in [0, 1), default 0.05
        Without validation data and with ``patience`` set, hold out this seeded share
        of the training ratings, find the best epoch count on it, then refit on all the
        ratings for that many epochs (see :class:`~mfrec.models.BiasedMF`); 0: off
        (``patience`` then needs validation data).
    n_threads : int or None, default None
        Threads to solve rows with (None: all cores, or one for a problem so small that
        starting threads would cost more than they save). Does not change the result.
    baseline_fallback : bool, default True
        With early stopping (``patience``), "epoch 0" is a candidate too: the bias
        baseline (:class:`~mfrec.models.BiasBaseline`'s biases, user factors at 0), kept
        when no epoch beats it on the validation data -- ``best_epoch_`` 0, and the refit
        on all the ratings runs 0 epochs (``n_epochs=0`` with this option is that
        model), as :class:`~mfrec.models.BiasedMF` does. Where an epoch beats it nothing
        changes, bit for bit. Only with ``biased=True``. Epoch 0's biases are the bias
        baseline's with its penalties estimated from the data (empirical Bayes,
        :func:`mfrec.models.baseline.empirical_bayes_regs`).

    Attributes
    ----------
    global_mean_ : float
    user_bias_, item_bias_ : ndarray or None (None when ``biased=False``)
    user_factors_, item_factors_ : ndarray
    history_ : list of dict
        Per epoch: ``train_loss`` (the regularised objective per rating), ``train_rmse``
        (of the model after the epoch), ``val_rmse``, ``seconds``.
    """

    name = "als"
    _params_before_they_existed: ClassVar[dict[str, Any]] = {"reg_row": 0.0, "reg_bias_row": 0.0}
    _constraints: ClassVar[dict[str, Constraint]] = {
        "n_factors": Integer(1, 10_000),
        "n_epochs": Integer(0, 100_000),
        "reg": Real(0, None, open_low=True),
        "reg_bias": Real(0, None, none_ok=True),
        "reg_row": Real(0, None, none_ok=True),
        "reg_bias_row": Real(0, None),
        "biased": Boolean(),
        "init_std": Real(0, None, open_low=True, none_ok=True),
        "random_state": RandomStateConstraint(),
        "dtype": Options(("float32", "float64")),
        "patience": Integer(1, None, none_ok=True),
        "validation_fraction": Real(0, 1, open_high=True),
        "n_threads": Integer(1, None, none_ok=True),
        "baseline_fallback": Boolean(),
    }

    def __init__(
        self,
        n_factors: int = 10,
        n_epochs: int = 10,
        reg: float = 0.05,
        reg_bias: float | None = None,
        biased: bool = True,
        init_std: float | None = None,
        random_state: Any = None,
        dtype: str = "float32",
        patience: int | None = 3,
        n_threads: int | None = None,
        reg_row: float | None = None,
        reg_bias_row: float = 7.0,
        validation_fraction: float = 0.05,
        baseline_fallback: bool = True,
    ) -> None:
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.reg = reg
        self.reg_bias = reg_bias
        self.biased = biased
        self.init_std = init_std
        self.random_state = random_state
        self.dtype = dtype
        self.patience = patience
        self.n_threads = n_threads
        self.validation_fraction = validation_fraction
        self.reg_row = reg_row
        self.reg_bias_row = reg_bias_row
        self.baseline_fallback = baseline_fallback

    def _fixed_row_penalty(self) -> tuple[float, float]:
        if not self.biased:
            return float(self.reg_row or 0.0), 0.0
        return (8.0 if self.reg_row is None else float(self.reg_row)), float(self.reg_bias_row)

    def _intercept(self) -> float:
        return self.global_mean_ if self.biased else 0.0

    def _divergence_hint(self) -> str:
        return f"Try stronger regularisation (reg={self.reg:g}; try reg={self.reg * 10:g})."

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        from mfrec._threads import numba_threads
        from mfrec.kernels.als import als_solve_rows, row_sse
        from mfrec.models.baseline import epoch_zero

        rng = check_random_state(self.random_state)
        dtype = np.dtype(self.dtype)
        n_users, n_items, k = train.n_users, train.n_items, self.n_factors
        use_bias = bool(self.biased)
        init_std = 1.0 / np.sqrt(k) if self.init_std is None else self.init_std
        self.item_factors_ = init_factors(rng, (n_items, k), init_std, dtype)
        self.user_factors_ = np.zeros((n_users, k), dtype=dtype)
        self.user_bias_ = np.zeros(n_users, dtype=dtype) if use_bias else None
        self.item_bias_ = np.zeros(n_items, dtype=dtype) if use_bias else None
        empty = np.zeros(0, dtype=dtype)
        offset = float(self.global_mean_) if use_bias else 0.0
        reg = float(self.reg)
        reg_bias = float(self.reg if self.reg_bias is None else self.reg_bias)
        fixed = self._fixed_row_penalty()

        values = train.rating.astype(np.float64)
        by_user = _csr_arrays(train.user_index, train.item_index, values, n_users)
        by_item = _csr_arrays(train.item_index, train.user_index, values, n_items)
        n_u = train.user_counts().astype(np.float64)
        n_i = train.item_counts().astype(np.float64)
        n = len(train)
        # Epoch 0 -- the bias baseline, user factors at 0 -- as a candidate of early
        # stopping (baseline_fallback; n_epochs=0 is that model).
        score_start, start_arrays = epoch_zero(self, train, dtype, validation)

        def solve(side, other_factors, other_bias, factors, bias) -> None:
            failed = als_solve_rows(
                *side, other_factors, other_bias, offset, factors, bias, reg, reg_bias,
                use_bias, *fixed,
            )  # fmt: skip
            if failed:
                raise DivergenceError(
                    f"ALS: {failed} row system(s) became singular or non-finite. "
                    f"{self._divergence_hint()}"
                )

        def epoch(_: int) -> dict[str, float]:
            bu = self.user_bias_ if use_bias else empty
            bi = self.item_bias_ if use_bias else empty
            solve(by_user, self.item_factors_, bi, self.user_factors_, bu)
            solve(by_item, self.user_factors_, bu, self.item_factors_, bi)
            sse = row_sse(
                *by_user, self.user_factors_, self.item_factors_, bu, bi, offset, use_bias
            )
            sq_u, sq_i = _row_sq(self.user_factors_), _row_sq(self.item_factors_)
            penalty = reg * (n_u @ sq_u + n_i @ sq_i) + fixed[0] * (sq_u.sum() + sq_i.sum())
            if use_bias:
                b_u, b_i = bu.astype(np.float64), bi.astype(np.float64)
                penalty += reg_bias * (n_u @ (b_u * b_u) + n_i @ (b_i * b_i))
                penalty += fixed[1] * (b_u @ b_u + b_i @ b_i)
            return {"train_loss": float((sse + penalty) / n), "train_rmse": float(np.sqrt(sse / n))}

        # A half-epoch costs about n_ratings x (n_factors + 1)^2 multiply-adds.
        with numba_threads(self.n_threads, work=n * (k + 1) ** 2):
            self._run_epochs(
                self.n_epochs, epoch, validation, callback, self.patience,
                score_start=score_start, start_arrays=start_arrays,
            )  # fmt: skip
