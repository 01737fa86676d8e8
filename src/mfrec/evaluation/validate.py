"""Evaluation protocols: fit a model on each fold's training part, score its test part."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mfrec.evaluation.metrics import RATING_METRICS
from mfrec.exceptions import UnknownIdWarning
from mfrec.models.base import Recommender


def clone(model: Recommender) -> Recommender:
    """An unfitted copy with the same hyperparameters."""
    return type(model)(**model.get_params())


def evaluate_fold(
    model: Recommender, fold: Any, metrics: Sequence[str] = ("rmse", "mae")
) -> dict[str, Any]:
    """Fit a fresh clone of ``model`` on ``fold.train`` and score ``fold.test``.

    Returns a dict with the fold name, each metric, ``fit_seconds``,
    ``predict_seconds`` and the sizes of both parts.
    """
    unknown = [m for m in metrics if m not in RATING_METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(RATING_METRICS)}")
    fitted = clone(model)
    started = time.perf_counter()
    fitted.fit(fold.train)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Test ids unseen in training are expected in random splits; the policy is
        # documented and the count is reported below instead.
        warnings.simplefilter("ignore", UnknownIdWarning)
        predicted = fitted.predict_ratings(fold.test, clip=True)
    predict_seconds = time.perf_counter() - started
    result: dict[str, Any] = {"fold": fold.name}
    for name in metrics:
        result[name] = RATING_METRICS[name](fold.test.rating, predicted)
    translated = fitted._translate(fold.test)
    result["fit_seconds"] = fit_seconds
    result["predict_seconds"] = predict_seconds
    result["n_train"] = len(fold.train)
    result["n_test"] = len(fold.test)
    result["n_test_unknown"] = int(
        ((translated.user_index < 0) | (translated.item_index < 0)).sum()
    )
    return result


def cross_validate(
    model: Recommender,
    folds: Sequence[Any],
    metrics: Sequence[str] = ("rmse", "mae"),
    *,
    on_fold: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on every fold.

    Returns ``{"folds": [per-fold dicts], "mean": {metric: mean over folds, ...}}``;
    ``on_fold`` is called with each fold's result as it completes (progress).
    """
    results = []
    for fold in folds:
        result = evaluate_fold(model, fold, metrics)
        results.append(result)
        if on_fold is not None:
            on_fold(result)
    keys = [*metrics, "fit_seconds", "predict_seconds"]
    mean = {k: float(np.mean([r[k] for r in results])) for k in keys}
    return {"folds": results, "mean": mean}
