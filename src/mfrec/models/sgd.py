"""SGD matrix factorization: Funk SVD (no biases) and biased MF (Koren et al. 2009)."""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import numpy as np

from mfrec._params import Boolean, Constraint, Integer, Options, RandomStateConstraint, Real
from mfrec._random import check_random_state
from mfrec.data.ratings import Ratings
from mfrec.models.base import FactorModel, ValidationData
from mfrec.models.baseline import epoch_zero

_SGD_CONSTRAINTS = {
    "n_factors": Integer(1, 10_000),
    "n_epochs": Integer(0, 100_000),
    "lr": Real(0, 1, open_low=True),
    "reg": Real(0, None),
    "init_std": Real(0, None, open_low=True),
    "random_state": RandomStateConstraint(),
    "dtype": Options(("float32", "float64")),
    "patience": Integer(1, None, none_ok=True),
    "validation_fraction": Real(0, 1, open_high=True),
    "n_strata": Integer(1, 256),
    "n_threads": Integer(1, None, none_ok=True),
    "optimizer": Options(("sgd", "adagrad")),
    "rating_unit": Real(0, None, open_low=True, none_ok=True),
}

#: The rating range the defaults are expressed in: 1..5, a range of 4 rating points.
REFERENCE_RANGE = 4.0


def resolve_rating_unit(rating_unit: float | None, scale: tuple[float, float]) -> float:
    """The unit ``c`` of an SGD model's hyperparameters on data of rating range ``scale``:
    ``rating_unit`` if given, else a quarter of the range (1 on a 1..5 scale, 1.125 on
    0.5..5, 2.25 on 1..10)."""
    if rating_unit is not None:
        return float(rating_unit)
    width = float(scale[1]) - float(scale[0])
    return width / REFERENCE_RANGE if width > 0 else 1.0


class UnitSteps(NamedTuple):
    """What training on ratings divided by ``c`` amounts to in the ratings' own units.

    Fitting ``r / c`` and mapping back (``p = sqrt(c) p'``, ``b = c b'``, ``mu = c mu'``)
    is the same as fitting ``r`` with the factors' L2 (per rating and per row) times
    ``c``, the bias L2 unchanged, the initial factor scale times ``sqrt(c)`` and, per
    rule: plain SGD, the factor step ``/ c`` and the bias step unchanged; AdaGrad, the
    factor step ``x sqrt(c)`` with its accumulators starting at ``c^3`` (not 1) and the
    bias step ``x c`` with its accumulators starting at ``c^2`` -- exactly, step by step
    (tests/models/test_sgd.py checks it against a fit of the rescaled ratings)."""

    lr_factors: float  # multiplies lr (and lr_implicit)
    lr_bias: float  # multiplies the bias step
    reg_factors: float  # multiplies reg, reg_row (and reg_implicit)
    init: float  # multiplies init_std
    acc_factors: float  # initial factor accumulator (AdaGrad)
    acc_bias: float  # initial bias accumulator (AdaGrad)


def unit_steps(c: float, adaptive: bool) -> UnitSteps:
    if adaptive:
        return UnitSteps(float(np.sqrt(c)), c, c, float(np.sqrt(c)), c**3, c**2)
    return UnitSteps(1.0 / c, 1.0, c, float(np.sqrt(c)), 1.0, 1.0)


