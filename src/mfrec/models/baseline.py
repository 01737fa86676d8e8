"""Baselines every evaluation should show beside a real model."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import numpy as np

from mfrec._params import Constraint, Integer, Real
from mfrec._threads import numba_threads, threads_for_work
from mfrec.data.ratings import Ratings
from mfrec.models.base import FactorModel, ValidationData

#: Empirical Bayes for the biases' penalties (:func:`empirical_bayes_regs`): EM stops
#: when neither penalty moves by more than this fraction in an iteration, or after
#: :data:`EB_MAX_ITER` iterations (7-28 on the defaults panel, one sweep each).
EB_TOL = 1e-3
EB_MAX_ITER = 100


def empirical_bayes_regs(
    train: Ratings,
    global_mean: float,
    reg_user: float | str = "auto",
    reg_item: float | str = "auto",
) -> tuple[float, float]:
    """The baseline's penalties estimated from the data: ``(reg_user, reg_item)``.

    The bias model ``r_ui = mu + b_u + b_i + e`` with ``b_u ~ N(0, s_u^2)``,
    ``b_i ~ N(0, s_i^2)`` and ``e ~ N(0, s_e^2)`` has as its posterior-mean biases the
    baseline's solution with ``reg_user = s_e^2 / s_u^2`` and ``reg_item = s_e^2 /
    s_i^2`` (the pseudo-counts of Koren's baseline predictor). The variances are
    estimated by EM (empirical Bayes, as for a crossed random-effects model): each
    iteration runs one alternating sweep from the previous biases at the current
    penalties, then sets ``s_u^2`` to the mean of ``b_u^2 + v_u`` (``v_u = s_e^2 / (n_u
    + reg_user)``, the user bias's posterior variance given the items), ``s_i^2``
    likewise, and ``s_e^2`` to the mean squared residual plus the biases' posterior
    variances. A number given for one side stays fixed; ``"auto"`` is estimated. The
    fixed 15 / 10 of :class:`BiasBaseline` assume about 15 and 10 ratings' worth of
    noise per unit of bias variance; the estimate adapts that to the data (ML-100K:
    about 5 / 3; noisier data with weak biases: larger). Deterministic; the result
    does not depend on the thread count.
    """
    from mfrec.kernels.baseline import residual_sum_of_squares

    auto_user, auto_item = reg_user == "auto", reg_item == "auto"
    lam_u = 15.0 if auto_user else float(reg_user)
    lam_i = 10.0 if auto_item else float(reg_item)
    if not (auto_user or auto_item):
        return lam_u, lam_i
    sweep = _BiasSweep(train, global_mean, lam_u, lam_i)
    n_u = sweep.user_denominator - lam_u
    n_i = sweep.item_denominator - lam_i
    n = len(sweep.r)
    # Variances below this are 0 (a constant rating, or no spread of one side's biases).
    floor = 1e-12 * max(1.0, float(sweep.r @ sweep.r) / n)
    for _ in range(EB_MAX_ITER):
        sweep.user_denominator = lam_u + n_u
        sweep.item_denominator = lam_i + n_i
        sweep()
        with threads_for_work(n):
            ssr = residual_sum_of_squares(sweep.u, sweep.i, sweep.r, sweep.bu, sweep.bi)
        noise = max(ssr / n, floor)
        var_u = noise / (lam_u + n_u)
        var_i = noise / (lam_i + n_i)
        noise = max((ssr + n_u @ var_u + n_i @ var_i) / n, floor)
        new_u = noise / max(float(np.mean(sweep.bu**2 + var_u)), floor) if auto_user else lam_u
        new_i = noise / max(float(np.mean(sweep.bi**2 + var_i)), floor) if auto_item else lam_i
        moved = max(abs(new_u - lam_u) / lam_u, abs(new_i - lam_i) / lam_i)
        lam_u, lam_i = new_u, new_i
        if moved < EB_TOL:
            break
    return float(lam_u), float(lam_i)


def baseline_biases(
    train: Ratings,
    global_mean: float,
    reg_user: float | str = 15.0,
    reg_item: float | str = 10.0,
    n_epochs: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """(user biases, item biases), float64: :class:`BiasBaseline`'s solution on ``train``
    around ``global_mean`` (the same alternating solves, same order, same defaults;
    ``"auto"`` penalties by :func:`empirical_bayes_regs`)."""
    reg_user, reg_item = empirical_bayes_regs(train, global_mean, reg_user, reg_item)
    sweep = _BiasSweep(train, global_mean, reg_user, reg_item)
    for _ in range(n_epochs):
        sweep()
    return sweep.bu, sweep.bi


#: Epoch 0 of the biased iterative models (:func:`epoch_zero`) is the bias baseline with
#: its penalties estimated from the data.
EPOCH_ZERO_REGS = ("auto", "auto")


def epoch_zero(
    model: FactorModel, train: Ratings, dtype, validation: ValidationData | None
) -> tuple[bool, dict[str, np.ndarray] | None]:
    """``init_biases`` and ``baseline_fallback`` of a biased model (SGD, SVD++, ALS)
    whose biases were just set to 0: sets them to the bias baseline's solution (its
    penalties estimated from the data, :data:`EPOCH_ZERO_REGS`) where the start is the
    baseline (``init_biases="baseline"``, or ``baseline_fallback`` with
    ``n_epochs=0``: the refit after early stopping chose epoch 0). Returns
    ``(score_start, start_arrays)`` for :meth:`FactorModel._run_epochs`: whether epoch 0
    is a candidate, and the biases it has if they are not the start's
    (``baseline_fallback`` from a start at 0). The fallback's baseline is solved only for
    a run that scores epoch 0 (validation data and ``patience``): the refit after early
    stopping, or a run of all ``n_epochs``, never uses it, and at 10M ratings it costs
    seconds."""
    baseline_start = getattr(model, "init_biases", "zero") == "baseline"
    fallback = bool(getattr(model, "baseline_fallback", False))
    if model.user_bias_ is None or not (baseline_start or fallback):
        return False, None
    scored = validation is not None and getattr(model, "patience", None) is not None
    if not (baseline_start or model.n_epochs == 0 or scored):
        return False, None
    # A model with its own thread setting solves on it; one without (SVD++) on the
    # threads its caller set.
    threads = (
        numba_threads(model.n_threads) if hasattr(model, "n_threads") else contextlib.nullcontext()
    )
    with threads:
        user, item = baseline_biases(train, model.global_mean_, *EPOCH_ZERO_REGS)
    if baseline_start or model.n_epochs == 0:
        model.user_bias_[:], model.item_bias_[:] = user, item
        return True, None
    return True, {"user_bias_": user.astype(dtype), "item_bias_": item.astype(dtype)}


class _BiasSweep:
    """One epoch of the baseline's alternating solves per call, on float64 biases
    ``bu`` / ``bi`` (updated in place): all item biases with the user biases fixed,
    then all user biases (:func:`mfrec.kernels.baseline.bias_half_sweep`: one fused
    pass over the ratings each, in parallel, the result independent of the threads), on
    no more threads than the caller allows and the work merits on the machine as it is
    (:func:`mfrec._threads.threads_for_work`)."""

    def __init__(self, train: Ratings, global_mean: float, reg_user: float, reg_item: float):
        from mfrec.kernels.baseline import n_chunks

        self.u, self.i = train.user_index, train.item_index
        self.r = train.rating.astype(np.float64) - global_mean
        self.item_denominator = reg_item + np.bincount(self.i, minlength=train.n_items)
        self.user_denominator = reg_user + np.bincount(self.u, minlength=train.n_users)
        self.bu = np.zeros(train.n_users)
        self.bi = np.zeros(train.n_items)
        chunks = n_chunks(len(self.r))
        self._partial_items = np.empty((chunks, train.n_items))
        self._partial_users = np.empty((chunks, train.n_users))

    def __call__(self) -> None:
        from mfrec._threads import threads_for_work
        from mfrec.kernels.baseline import bias_half_sweep

        u, i, r, bu, bi = self.u, self.i, self.r, self.bu, self.bi
        with threads_for_work(len(r)):
            bias_half_sweep(i, u, r, bu, self.item_denominator, bi, self._partial_items)
            bias_half_sweep(u, i, r, bi, self.user_denominator, bu, self._partial_users)


class _NoFactors(FactorModel):
    """A factor model with zero latent dimensions (scores from mean and biases only)."""

    def _zero_factors(self, train: Ratings) -> None:
        self.user_factors_ = np.zeros((train.n_users, 0), dtype=np.float32)
        self.item_factors_ = np.zeros((train.n_items, 0), dtype=np.float32)


class GlobalMean(_NoFactors):
    """Predicts the mean training rating for every pair."""

    name = "global-mean"
    _biases = (False, False)

    def __init__(self) -> None:
        pass

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        self._zero_factors(train)
        self.user_bias_ = None
        self.item_bias_ = None


class BiasBaseline(_NoFactors):
    """``r_hat = mu + b_u + b_i`` with regularised biases, by alternating least squares.

    Each epoch solves exactly for all item biases with user biases fixed, then for all
    user biases:  b_i = sum_u (r_ui - mu - b_u) / (reg_item + n_i),  and likewise b_u.
    (The "baseline predictor" of Koren 2010; Surprise's ``BaselineOnly`` with ALS.)

    The defaults (15 and 10 ratings' worth of shrinkage, Surprise's) make it the classic
    reference every evaluation shows. ``"auto"`` estimates a penalty from the data
    instead: the variance ratio of noise to biases, by empirical Bayes
    (:func:`empirical_bayes_regs`); it is the bias part the biased iterative models
    fall back to when their factors do not help (``baseline_fallback``), and on the
    defaults panel it is the better bias model on 9 of 11 sets (docs/defaults.md).

    Parameters
    ----------
    reg_user : float or "auto", default 15
    reg_item : float or "auto", default 10
    n_epochs : int, default 10

    Attributes
    ----------
    reg_user_, reg_item_ : float
        The penalties used (the estimates where ``"auto"``).
    """

    name = "bias"
    _biases = (True, True)
    _constraints: ClassVar[dict[str, Constraint]] = {
        "reg_user": Real(0, None, auto_ok=True),
        "reg_item": Real(0, None, auto_ok=True),
        "n_epochs": Integer(1, 10_000),
    }
    _fitted_scalars: ClassVar[tuple[str, ...]] = ("reg_user_", "reg_item_")

    def __init__(
        self, reg_user: float | str = 15.0, reg_item: float | str = 10.0, n_epochs: int = 10
    ) -> None:
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.n_epochs = n_epochs

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        self._zero_factors(train)
        self.reg_user_, self.reg_item_ = empirical_bayes_regs(
            train, self.global_mean_, self.reg_user, self.reg_item
        )
        sweep = _BiasSweep(train, self.global_mean_, self.reg_user_, self.reg_item_)
        u, i, r, bu, bi = sweep.u, sweep.i, sweep.r, sweep.bu, sweep.bi

        def epoch(_: int) -> dict[str, float]:
            sweep()
            self.user_bias_ = bu.astype(np.float32)
            self.item_bias_ = bi.astype(np.float32)
            err = r - bu[u] - bi[i]
            loss = (err @ err + self.reg_user_ * (bu @ bu) + self.reg_item_ * (bi @ bi)) / len(r)
            return {"train_loss": float(loss), "train_rmse": float(np.sqrt(np.mean(err * err)))}

        self._run_epochs(self.n_epochs, epoch, validation, callback)

    def _fold_in_penalty(self) -> tuple[np.ndarray, np.ndarray]:
        # A new user's bias solves b_u = sum_i (r - mu - b_i) / (reg_user + n_u): the
        # user step of the fit, i.e. a fixed ridge of reg_user (not scaled by n_u).
        # (A model saved before reg_user_ existed had a number for reg_user.)
        return np.array([float(getattr(self, "reg_user_", self.reg_user))]), np.zeros(1)
