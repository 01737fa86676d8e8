"""Evaluation protocols: fit a model on each fold's training part, score its test part."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mfrec.evaluation.metrics import RATING_METRICS
from mfrec.evaluation.ranking import parse_metrics
from mfrec.exceptions import UnknownIdWarning
from mfrec.models.base import Recommender


def clone(model: Recommender) -> Recommender:
    """An unfitted copy with the same hyperparameters."""
    return type(model)(**model.get_params())


def evaluate_fold(
    model: Recommender,
    fold: Any,
    metrics: str | Sequence[str] = ("rmse", "mae"),
    *,
    relevance_threshold: float | None = 4.0,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Fit a fresh clone of ``model`` on ``fold.train`` and score ``fold.test``.

    ``metrics`` mixes rating metrics (``rmse``, ``mae``, ``mse``: predictions clipped to
    the rating scale) and ranking metrics (``ndcg@10``, ``recall@10``, ``mrr``, ...: the
    protocol of :mod:`mfrec.evaluation.topn`, relevance by ``relevance_threshold``).

    Returns a dict with the fold name, each metric, ``fit_seconds``, the sizes of both
    parts, ``predict_seconds`` (rating metrics) and, with ranking metrics, the user
    counts of :func:`~mfrec.evaluation.topn.evaluate_ranking` and ``rank_seconds``.
    ``callback`` is passed to ``fit`` (called with each epoch's record: progress).
    """
    specs = parse_metrics(metrics)
    rating = [s for s in specs if not s.is_ranking]
    ranking = [s for s in specs if s.is_ranking]
    fitted = clone(model)
    started = time.perf_counter()
    fitted.fit(fold.train, callback=callback)
    fit_seconds = time.perf_counter() - started
    result: dict[str, Any] = {"fold": fold.name}
    timings: dict[str, float] = {"fit_seconds": fit_seconds}
    if rating:
        started = time.perf_counter()
        with warnings.catch_warnings():
            # Test ids unseen in training are expected in random splits; the policy is
            # documented and the count is reported below instead.
            warnings.simplefilter("ignore", UnknownIdWarning)
            predicted = fitted.predict_ratings(fold.test, clip=True)
        timings["predict_seconds"] = time.perf_counter() - started
        for spec in rating:
            result[str(spec)] = RATING_METRICS[spec.name](fold.test.rating, predicted)
    counts: dict[str, Any] = {}
    if ranking:
        from mfrec.evaluation.topn import evaluate_ranking

        ranked = evaluate_ranking(
            fitted, fold.test, ranking, relevance_threshold=relevance_threshold
        )
        for spec in ranking:
            result[str(spec)] = ranked.pop(str(spec))
        timings["rank_seconds"] = ranked.pop("rank_seconds")
        counts = ranked
    translated = fitted._translate(fold.test)
    result.update(timings)
    result["n_train"] = len(fold.train)
    result["n_test"] = len(fold.test)
    result["n_test_unknown"] = int(
        ((translated.user_index < 0) | (translated.item_index < 0)).sum()
    )
    result.update(counts)
    return result


def cross_validate(
    model: Recommender,
    folds: Sequence[Any],
    metrics: str | Sequence[str] = ("rmse", "mae"),
    *,
    relevance_threshold: float | None = 4.0,
    on_fold: Callable[[dict[str, Any]], Any] | None = None,
    callback: Callable[[dict[str, Any]], Any] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on every fold (see :func:`evaluate_fold` for ``metrics``).

    Returns ``{"folds": [per-fold dicts], "mean": {metric: mean over folds, ...}}``, and
    with ranking metrics also ``"users"``: the user counts summed over folds
    (``n_users_evaluated``, ``n_users_no_relevant``, ...). ``on_fold`` is called with
    each fold's result as it completes, ``callback`` with each epoch's record inside
    every fit (progress).
    """
    specs = parse_metrics(metrics)
    results = []
    for fold in folds:
        result = evaluate_fold(
            model, fold, specs, relevance_threshold=relevance_threshold, callback=callback
        )
        results.append(result)
        if on_fold is not None:
            on_fold(result)
    timing = ("fit_seconds", "predict_seconds", "rank_seconds")
    keys = [str(s) for s in specs] + [k for k in timing if k in results[0]]
    mean = {k: _mean([r[k] for r in results]) for k in keys}
    report: dict[str, Any] = {"folds": results, "mean": mean}
    if any(s.is_ranking for s in specs):
        report["users"] = {
            k: int(sum(r[k] for r in results))
            for k in (
                "n_test_users",
                "n_users_evaluated",
                "n_users_no_relevant",
                "n_users_unknown",
                "n_relevant",
                "n_relevant_unknown_items",
            )
        }
    return report


def _mean(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None
