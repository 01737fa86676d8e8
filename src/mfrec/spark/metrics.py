"""Rating and ranking metrics of a model on a Spark DataFrame of held-out ratings,
computed in the executors with mfrec's own definitions (:mod:`mfrec.evaluation`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from mfrec.exceptions import DataError, ParameterError
from mfrec.spark._session import check_columns, require_pyspark


def _block_metrics(model: Any, frame: Any, rating_specs: list, ranking: list, threshold, clip):
    """Sums over one block of test users: squared and absolute errors, and each
    ranking metric's mean times its number of evaluated users."""
    import warnings

    from mfrec.data.ratings import Ratings
    from mfrec.evaluation.topn import evaluate_ranking

    out: dict[str, float] = {"n": float(len(frame))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if rating_specs:
            predicted = model.predict(frame["user"].to_numpy(), frame["item"].to_numpy(), clip=clip)
            error = np.asarray(predicted, dtype=np.float64) - frame["rating"].to_numpy(np.float64)
            out["sq"] = float(error @ error)
            out["abs"] = float(np.abs(error).sum())
            out["nonfinite"] = float((~np.isfinite(error)).sum())
        if ranking:
            test = Ratings.from_frame(frame, "user", "item", "rating")
            try:
                result = evaluate_ranking(model, test, ranking, relevance_threshold=threshold)
            except DataError:  # no user of this block has a relevant item
                result = {"n_users_evaluated": 0, "n_test_users": len(np.unique(test.user_index))}
            evaluated = float(result["n_users_evaluated"])
            out["evaluated"] = evaluated
            out["test_users"] = float(result["n_test_users"])
            for spec in ranking:
                out[spec] = float(result.get(spec) or 0.0) * evaluated
    return out


def evaluate(
    model: Any,
    test_df: Any,
    metrics: Any = ("rmse", "mae"),
    *,
    user: str = "user",
    item: str = "item",
    rating: str = "rating",
    relevance_threshold: float | None = 4.0,
    clip: bool = False,
    num_blocks: int | None = None,
) -> dict[str, Any]:
    """Metrics of a fitted model on held-out ratings in a Spark DataFrame.

    Test users are split into blocks; each task predicts (and ranks) its block with
    the model's own ``predict`` and :func:`mfrec.evaluation.topn.evaluate_ranking`, and
    the driver combines the blocks' sums, so the figures are the local ones up to float
    summation order: RMSE/MAE/MSE over all test ratings (unknown ids scored by the
    model's fallback), ranking metrics averaged over test users with a relevant item
    (``rating >= relevance_threshold``), seen items excluded.

    Parameters
    ----------
    metrics : str or sequence
        E.g. ``"rmse,mae,ndcg@10,recall@10"``. ``coverage@k`` and ``mrr`` without a
        cutoff are not available here (use ``mrr@k``).

    Returns
    -------
    dict
        ``{metric: value, ...}`` plus ``n_ratings``, ``n_test_users`` and
        ``n_users_evaluated``.
    """
    require_pyspark()
    import pandas as pd
    from pyspark.sql import functions as F

    from mfrec.evaluation.ranking import parse_metrics

    model._check_fitted()
    specs = parse_metrics(metrics)
    rating_specs = [str(s) for s in specs if not s.is_ranking]
    ranking = [str(s) for s in specs if s.is_ranking]
    unsupported = [s for s in specs if s.name == "coverage" or (s.name == "mrr" and s.k is None)]
    if unsupported:
        raise ParameterError(
            f"{[str(s) for s in unsupported]} cannot be combined across blocks of users; "
            "use mrr@k, or compute coverage locally with mfrec.evaluation"
        )
    check_columns(test_df, {"user": user, "item": item, "rating": rating})
    spark = test_df.sparkSession
    sc = spark.sparkContext
    blocks = num_blocks or max(1, sc.defaultParallelism)
    frame = test_df.select(
        F.col(user).alias("user"),
        F.col(item).alias("item"),
        F.col(rating).cast("double").alias("rating"),
        (F.abs(F.hash(F.col(user))) % blocks).alias("blk"),
    )
    shared = sc.broadcast(model)
    keys = ["n", "sq", "abs", "nonfinite", "evaluated", "test_users", *ranking]
    schema = ", ".join(f"`{k}` double" for k in keys)

    def run(frames: Any) -> Any:
        sums = dict.fromkeys(keys, 0.0)
        for part in frames:
            if len(part):
                block = _block_metrics(
                    shared.value, part, rating_specs, ranking, relevance_threshold, clip
                )
                for key, value in block.items():
                    sums[key] += value
        yield pd.DataFrame([sums])

    totals = (
        frame.groupBy("blk")
        .applyInPandas(lambda pdf: next(run(iter([pdf.drop(columns="blk")]))), schema)
        .toPandas()
        .sum()
    )
    shared.unpersist()
    if totals["n"] == 0:
        raise DataError("no ratings to evaluate: the test DataFrame is empty")
    if totals["nonfinite"]:
        raise DataError(f"{int(totals['nonfinite'])} predictions are not finite")
    out: dict[str, Any] = {}
    for spec in specs:
        name = str(spec)
        if name == "rmse":
            out[name] = float(np.sqrt(totals["sq"] / totals["n"]))
        elif name == "mse":
            out[name] = float(totals["sq"] / totals["n"])
        elif name == "mae":
            out[name] = float(totals["abs"] / totals["n"])
        else:
            out[name] = float(totals[name] / totals["evaluated"]) if totals["evaluated"] else None
    out["n_ratings"] = int(totals["n"])
    if ranking:
        out["n_test_users"] = int(totals["test_users"])
        out["n_users_evaluated"] = int(totals["evaluated"])
    return out