class _SGDFactorModel(FactorModel):
    """Shared SGD training of FunkSVD and BiasedMF (they differ only in biases)."""

    _use_bias: ClassVar[bool] = True

    def _bias_settings(self) -> tuple[float, float]:
        return self.lr, self.reg

    def _init_offset(self) -> float:
        """A constant added to every initial factor entry (FunkSVD's ``init_mean``)."""
        return 0.0

    def _factor_reg_unit(self) -> float:
        return resolve_rating_unit(self.rating_unit, self.rating_scale_)

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        from mfrec._threads import numba_threads, threads_for_work
        from mfrec.kernels.sgd import sgd_epoch_grouped
        from mfrec.models.gd import sweep_threads

        rng = check_random_state(self.random_state)
        dtype = np.dtype(self.dtype)
        cast = dtype.type
        n_users, n_items, k = train.n_users, train.n_items, self.n_factors
        adaptive = self.optimizer == "adagrad"
        unit = unit_steps(self._factor_reg_unit(), adaptive)
        init_std = self.init_std * unit.init
        self.user_factors_ = init_factors(rng, (n_users, k), init_std, dtype)
        self.item_factors_ = init_factors(rng, (n_items, k), init_std, dtype)
        offset = self._init_offset()
        if offset:
            self.user_factors_ += dtype.type(offset)
            self.item_factors_ += dtype.type(offset)
        use_bias = self._use_bias
        self.user_bias_ = np.zeros(n_users, dtype=dtype) if use_bias else None
        self.item_bias_ = np.zeros(n_items, dtype=dtype) if use_bias else None
        score_start, start_arrays = epoch_zero(self, train, dtype, validation)
        bu = self.user_bias_ if use_bias else np.zeros(0, dtype=dtype)
        bi = self.item_bias_ if use_bias else np.zeros(0, dtype=dtype)
        mu = cast(self.global_mean_ if use_bias else 0.0)
        lr_bias, reg_bias = self._bias_settings()
        n_blocks = self.n_strata**2
        user_counts = train.user_counts().astype(np.float64)
        item_counts = train.item_counts().astype(np.float64)
        n = len(train)
        # The hyperparameters are in units of a 1..5 scale (rating_unit; UnitSteps).
        reg = self.reg * unit.reg_factors
        lr_bias *= unit.lr_bias
        steps = (cast(self.lr * unit.lr_factors), cast(reg), cast(lr_bias), cast(reg_bias))
        reg_row, reg_bias_row = self._fixed_row_penalty()
        reg_row *= unit.reg_factors
        extra_users = count_aware_penalty(user_counts, reg_row, reg_bias_row, dtype)
        extra_items = count_aware_penalty(item_counts, reg_row, reg_bias_row, dtype)
        # Step-size accumulators (factor, bias) per row, starting at 1 as in LIBMF (on a
        # 1..5 scale; UnitSteps).
        n_acc = (n_users, n_items) if adaptive else (0, 0)
        acc_users = np.empty((n_acc[0], 2), dtype=dtype)
        acc_items = np.empty((n_acc[1], 2), dtype=dtype)
        for acc in (acc_users, acc_items):
            acc[:, 0], acc[:, 1] = unit.acc_factors, unit.acc_bias

        order: TrainingOrder | None = None  # set with the layout

        def in_input_order(rows_in_training_order: np.ndarray, rows: str) -> np.ndarray:
            if order is None:
                return rows_in_training_order
            return order.to_input(rows_in_training_order, rows)

        def epoch(_: int) -> dict[str, float]:
            seeds = rng.integers(0, 2**63 - 1, size=n_blocks, dtype=np.int64)
            sse = sgd_epoch_grouped(
                *layout, self.n_strata, seeds, self.user_factors_, self.item_factors_,
                bu, bi, mu, *steps, use_bias, acc_users, acc_items, adaptive,
                extra_users, extra_items,
            )  # fmt: skip
            # The objective summed in the input's row order (the same bits either way).
            sq_users = in_input_order(_row_sq(self.user_factors_), "users")
            sq_items = in_input_order(_row_sq(self.item_factors_), "items")
            penalty = reg * (user_counts @ sq_users + item_counts @ sq_items)
            penalty += reg_row * (sq_users.sum(dtype=np.float64) + sq_items.sum(dtype=np.float64))
            if use_bias:
                bu_in, bi_in = in_input_order(bu, "users"), in_input_order(bi, "items")
                penalty += reg_bias * (
                    user_counts @ (bu_in * bu_in) + item_counts @ (bi_in * bi_in)
                )
                penalty += reg_bias_row * (bu_in @ bu_in + bi_in @ bi_in)
            return {"train_loss": float((sse + penalty) / n), "train_rmse": float(np.sqrt(sse / n))}

        # Tiny data on a busy machine: waking a thread pool every epoch costs far more
        # than the epoch (5,000 epochs of a 5 x 4 matrix: 45 s on two threads at load 13,
        # 1 s on one). The result does not depend on the thread count. Beyond that, a
        # parallel region is one epoch (no barrier between its sub-epochs): n ratings
        # of k factors. The layout is built on the same threads (n_threads=1: one).
        small = self.n_strata == 1 or sweep_threads(self.n_threads, n, k) == 1
        with numba_threads(1 if small else self.n_threads, work=n * k):
            with threads_for_work(n):  # the layout's scatter: a one-off region of n
                layout, order = strata_layout(train, self.n_strata, rng, dtype)
            # Train in the layout's row order (TrainingOrder): every array indexed by
            # user or item follows it until the epochs are done.
            if order is not None:
                bu, bi, acc_users, acc_items, extra_users, extra_items = (
                    order.to_training(a, rows)
                    for a, rows in zip(
                        (bu, bi, acc_users, acc_items, extra_users, extra_items),
                        ("users", "items") * 3,
                        strict=True,
                    )
                )
                if start_arrays is not None:
                    start_arrays = {
                        key: order.to_training(value, "users" if key == "user_bias_" else "items")
                        for key, value in start_arrays.items()
                    }
                validation = None if validation is None else order.validation(validation)
                self._enter_training_order(order, bu, bi)
            try:
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
            finally:
                if order is not None:
                    self._leave_training_order(order)

    def _enter_training_order(self, order: TrainingOrder, bu: np.ndarray, bi: np.ndarray) -> None:
        """Put the learned arrays in ``order`` (the biases already are: ``bu``, ``bi``).
        Until :meth:`_leave_training_order`, public methods refuse (the ids would not
        match the rows)."""
        self.user_factors_ = order.to_training(self.user_factors_, "users")
        self.item_factors_ = order.to_training(self.item_factors_, "items")
        if self.user_bias_ is not None:
            self.user_bias_, self.item_bias_ = bu, bi
        self._training_order = order

    def _leave_training_order(self, order: TrainingOrder) -> None:
        for key, rows in (
            ("user_factors_", "users"), ("item_factors_", "items"),
            ("user_bias_", "users"), ("item_bias_", "items"),
        ):  # fmt: skip
            value = getattr(self, key, None)
            if value is not None:
                setattr(self, key, order.to_input(value, rows))
        del self._training_order


