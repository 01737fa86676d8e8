"""Rating-prediction metrics with exact definitions.

For n test ratings r_t with predictions p_t:

- MSE  = (1/n) sum_t (p_t - r_t)^2
- RMSE = sqrt(MSE)
- MAE  = (1/n) sum_t |p_t - r_t|
- error distribution: the share of test ratings whose *rounded* prediction (rounded to
  the rating step, then clipped to the scale) is off by 0, 1, 2, ... steps.

All are computed in float64 whatever the input dtype. Empty or mismatched inputs and
non-finite predictions are errors, never a silent NaN.
"""

from __future__ import annotations

import numpy as np


def _pair(truth, predicted) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(truth, dtype=np.float64).ravel()
    p = np.asarray(predicted, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"truth and predictions differ in length: {t.size} vs {p.size}")
    if t.size == 0:
        raise ValueError("no ratings to evaluate")
    if not np.all(np.isfinite(p)):
        raise ValueError(f"{int((~np.isfinite(p)).sum())} predictions are not finite")
    return t, p


def mse(truth, predicted) -> float:
    """Mean squared error."""
    t, p = _pair(truth, predicted)
    d = p - t
    return float(d @ d / d.size)


def rmse(truth, predicted) -> float:
    """Root mean squared error."""
    return float(np.sqrt(mse(truth, predicted)))


def mae(truth, predicted) -> float:
    """Mean absolute error."""
    t, p = _pair(truth, predicted)
    return float(np.mean(np.abs(p - t)))


def error_distribution(
    truth, predicted, *, step: float = 1.0, scale: tuple[float, float] | None = None
) -> dict[float, float]:
    """Share of ratings by absolute error of the rounded prediction.

    Predictions are rounded to the nearest multiple of ``step`` (and clipped to
    ``scale`` when given) before taking ``|rounded - truth|``. Returns
    ``{error: share}`` for every error that occurs, in increasing order; shares sum to 1.
    """
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    t, p = _pair(truth, predicted)
    rounded = np.round(p / step) * step
    if scale is not None:
        rounded = np.clip(rounded, *scale)
    errors = np.round(np.abs(rounded - t) / step).astype(np.int64)
    counts = np.bincount(errors)
    return {float(e * step): float(c / t.size) for e, c in enumerate(counts) if c}


RATING_METRICS = {"rmse": rmse, "mae": mae, "mse": mse}
