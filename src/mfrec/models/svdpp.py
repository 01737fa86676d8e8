"""SVD++: biased matrix factorization plus the implicit feedback of *which* items each
user rated (Koren 2008), trained by SGD with the per-user implicit sum cached."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mfrec._params import Boolean, Constraint, Integer, Options, RandomStateConstraint, Real
from mfrec._random import check_random_state
from mfrec.data.ratings import Ratings
from mfrec.models.base import FactorModel, ValidationData
from mfrec.models.sgd import init_factors


def _row_sq(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a, dtype=np.float64)


class SVDpp(FactorModel):
    """SVD++: ``r_hat = mu + b_u + b_i + q_i . (p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j)``.

    ``N(u)`` is the set of items user ``u`` rated in training: the model learns, besides
    the usual factors, an "implicit" factor ``y_j`` per item, so that a user is also
    described by what they chose to rate (Koren 2008, section 4). Trained by SGD on the
    regularised squared error, with the same per-rating steps as Koren and Surprise's
    ``SVDpp`` -- but the per-user implicit sum is cached and updated exactly in O(k) per
    rating instead of being recomputed (see :mod:`mfrec.kernels.svdpp` for the
    equations), so an epoch costs about what plain biased MF costs.

    The defaults (AdaGrad steps, a small initial scale, early stopping on a held-out
    slice) were chosen on a panel of data sets (docs/defaults.md); Surprise's ``SVDpp``
    is ``SVDpp(optimizer="sgd", lr=0.007, reg=0.02, reg_row=0, reg_bias_row=0,
    init_std=0.1, n_epochs=20, patience=None, rating_unit=1)``. After ``fit``,
    ``user_factors_`` holds each user's effective factors ``p_u + |N(u)|^-1/2 sum
    y_j``, so scoring and ``recommend`` are those of a plain factor model.

    Parameters
    ----------
    n_factors : int, default 20
    n_epochs : int, default 100
        Most passes over the training ratings (early stopping usually ends sooner).
    lr : float, default 0.05
        SGD step size of every parameter unless overridden below (with AdaGrad, the
        initial one).
    reg : float, default 0.05
        L2 regularisation of every parameter unless overridden below, per rating.
    lr_bias, reg_bias : float or None, default None
        Step size / regularisation of the biases (None: ``lr`` / ``reg``).
    lr_implicit, reg_implicit : float or None, default None
        Step size / regularisation of the implicit factors ``y_j`` (None: ``lr`` / ``reg``).
    reg_row, reg_bias_row : float, default 2 and 5
        Count-aware regularisation of ``p_u``, ``q_i`` and the biases: a fixed penalty
        per row whatever its number of ratings, on top of the per-rating ``reg`` /
        ``reg_bias`` (see :class:`~mfrec.models.BiasedMF`); 0 and 0: per rating alone.
    init_std : float, default 0.01
        ``p_u``, ``q_i`` and ``y_j`` start as N(0, init_std^2); biases at 0.
    random_state : None, int or numpy Generator
        Seeds initialisation and the visiting order: same seed, same model, bit for bit.
    dtype : {"float32", "float64"}, default "float32"
        Storage type of the factors (the running sums are float64 either way).
    patience : int or None, default 3
        Early stopping: on the validation data given to ``fit`` (keeping the best
        epoch's parameters), else on a held-out ``validation_fraction`` of the training
        ratings, then refitting on all of them for the best epoch count (see
        :class:`~mfrec.models.BiasedMF`). None: run all ``n_epochs``.
    validation_fraction : float in [0, 1), default 0.05
        The held-out slice for early stopping without validation data (0: off).
    optimizer : {"sgd", "adagrad"}, default "adagrad"
        ``"sgd"``: fixed steps (Koren's and Surprise's rule). ``"adagrad"``: LIBMF's
        adaptive steps ``rate / sqrt(G)`` per factor row and per bias, and one adaptive
        rate per user for the implicit factors (see :mod:`mfrec.kernels.svdpp`); it
        wants larger rates (about 0.05-0.1).
    rating_unit : float or None, default None
        The unit of the hyperparameters, in rating points (see
        :class:`~mfrec.models.FunkSVD`): None, a quarter of the rating range; 1, the raw
        ratings. The implicit factors scale as the explicit ones.
    init_biases : {"zero", "baseline"}, default "zero"
        Where the biases start: at 0, or at the bias baseline's solution (see
        :class:`~mfrec.models.BiasedMF`).
    baseline_fallback : bool, default True
        Early stopping may keep "epoch 0", the bias baseline, when no epoch beats it on
        the held-out ratings (see :class:`~mfrec.models.BiasedMF`). On both panels of
        docs/defaults.md (r13) it changes one set each for svdpp: ``syn-rank0`` (to the
        baseline, better) and ``syn-sparse-30k`` (to the baseline, 0.05% worse).

    Attributes
    ----------
    global_mean_ : float
    user_bias_, item_bias_ : ndarray
    user_factors_ : ndarray (n_users, n_factors)
        Effective user factors ``p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j``.
    item_factors_ : ndarray (n_items, n_factors)
        ``q_i``.
    user_free_factors_ : ndarray (n_users, n_factors)
        ``p_u``, the part of each user's factors not explained by what they rated
        (derived on access: ``user_factors_`` minus the implicit sum of the user's
        training items, so it never goes stale after fold-in).
    implicit_factors_ : ndarray (n_items, n_factors)
        ``y_j``.
    history_ : list of dict
        Per epoch: ``train_loss`` (regularised objective per rating), ``train_rmse`` (of
        the predictions made during the pass), ``val_rmse``, ``seconds``.
    best_epoch_ : int
        The epochs kept; 0: "epoch 0" (see ``baseline_fallback``).
    start_val_rmse_ : float
        After early stopping with ``baseline_fallback`` or ``init_biases="baseline"``:
        the held-out RMSE of "epoch 0".

    Notes
    -----
    Training is serial (one thread): each user's step writes the implicit factors of all
    the items they rated, so users cannot be processed concurrently without changing the
    algorithm (see :mod:`mfrec.kernels.svdpp`). The result therefore never depends on
    the thread count. Scoring and ``recommend`` use all threads.
    """

    name = "svdpp"
    _biases = (True, True)
    _params_before_they_existed: ClassVar[dict[str, Any]] = {
        "reg_row": 0.0, "reg_bias_row": 0.0, "rating_unit": 1.0, "init_biases": "zero",
        "baseline_fallback": False,
    }  # fmt: skip
    _fitted_arrays: ClassVar[tuple[str, ...]] = (
        "user_factors_",
        "item_factors_",
        "user_bias_",
        "item_bias_",
        "implicit_factors_",
    )
    _constraints: ClassVar[dict[str, Constraint]] = {
        "n_factors": Integer(1, 10_000),
        "n_epochs": Integer(0, 100_000),
        "lr": Real(0, 1, open_low=True),
        "reg": Real(0, None),
        "lr_bias": Real(0, 1, open_low=True, none_ok=True),
        "reg_bias": Real(0, None, none_ok=True),
        "lr_implicit": Real(0, 1, open_low=True, none_ok=True),
        "reg_implicit": Real(0, None, none_ok=True),
        "reg_row": Real(0, None),
        "reg_bias_row": Real(0, None),
        "init_std": Real(0, None, open_low=True),
        "random_state": RandomStateConstraint(),
        "dtype": Options(("float32", "float64")),
        "patience": Integer(1, None, none_ok=True),
        "validation_fraction": Real(0, 1, open_high=True),
        "optimizer": Options(("sgd", "adagrad")),
        "rating_unit": Real(0, None, open_low=True, none_ok=True),
        "init_biases": Options(("zero", "baseline")),
        "baseline_fallback": Boolean(),
    }

    def __init__(
        self,
        n_factors: int = 20,
        n_epochs: int = 100,
        lr: float = 0.05,
        reg: float = 0.05,
        lr_bias: float | None = None,
        reg_bias: float | None = None,
        lr_implicit: float | None = None,
        reg_implicit: float | None = None,
        init_std: float = 0.01,
        random_state: Any = None,
        dtype: str = "float32",
        patience: int | None = 3,
        optimizer: str = "adagrad",
        validation_fraction: float = 0.05,
        reg_row: float = 2.0,
        reg_bias_row: float = 5.0,
        rating_unit: float | None = None,
        init_biases: str = "zero",
        baseline_fallback: bool = True,
    ) -> None:
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr = lr
        self.reg = reg
        self.lr_bias = lr_bias
        self.reg_bias = reg_bias
        self.lr_implicit = lr_implicit
        self.reg_implicit = reg_implicit
        self.init_std = init_std
        self.random_state = random_state
        self.dtype = dtype
        self.patience = patience
        self.optimizer = optimizer
        self.validation_fraction = validation_fraction
        self.reg_row = reg_row
        self.reg_bias_row = reg_bias_row
        self.rating_unit = rating_unit
        self.init_biases = init_biases
        self.baseline_fallback = baseline_fallback

    def _rates(self) -> tuple[float, float, float, float, float, float]:
        """(lr_bias, reg_bias, lr, reg, lr_implicit, reg_implicit) with None resolved."""

        def pick(value: float | None, default: float) -> float:
            return float(default if value is None else value)

        return (
            pick(self.lr_bias, self.lr),
            pick(self.reg_bias, self.reg),
            float(self.lr),
            float(self.reg),
            pick(self.lr_implicit, self.lr),
            pick(self.reg_implicit, self.reg),
        )

    def _factor_reg_unit(self) -> float:
        from mfrec.models.sgd import resolve_rating_unit

        return resolve_rating_unit(self.rating_unit, self.rating_scale_)

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        from mfrec._threads import threads_for_work
        from mfrec.kernels.svdpp import effective_user_factors, shuffle_epoch, svdpp_epoch
        from mfrec.models.baseline import epoch_zero
        from mfrec.models.sgd import count_aware_penalty, unit_steps

        rng = check_random_state(self.random_state)
        dtype = np.dtype(self.dtype)
        n_users, n_items, k = train.n_users, train.n_items, self.n_factors
        adaptive = self.optimizer == "adagrad"
        # The hyperparameters are in units of a 1..5 scale (rating_unit; see
        # mfrec.models.sgd.UnitSteps): p, q and y scale alike.
        unit = unit_steps(self._factor_reg_unit(), adaptive)
        init_std = self.init_std * unit.init
        # Surprise's draw order: p, q, y.
        free = init_factors(rng, (n_users, k), init_std, dtype)  # p_u
        self.item_factors_ = init_factors(rng, (n_items, k), init_std, dtype)
        self.implicit_factors_ = init_factors(rng, (n_items, k), init_std, dtype)
        self.user_bias_ = np.zeros(n_users, dtype=dtype)
        self.item_bias_ = np.zeros(n_items, dtype=dtype)
        score_start, start_arrays = epoch_zero(self, train, dtype, validation)
        self.user_factors_ = np.empty((n_users, k), dtype=dtype)

        # The ratings sorted by user (stable: each user's items in input order).
        by_user = np.argsort(train.user_index, kind="stable")
        items = np.ascontiguousarray(train.item_index[by_user])
        values = np.ascontiguousarray(train.rating[by_user], dtype=np.float64)
        user_counts = train.user_counts()
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(user_counts, out=indptr[1:])
        user_order = np.arange(n_users, dtype=np.int32)
        order = np.arange(len(train), dtype=np.int64)
        lr_bias, reg_bias, lr, reg, lr_y, reg_y = self._rates()
        lr_bias, lr, lr_y = lr_bias * unit.lr_bias, lr * unit.lr_factors, lr_y * unit.lr_factors
        reg, reg_y = reg * unit.reg_factors, reg_y * unit.reg_factors
        rates = (lr_bias, reg_bias, lr, reg, lr_y, reg_y)
        mu = float(self.global_mean_)
        # AdaGrad accumulators, starting at 1 as in LIBMF on a 1..5 scale (empty for
        # plain SGD).
        acc_users = np.empty((n_users if adaptive else 0, 2))
        acc_items = np.empty((n_items if adaptive else 0, 2))
        for acc in (acc_users, acc_items):
            acc[:, 0], acc[:, 1] = unit.acc_factors, unit.acc_bias
        acc_implicit = np.full(n_users if adaptive else 0, unit.acc_factors)

        # Penalty weights: a parameter is regularised once per rating it takes part in;
        # y_j once per rating of every user who rated j.
        n_u = user_counts.astype(np.float64)
        n_i = train.item_counts().astype(np.float64)
        w_y = np.bincount(items, weights=n_u[train.user_index[by_user]], minlength=n_items)
        reg_row, reg_bias_row = float(self.reg_row) * unit.reg_factors, float(self.reg_bias_row)
        extra_users = count_aware_penalty(n_u, reg_row, reg_bias_row, np.float64)
        extra_items = count_aware_penalty(n_i, reg_row, reg_bias_row, np.float64)
        n = len(train)

        def refresh_user_factors() -> None:
            # A one-off region of n x k: split over threads only when that pays on the
            # machine as it is (the epoch itself is serial, see the Notes above).
            with threads_for_work(n * k):
                effective_user_factors(
                    indptr, items, free, self.implicit_factors_, self.user_factors_
                )

        def epoch(e: int) -> dict[str, float]:
            shuffle_epoch(indptr, user_order, order, int(rng.integers(0, 2**63 - 1)))
            sse = svdpp_epoch(
                indptr, items, values, user_order, order,
                free, self.item_factors_, self.implicit_factors_,
                self.user_bias_, self.item_bias_, mu, *rates,
                acc_users, acc_items, acc_implicit, adaptive, extra_users, extra_items,
            )  # fmt: skip
            # Scoring uses the effective factors: refresh them whenever the model can be
            # looked at (validation, a callback) and after the last epoch.
            if validation is not None or callback is not None or e == self.n_epochs:
                refresh_user_factors()
            bu, bi = self.user_bias_.astype(np.float64), self.item_bias_.astype(np.float64)
            penalty = (
                reg_bias * (n_u @ (bu * bu) + n_i @ (bi * bi))
                + reg * (n_u @ _row_sq(free) + n_i @ _row_sq(self.item_factors_))
                + reg_y * (w_y @ _row_sq(self.implicit_factors_))
                + reg_bias_row * (bu @ bu + bi @ bi)
                + reg_row * (_row_sq(free).sum() + _row_sq(self.item_factors_).sum())
            )
            return {"train_loss": float((sse + penalty) / n), "train_rmse": float(np.sqrt(sse / n))}

        refresh_user_factors()
        # The epoch is serial; its parallel parts (the implicit sums, scoring) are n x k.
        self._run_epochs(
            self.n_epochs,
            epoch,
            validation,
            callback,
            self.patience,
            epoch_work=n * k,
            score_start=score_start,
            start_arrays=start_arrays,
        )

    # -- derived state and fold-in ----------------------------------------------------
    def _implicit_sums(self, indptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        """z_u = |N(u)|^-1/2 sum_{j in N(u)} y_j for users given as CSR rows of items."""
        from mfrec._threads import threads_for_work
        from mfrec.kernels.svdpp import effective_user_factors

        n_rows = len(indptr) - 1
        zeros = np.zeros((n_rows, self.n_factors_), dtype=self.implicit_factors_.dtype)
        out = np.empty_like(zeros)
        with threads_for_work(len(items) * self.n_factors_):
            effective_user_factors(
                np.ascontiguousarray(indptr, dtype=np.int64),
                np.ascontiguousarray(items, dtype=np.int32),
                zeros,
                self.implicit_factors_,
                out,
            )
        return out

    @property
    def user_free_factors_(self) -> np.ndarray:
        seen = self._seen
        return self.user_factors_ - self._implicit_sums(seen.indptr, seen.indices)

    def _check_fold_in(self) -> None:
        """The implicit factors are item-side: fold-in keeps them fixed like q_i."""

    def _solve_users(
        self, indptr: np.ndarray, item_index: np.ndarray, rating: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """SVD++ fold-in: with the items' q, y and biases fixed, a user's implicit sum
        z_u follows from what they rated, and (p_u, b_u) is the ridge solution of
        r - mu - b_i - q_i.z_u on (q_i, 1) with SVD++'s per-rating penalties (reg,
        reg_bias). Returns the effective factors p_u + z_u used for scoring."""
        z = self._implicit_sums(indptr, item_index)
        rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        q = self.item_factors_[item_index].astype(np.float64)
        adjusted = np.asarray(rating, dtype=np.float64) - np.einsum("ij,ij->i", q, z[rows])
        free, bias = super()._solve_users(indptr, item_index, adjusted)
        return (free + z).astype(self.user_factors_.dtype), bias