class GroupedLayout(NamedTuple):
    """Training ratings laid out for :func:`mfrec.kernels.sgd.sgd_epoch_grouped`."""

    group_user: np.ndarray  # int32, user of each group
    group_start: np.ndarray  # int64, n_groups + 1 boundaries into items/ratings
    block_group_ptr: np.ndarray  # int64, n_strata**2 + 1 boundaries into group_order
    group_order: np.ndarray  # int32, group ids by block (reshuffled every epoch)
    items: np.ndarray  # int32, item of each rating, grouped (reshuffled every epoch)
    ratings: np.ndarray  # rating values in the factors' dtype, same order as items


def grouped_layout(
    train: Ratings, n_strata: int, rng: np.random.Generator, dtype=np.float32
) -> GroupedLayout:
    """Deal users and items at random into ``n_strata`` strata each and store the
    ratings block by block, each block grouped by user (see :mod:`mfrec.kernels.sgd`),
    in the input's user and item numbering (training uses :func:`strata_layout`).

    Costs 8 bytes per rating (items + values) plus a few per user and block; built in
    one counting pass and two scatter passes (:func:`mfrec.kernels.sgd.build_layout`)."""
    user_stratum, item_stratum = _deal_strata(train, n_strata, rng)
    return _layout(train.user_index, train.item_index, train.rating, user_stratum,
                   item_stratum, n_strata, dtype)  # fmt: skip


