"""Baselines every evaluation should show beside a real model."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

import numpy as np

from mfrec._params import Constraint, Integer, Real
from mfrec._threads import numba_threads, threads_for_work
from mfrec.data.ratings import Ratings
from mfrec.models.base import FactorModel, ValidationData

#: Empirical Bayes for the biases' penalties (:func:`empirical_bayes_regs`), by
#: stochastic-approximation EM: this many Gibbs sweeps of the bias model, the first
#: :data:`EB_BURN_IN` of them a burn-in (each replaces the running statistics), the
#: rest averaged (step 1/t).
EB_ITERATIONS = 80
EB_BURN_IN = 20
#: At most this many ratings enter the estimate (a seeded uniform sample beyond): the
#: variances are the model's, whatever the number of ratings, and the cost is bounded.
EB_MAX_RATINGS = 1_000_000
#: The estimate's own seed: ``"auto"`` is a function of the data alone.
EB_SEED = 20_261_201


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
    s_i^2`` (the pseudo-counts of Koren's baseline predictor). The three variances are
    estimated by empirical Bayes (maximum marginal likelihood, as for a crossed
    random-effects model) with stochastic-approximation EM: each iteration draws the
    biases from their conditionals given the current variances (one Gibbs sweep: the
    baseline's half-sweeps plus Gaussian noise of each bias's conditional variance),
    and the variances are the running means of ``mean(b_u^2)``, ``mean(b_i^2)`` and
    the mean squared residual over the draws. (Plain EM with each bias's variance
    taken given the other side's biases was tried first: on rows with fewer than about
    8 ratings it ignores how uncertain the other side is, and its estimates ran off to
    penalties of 50-500, worse than 15 / 10; the sampled E-step has no such bias --
    docs/defaults.md.)

    A number given for one side stays fixed; ``"auto"`` is estimated. The fixed
    15 / 10 of :class:`BiasBaseline` assume 15 and 10 ratings' worth of noise per unit
    of bias variance; the data say about 5 / 3 on ML-100K, about 11 on noisy data with
    weak biases, about 2 on a 1..10 scale. Deterministic (its own seed,
    :data:`EB_SEED`); the result does not depend on the thread count.
    """
    from mfrec.kernels.baseline import residual_sum_of_squares

    auto_user, auto_item = reg_user == "auto", reg_item == "auto"
    lam_u = 15.0 if auto_user else float(reg_user)
    lam_i = 10.0 if auto_item else float(reg_item)
    if not (auto_user or auto_item):
        return lam_u, lam_i
    rng = np.random.default_rng(EB_SEED)
    rows = None
    if len(train) > EB_MAX_RATINGS:
        rows = np.sort(rng.choice(len(train), EB_MAX_RATINGS, replace=False))
    sweep = _BiasSweep(train, global_mean, lam_u, lam_i, rows=rows)
    n_u = sweep.user_denominator - lam_u
    n_i = sweep.item_denominator - lam_i
    n = len(sweep.r)
    # Variances below this are 0 (a constant rating, or no spread of one side's biases).
    floor = 1e-12 * max(1.0, float(sweep.r @ sweep.r) / n)
    # The start (the burn-in forgets it): 70% of the ratings' variance is noise.
    noise = max(0.7 * float(np.var(sweep.r)), floor)
    stats = np.zeros(3)
    for t in range(EB_ITERATIONS):
        sweep.user_denominator = lam_u + n_u
        sweep.item_denominator = lam_i + n_i
        sweep.draw(rng, noise)
        with threads_for_work(n):
            ssr = residual_sum_of_squares(sweep.u, sweep.i, sweep.r, sweep.bu, sweep.bi)
        drawn = np.array([ssr / n, np.mean(sweep.bu**2), np.mean(sweep.bi**2)])
        step = 1.0 if t < EB_BURN_IN else 1.0 / (t - EB_BURN_IN + 1)
        stats += step * (drawn - stats)
        noise, var_u, var_i = np.maximum(stats, floor)
        lam_u = noise / var_u if auto_user else lam_u
        lam_i = noise / var_i if auto_item else lam_i
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

    def __init__(
        self,
        train: Ratings,
        global_mean: float,
        reg_user: float,
        reg_item: float,
        rows: np.ndarray | None = None,
    ):
        from mfrec.kernels.baseline import n_chunks

        self.u, self.i = train.user_index, train.item_index
        self.r = train.rating.astype(np.float64) - global_mean
        if rows is not None:  # only these ratings (every user and item keeps its row)
            self.u, self.i, self.r = self.u[rows], self.i[rows], self.r[rows]
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

    def draw(self, rng: np.random.Generator, noise: float) -> None:
        """One Gibbs sweep of the bias model with noise variance ``noise`` and the
        current penalties: each side's biases drawn from their conditional, the
        half-sweep's solution plus N(0, noise / denominator)."""
        from mfrec.kernels.baseline import bias_half_sweep

        u, i, r, bu, bi = self.u, self.i, self.r, self.bu, self.bi
        with threads_for_work(len(r)):
            bias_half_sweep(i, u, r, bu, self.item_denominator, bi, self._partial_items)
            bi += rng.standard_normal(len(bi)) * np.sqrt(noise / self.item_denominator)
            bias_half_sweep(u, i, r, bi, self.user_denominator, bu, self._partial_users)
            bu += rng.standard_normal(len(bu)) * np.sqrt(noise / self.user_denominator)


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
