"""Baselines every evaluation should show beside a real model."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import numpy as np

from mfrec._params import Constraint, Integer, Real
from mfrec._threads import numba_threads
from mfrec.data.ratings import Ratings
from mfrec.models.base import FactorModel, ValidationData


def baseline_biases(
    train: Ratings,
    global_mean: float,
    reg_user: float = 15.0,
    reg_item: float = 10.0,
    n_epochs: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """(user biases, item biases), float64: :class:`BiasBaseline`'s solution on ``train``
    around ``global_mean`` (the same alternating solves, same order, same defaults)."""
    sweep = _BiasSweep(train, global_mean, reg_user, reg_item)
    for _ in range(n_epochs):
        sweep()
    return sweep.bu, sweep.bi


def epoch_zero(
    model: FactorModel, train: Ratings, dtype, validation: ValidationData | None
) -> tuple[bool, dict[str, np.ndarray] | None]:
    """``init_biases`` and ``baseline_fallback`` of a biased model (SGD, SVD++, ALS)
    whose biases were just set to 0: sets them to the bias baseline's solution where the
    start is the baseline (``init_biases="baseline"``, or ``baseline_fallback`` with
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
        user, item = baseline_biases(train, model.global_mean_)
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

    Parameters
    ----------
    reg_user : float, default 15
    reg_item : float, default 10
    n_epochs : int, default 10
    """

    name = "bias"
    _biases = (True, True)
    _constraints: ClassVar[dict[str, Constraint]] = {
        "reg_user": Real(0, None),
        "reg_item": Real(0, None),
        "n_epochs": Integer(1, 10_000),
    }

    def __init__(self, reg_user: float = 15.0, reg_item: float = 10.0, n_epochs: int = 10) -> None:
        self.reg_user = reg_user
        self.reg_item = reg_item
        self.n_epochs = n_epochs

    def _fit(self, train: Ratings, validation: ValidationData | None, callback: Any) -> None:
        self._zero_factors(train)
        sweep = _BiasSweep(train, self.global_mean_, self.reg_user, self.reg_item)
        u, i, r, bu, bi = sweep.u, sweep.i, sweep.r, sweep.bu, sweep.bi

        def epoch(_: int) -> dict[str, float]:
            sweep()
            self.user_bias_ = bu.astype(np.float32)
            self.item_bias_ = bi.astype(np.float32)
            err = r - bu[u] - bi[i]
            loss = (err @ err + self.reg_user * (bu @ bu) + self.reg_item * (bi @ bi)) / len(r)
            return {"train_loss": float(loss), "train_rmse": float(np.sqrt(np.mean(err * err)))}

        self._run_epochs(self.n_epochs, epoch, validation, callback)

    def _fold_in_penalty(self) -> tuple[np.ndarray, np.ndarray]:
        # A new user's bias solves b_u = sum_i (r - mu - b_i) / (reg_user + n_u): the
        # user step of the fit, i.e. a fixed ridge of reg_user (not scaled by n_u).
        return np.array([float(self.reg_user)]), np.zeros(1)