def _deal_strata(
    train: Ratings, n_strata: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if n_strata == 1:
        return np.zeros(train.n_users, dtype=np.int32), np.zeros(train.n_items, dtype=np.int32)
    user_stratum = (rng.permutation(train.n_users) % n_strata).astype(np.int32)
    item_stratum = (rng.permutation(train.n_items) % n_strata).astype(np.int32)
    return user_stratum, item_stratum


def _layout(users, items, ratings, user_stratum, item_stratum, n_strata, dtype) -> GroupedLayout:
    from mfrec.kernels.sgd import build_layout

    out_items = np.empty(len(users), dtype=np.int32)
    out_ratings = np.empty(len(users), dtype=dtype)
    group_user, group_start, block_group_ptr = build_layout(
        users, items, ratings, user_stratum, item_stratum, n_strata, out_items, out_ratings
    )
    return GroupedLayout(
        group_user=group_user,
        group_start=group_start,
        block_group_ptr=block_group_ptr,
        group_order=np.arange(len(group_user), dtype=np.int32),
        items=out_items,
        ratings=out_ratings,
    )


class TrainingOrder(NamedTuple):
    """Rows renumbered so that each stratum's users (items) are contiguous, in their
    original order inside the stratum (as LIBMF trains on its shuffled grid).

    A block of the stratified schedule then reads and writes one contiguous 1/S of the
    factor rows instead of rows scattered over all of them: at 10M ratings the rows a
    block touches stay in the L2 cache (epoch times in both orders, side by side:
    ``bench/training_order.py``, docs/performance.md). The arithmetic is the same,
    rating by rating, so the model is too (tests/models/test_sgd.py trains in the input
    order beside it)."""

    user_order: np.ndarray  # training row -> input row
    user_position: np.ndarray  # input row -> training row
    item_order: np.ndarray
    item_position: np.ndarray

    @classmethod
    def of(cls, user_stratum: np.ndarray, item_stratum: np.ndarray) -> TrainingOrder:
        orders = []
        for stratum in (user_stratum, item_stratum):
            order = np.argsort(stratum, kind="stable").astype(np.int32)
            position = np.empty_like(order)
            position[order] = np.arange(len(order), dtype=np.int32)
            orders += [order, position]
        return cls(*orders)

    def to_training(self, rows_in_input_order: np.ndarray, rows: str) -> np.ndarray:
        """An array with one entry (row) per user or item (``rows``), in training order
        (empty arrays unchanged); factor matrices stay aligned (:func:`aligned_empty`)."""
        order = self.user_order if rows == "users" else self.item_order
        return _take_rows(rows_in_input_order, order)

    def to_input(self, rows_in_training_order: np.ndarray, rows: str) -> np.ndarray:
        position = self.user_position if rows == "users" else self.item_position
        return _take_rows(rows_in_training_order, position)

    def validation(self, data: ValidationData) -> ValidationData:
        """Validation pairs renumbered to training rows (``-1``, unknown, kept)."""
        return ValidationData(
            _renumber(data.user_index, self.user_position),
            _renumber(data.item_index, self.item_position),
            data.rating,
        )


def _take_rows(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    if len(a) == 0:
        return a
    out = aligned_empty(a.shape, a.dtype) if a.ndim == 2 else np.empty_like(a)
    np.take(a, index, axis=0, out=out)
    return out


def _renumber(index: np.ndarray, position: np.ndarray) -> np.ndarray:
    known = index >= 0
    return np.where(known, position[np.where(known, index, 0)], -1).astype(np.int32)


def strata_layout(
    train: Ratings, n_strata: int, rng: np.random.Generator, dtype=np.float32
) -> tuple[GroupedLayout, TrainingOrder | None]:
    """The layout of :func:`grouped_layout` (the same strata, the same draws) over
    users and items renumbered in :class:`TrainingOrder`, and that order (None with one
    stratum: nothing to renumber)."""
    user_stratum, item_stratum = _deal_strata(train, n_strata, rng)
    if n_strata == 1:
        return _layout(train.user_index, train.item_index, train.rating, user_stratum,
                       item_stratum, n_strata, dtype), None  # fmt: skip
    order = TrainingOrder.of(user_stratum, item_stratum)
    layout = _layout(
        order.user_position[train.user_index], order.item_position[train.item_index],
        train.rating, user_stratum[order.user_order], item_stratum[order.item_order],
        n_strata, dtype,
    )  # fmt: skip
    return layout, order


def init_factors(rng: np.random.Generator, shape: tuple[int, int], std: float, dtype) -> np.ndarray:
    """N(0, std^2) factors drawn directly in ``dtype`` (no float64 detour), in memory
    aligned to a cache line (:func:`aligned_empty`): the same draws as
    ``rng.standard_normal(shape, dtype) * std``."""
    dtype = np.dtype(dtype)
    draw = aligned_empty(shape, dtype)
    if dtype in (np.float32, np.float64):
        rng.standard_normal(dtype=dtype, out=draw)
    else:
        draw[...] = rng.standard_normal(shape)
    draw *= dtype.type(std)
    return draw


#: Bytes of a cache line on x86-64 and most ARM cores.
CACHE_LINE = 64


def aligned_empty(shape: tuple[int, ...], dtype, align: int = CACHE_LINE) -> np.ndarray:
    """An uninitialised C-contiguous array whose first byte starts a cache line.

    numpy only guarantees 16-byte alignment: a factor row of 64 float32 (256 bytes) then
    usually spans five cache lines instead of four and shares its first and last with
    the neighbouring rows, which parallel SGD updates from other threads (false
    sharing)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(size + align, dtype=np.uint8)
    start = -buffer.ctypes.data % align
    return buffer[start : start + size].view(dtype).reshape(shape)


def count_aware_penalty(
    counts: np.ndarray, reg_row: float, reg_bias_row: float, dtype=np.float32
) -> np.ndarray:
    """(n_rows, 2): each row's fixed penalty (factors, bias) spread over its ratings,
    ``(reg_row, reg_bias_row) / count`` -- the ``XU``/``XI`` of :mod:`mfrec.kernels.sgd`;
    empty (0, 2) when both are 0 (the per-rating penalty alone)."""
    if not (reg_row or reg_bias_row):
        return np.zeros((0, 2), dtype=dtype)
    inverse = 1.0 / np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return np.ascontiguousarray(np.outer(inverse, [reg_row, reg_bias_row]), dtype=dtype)


def _row_sq(a: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, a)


class FunkSVD(_SGDFactorModel):
    """Funk SVD: ``r_hat = p_u . q_i`` learned by SGD on the observed ratings only.

    No biases and no global mean: the factors carry everything. The defaults (AdaGrad
    steps as LIBMF, a small initial scale centred on the mean rating, early stopping on a
    held-out slice) were chosen on a panel of data sets (docs/defaults.md); Surprise's
    ``SVD(biased=False)`` is ``FunkSVD(optimizer="sgd", lr=0.005, reg=0.02, init_std=0.1,
    init_mean=0, n_epochs=20, patience=None, rating_unit=1)``. Each epoch visits the
    ratings in a fresh random order and, per rating, moves ``p_u`` and ``q_i`` along
    the negative gradient of ``(r - p_u.q_i)^2 / 2 + reg/2 (|p_u|^2 + |q_i|^2)``.

    Parameters
    ----------
    n_factors : int, default 100
        Latent dimensions.
    n_epochs : int, default 100
        Most passes over the training ratings (early stopping usually ends sooner).
    lr : float, default 0.05
        Step size (with AdaGrad, the initial one).
    reg : float, default 0.05
        L2 regularisation of the factors.
    init_std : float, default 0.01
        Factors start as N(init_mean, init_std^2).
    init_mean : float or None, default None
        Centre of the initial factor entries. None: ``sqrt(init_product x mean rating /
        n_factors)``, so that ``p_u . q_i`` starts near ``init_product`` times the mean
        rating (FunkSVD has no global mean to start from; from 0 the factors first spend
        epochs learning it, and on a 1..10 scale they may never). 0 is Surprise's
        ``SVD(biased=False)``.
    init_product : float > 0, default 1
        With ``init_mean=None``: the initial ``p_u . q_i`` as a fraction of the mean
        rating. Training is invariant under rotations of the factor space, so the start
        is defined by two numbers only: the length of the common centre (set here) and
        the spread around it (``init_std``). 1 starts every prediction at the mean, the
        robust choice where rows have few ratings (a rare row's factors carry its whole
        prediction, and from a small start they stay near 0). A small start (0.01, with
        ``init_std=0.03``; LIBMF's uniform [0, 1) / sqrt(k) start is about 0.08) leaves
        the factors free to take on the data's structure sooner: at 100 factors and 20
        epochs on ML-100K u1..u5 it gives RMSE 0.916 instead of 0.930 (LIBMF 0.916,
        ``bench/libmf.py``), but on the sparse sets of the panel it is 8-28% worse
        than the bias baseline, so it is not the default (docs/defaults.md).
    random_state : None, int or numpy Generator
        Seeds initialisation and the per-epoch order: same seed, same model, bit for bit.
    dtype : {"float32", "float64"}, default "float32"
        Storage type of the factors.
    patience : int or None, default 3
        Early stopping. With validation data given to ``fit``: stop after this many
        epochs without a better validation RMSE and keep the best epoch's factors.
        Without: hold out ``validation_fraction`` of the training ratings (seeded by
        ``random_state``), find the best epoch count on them the same way, then refit on
        all the ratings for that many epochs. None: run all ``n_epochs``.
    validation_fraction : float in [0, 1), default 0.05
        The held-out slice for early stopping when ``fit`` gets no validation data;
        0 turns that off (``patience`` then needs validation data).
    n_strata : int, default 8
        Users and items are dealt into this many strata for conflict-free parallel SGD
        (see :mod:`mfrec.kernels.sgd`); at most ``n_strata`` threads work at once. The
        result depends on the seed and ``n_strata``, never on the thread count.
        ``n_strata=1`` is classic serial SGD.
    n_threads : int or None, default None
        Threads to train with (None: all cores). Does not change the result.
    optimizer : {"sgd", "adagrad"}, default "adagrad"
        ``"sgd"``: a fixed step ``lr`` (Surprise's rule, reproduces its numbers).
        ``"adagrad"``: LIBMF's adaptive step ``lr / sqrt(G)``, G the running sum of a
        row's squared gradients (Chin et al. 2015; see :mod:`mfrec.kernels.sgd`); it
        wants a larger ``lr`` (about 0.05-0.1).
    rating_unit : float or None, default None
        The unit of the hyperparameters, in rating points: training behaves exactly as
        on the ratings divided by ``rating_unit`` (predictions mapped back). None: a
        quarter of the rating range, so the defaults mean the same on a 1..10 or
        0.5..5 scale as on 1..5 (where it is 1); 1: the raw ratings (mfrec before this
        option). In the ratings' own units: the factors' L2 (``reg``, ``reg_row``) is
        multiplied by ``c``, the initial factor scale by ``sqrt(c)``, and the steps
        follow (:class:`UnitSteps`). Measured on the 1..10 panel set: docs/defaults.md.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray (n_users, n_factors), (n_items, n_factors)
    history_ : list of dict
        Per epoch: ``train_loss`` (regularised objective per rating), ``train_rmse``
        (of the predictions made during the pass, before each update), ``val_rmse``,
        ``seconds``. After early stopping on a held-out slice, the refit's epochs, each
        with the slice's RMSE at that epoch of the selection pass as ``val_rmse``.
    validation_history_ : list of dict
        Only after early stopping on a held-out slice: the selection pass's epochs, up
        to where it stopped.
    best_epoch_ : int
        The epoch kept (the number of epochs run without early stopping).
    """

    name = "funk-svd"
    _params_before_they_existed: ClassVar[dict[str, Any]] = {
        "rating_unit": 1.0, "init_product": 1.0,
    }  # fmt: skip
    _biases = (False, False)
    _use_bias = False
    _uses_global_mean = False
    _constraints: ClassVar[dict[str, Constraint]] = {
        **_SGD_CONSTRAINTS,
        "init_mean": Real(0, None, none_ok=True),
        "init_product": Real(0, None, open_low=True),
    }

    def _init_offset(self) -> float:
        if self.init_mean is not None:
            return float(self.init_mean)
        return float(np.sqrt(self.init_product * max(self.global_mean_, 0.0) / self.n_factors))

    def __init__(
        self,
        n_factors: int = 100,
        n_epochs: int = 100,
        lr: float = 0.05,
        reg: float = 0.05,
        init_std: float = 0.01,
        random_state: Any = None,
        dtype: str = "float32",
        patience: int | None = 3,
        n_strata: int = 8,
        n_threads: int | None = None,
        optimizer: str = "adagrad",
        validation_fraction: float = 0.05,
        init_mean: float | None = None,
        rating_unit: float | None = None,
        init_product: float = 1.0,
    ) -> None:
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr = lr
        self.reg = reg
        self.init_std = init_std
        self.random_state = random_state
        self.dtype = dtype
        self.patience = patience
        self.n_strata = n_strata
        self.n_threads = n_threads
        self.optimizer = optimizer
        self.validation_fraction = validation_fraction
        self.init_mean = init_mean
        self.rating_unit = rating_unit
        self.init_product = init_product


class BiasedMF(_SGDFactorModel):
    """Biased matrix factorization: ``r_hat = mu + b_u + b_i + p_u . q_i`` by SGD.

    The model of Koren, Bell & Volinsky (2009) and of Surprise's ``SVD``. The defaults
    (AdaGrad steps as LIBMF, a small initial scale, early stopping on a held-out slice)
    were chosen on a panel of data sets (docs/defaults.md); Surprise's ``SVD`` is
    ``BiasedMF(optimizer="sgd", lr=0.005, reg=0.02, reg_row=0, reg_bias_row=0,
    init_std=0.1, n_epochs=20, patience=None, rating_unit=1)``.

    Parameters
    ----------
    n_factors : int, default 100
    n_epochs : int, default 100
        Most passes over the training ratings (early stopping usually ends sooner); 0
        leaves the model at its start.
    lr : float, default 0.05
        Step size of the factors (and of the biases unless ``lr_bias`` is set); with
        AdaGrad, the initial one.
    reg : float, default 0.05
        L2 regularisation of the factors (and of the biases unless ``reg_bias`` is set),
        per rating.
    lr_bias, reg_bias : float or None, default None
        Separate step size / regularisation for the biases.
    reg_row, reg_bias_row : float, default 2 and 5
        Count-aware regularisation: a fixed L2 penalty per user and per item row (on
        the factors, on the bias), whatever its number of ratings, added to the
        per-rating ``reg`` / ``reg_bias``. The objective gains ``reg_row/2 |p_u|^2 +
        reg_bias_row/2 b_u^2`` per user (items alike), which SGD spreads over the row's
        ratings (see :mod:`mfrec.kernels.sgd`). The per-rating penalty alone shrinks a
        2-rating row by the same fraction as a 200-rating row; the fixed part shrinks
        rare rows more, as the pseudo-counts of the bias baseline do (its ``reg_user``
        / ``reg_item`` are such a ``reg_bias_row``). 0 and 0 give the per-rating penalty
        alone (Surprise's, and mfrec's before this was the default; docs/defaults.md).
    init_std : float, default 0.01
    random_state : None, int or numpy Generator
    dtype : {"float32", "float64"}, default "float32"
    patience : int or None, default 3
        Early stopping (see :class:`FunkSVD`): on the validation data given to ``fit``,
        else on a held-out ``validation_fraction`` of the training ratings. None: run
        all ``n_epochs``.
    validation_fraction : float in [0, 1), default 0.05
        See :class:`FunkSVD`.
    n_strata, n_threads : int
        Parallel schedule and threads (see :class:`FunkSVD`).
    optimizer : {"sgd", "adagrad"}, default "adagrad"
        Fixed or adaptive step sizes (see :class:`FunkSVD`); with ``"adagrad"`` each
        bias has its own accumulator too.
    rating_unit : float or None, default None
        The unit of the hyperparameters (see :class:`FunkSVD`): None, a quarter of the
        rating range.
    init_biases : {"zero", "baseline"}, default "zero"
        Where the biases start: at 0 (Surprise's start), or at the bias baseline's
        solution on the training ratings (:class:`~mfrec.models.BiasBaseline` at its
        defaults, pseudo-counts 15 per user and 10 per item: Koren's "baseline
        predictors"), in the ratings' own units whatever ``rating_unit``. Measured on
        the evaluation panel, ``"baseline"`` is no better on the whole and costs
        0.0008-0.0018 RMSE on some sets (docs/defaults.md, r13).
    baseline_fallback : bool, default True
        Early stopping scores "epoch 0" too -- the bias baseline (the biases as with
        ``init_biases="baseline"``, the factors at their tiny initial scale) -- and
        keeps it when no epoch beats it on the held-out ratings: ``best_epoch_`` 0,
        and the refit on all the ratings runs 0 epochs (``n_epochs=0`` with this
        option gives that model). On data with no structure beyond the biases the model
        is then the bias baseline instead of a slightly worse bias model of its own,
        when the held-out slice says so. The run itself and its stopping rule are as
        without this option, so where an epoch beats epoch 0 nothing changes. With
        ``init_biases="baseline"`` epoch 0 is the start itself, whatever this option,
        and no run stops before some epoch beats it. False: mfrec before this option.
        On both panels of docs/defaults.md (r13) it changes one set each:
        ``syn-rank0`` (to the baseline, better) and, for svdpp only,
        ``syn-sparse-30k`` (to the baseline, 0.05% worse).

    Attributes
    ----------
    global_mean_ : float
    user_bias_, item_bias_ : ndarray
    user_factors_, item_factors_ : ndarray
    history_ : list of dict
    best_epoch_ : int
        The epochs kept (see :class:`FunkSVD`); 0: "epoch 0" (see
        ``baseline_fallback``).
    start_val_rmse_ : float
        After early stopping with ``baseline_fallback`` or ``init_biases="baseline"``:
        the held-out RMSE of "epoch 0".
    """

    name = "biased-mf"
    _biases = (True, True)
    _params_before_they_existed: ClassVar[dict[str, Any]] = {
        "reg_row": 0.0, "reg_bias_row": 0.0, "rating_unit": 1.0, "init_biases": "zero",
        "baseline_fallback": False,
    }  # fmt: skip
    _constraints: ClassVar[dict[str, Constraint]] = {
        **_SGD_CONSTRAINTS,
        "lr_bias": Real(0, 1, open_low=True, none_ok=True),
        "reg_bias": Real(0, None, none_ok=True),
        "reg_row": Real(0, None),
        "reg_bias_row": Real(0, None),
        "init_biases": Options(("zero", "baseline")),
        "baseline_fallback": Boolean(),
    }

    def __init__(
        self,
        n_factors: int = 100,
        n_epochs: int = 100,
        lr: float = 0.05,
        reg: float = 0.05,
        lr_bias: float | None = None,
        reg_bias: float | None = None,
        init_std: float = 0.01,
        random_state: Any = None,
        dtype: str = "float32",
        patience: int | None = 3,
        n_strata: int = 8,
        n_threads: int | None = None,
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
        self.init_std = init_std
        self.random_state = random_state
        self.dtype = dtype
        self.patience = patience
        self.n_strata = n_strata
        self.n_threads = n_threads
        self.optimizer = optimizer
        self.validation_fraction = validation_fraction
        self.reg_row = reg_row
        self.reg_bias_row = reg_bias_row
        self.rating_unit = rating_unit
        self.init_biases = init_biases
        self.baseline_fallback = baseline_fallback

    def _bias_settings(self) -> tuple[float, float]:
        lr_bias = self.lr if self.lr_bias is None else self.lr_bias
        reg_bias = self.reg if self.reg_bias is None else self.reg_bias
        return lr_bias, reg_bias
