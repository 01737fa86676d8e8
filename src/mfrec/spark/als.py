"""Blocked ALS on Spark whose row solves are mfrec's numba kernels, run in executors.

The driver keeps the vocabularies and draws the initial factors exactly as the local
model does; the ratings are encoded, blocked and cached on the cluster once (see
:mod:`mfrec.spark._blocks`), and every half-step ships each factor once to each block
that rates it. The result is an ordinary fitted :class:`mfrec.models.ALS` or
:class:`mfrec.models.ImplicitALS`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from mfrec._random import check_random_state
from mfrec.exceptions import DataError, DivergenceError, ParameterError
from mfrec.spark import _blocks
from mfrec.spark._session import check_columns, require_pyspark

logger = logging.getLogger(__name__)


def _identity(key: int) -> int:
    return key


def _only(index: int, elements: Any) -> list:
    items = list(elements)
    if len(items) != 1:
        raise RuntimeError(f"partition {index} holds {len(items)} blocks, expected 1")
    return items


def _links(index: int, elements: Any) -> list:
    return [(index, sorted((value for _, value in elements), key=lambda link: link[0]))]


class _Side:
    """One side's cached in-blocks and the out-links from its *source* side."""

    def __init__(self, in_blocks: Any, links_in: Any) -> None:
        self.in_blocks = in_blocks  # (b, InBlock), one per partition
        self.links_in = links_in  # keyed by the OTHER side's block j: [(b, positions)]


def _build_side(encoded: Any, row: str, col: str, n_rows: int, num_blocks: int) -> tuple:
    """(in-blocks of ``row``'s side, out-links from ``col``'s blocks to them)."""
    from pyspark.sql import functions as F

    def build(key: tuple, frame: Any) -> Any:
        return _blocks.build_blocks(key, frame, num_blocks, n_rows)

    frame = encoded.select(
        F.col(row).alias("row"),
        F.col(col).alias("col"),
        "r",
        (F.col(row) % num_blocks).alias("blk"),
    )
    # An explicit repartition: one task per block, never coalesced by adaptive execution
    # into a single task that builds every block in turn.
    built = (
        frame.repartition(num_blocks, "blk")
        .groupBy("blk")
        .applyInPandas(build, _blocks.BUILD_SCHEMA)
        .rdd.map(lambda r: (r[0], r[1], r[2], bytes(r[3])))
    )
    built = built.persist()
    in_blocks = (
        built.filter(lambda t: t[0] == _blocks.KIND_IN_BLOCK)
        .map(lambda t: (t[1], _blocks.loads(t[3])))
        .partitionBy(num_blocks, _identity)
        .mapPartitionsWithIndex(_only, preservesPartitioning=True)
        .persist()
    )
    links = (
        built.filter(lambda t: t[0] == _blocks.KIND_OUT_LINK)
        .map(lambda t: (t[2], (t[1], _blocks.loads(t[3]))))
        .partitionBy(num_blocks, _identity)
        .mapPartitionsWithIndex(_links, preservesPartitioning=True)
        .persist()
    )
    stats = in_blocks.map(lambda kv: (kv[1].n_duplicates, kv[1].n_nonfinite)).collect()
    links.count()
    built.unpersist()
    return _Side(in_blocks, links), stats


def _distribute(sc: Any, factors: np.ndarray, bias: np.ndarray | None, num_blocks: int) -> Any:
    blocks = [
        (
            j,
            (
                np.ascontiguousarray(factors[j::num_blocks]),
                None if bias is None else np.ascontiguousarray(bias[j::num_blocks]),
                {},
            ),
        )
        for j in range(num_blocks)
    ]
    rdd = sc.parallelize(blocks, num_blocks).partitionBy(num_blocks, _identity).persist()
    rdd.localCheckpoint()
    rdd.count()
    return rdd


def _half_step(dst: _Side, sources: Any, solve: Any, settings: dict, previous: Any = None):
    """New factors of ``dst``'s side from the current factors of the other side."""
    from functools import partial

    num_blocks = sources.getNumPartitions()
    with_bias = bool(settings.get("use_bias", False))
    messages = (
        sources.zip(dst.links_in)
        .flatMap(partial(_blocks.send_factors, with_bias=with_bias))
        .partitionBy(num_blocks, _identity)
        .mapPartitionsWithIndex(_blocks.gather)
    )
    joined = dst.in_blocks.zip(messages)
    if previous is not None:
        joined = joined.zip(previous)
    # The per-block stats come back through an accumulator and the blocks are counted
    # by the JVM (``_jrdd``): no second Python worker reads the new blocks back.
    collected = sources.context.accumulator([], _blocks.StatsParam())
    result = joined.map(
        partial(_blocks.solve_and_report, solve=solve, settings=settings, report=collected)
    ).persist()
    result.localCheckpoint()  # the next half-step starts here: a lineage of fixed length
    result._jrdd.count()
    stats = [s for _, s in sorted(collected.value, key=lambda pair: pair[0])]
    if len(stats) != num_blocks:
        raise RuntimeError(f"{len(stats)} block(s) reported stats, expected {num_blocks}")
    failed = sum(s["failed"] for s in stats)
    if failed:
        raise DivergenceError(
            f"ALS on Spark: {failed} row system(s) became singular or non-finite. "
            "Try stronger regularisation."
        )
    return result, stats


def _advance(
    state: dict,
    side: str,
    dst: _Side,
    other: str,
    solve: Any,
    settings: dict,
    cached: list,
    warm: bool = False,
) -> list[dict]:
    """One half-step: new factors of ``state[side]`` from ``state[other]`` (warm: the
    solver also reads the side's current factors, as the implicit CG does); the new
    blocks replace the old ones, which are released. Returns the per-block stats."""
    previous = state[side]
    new, stats = _half_step(dst, state[other], solve, settings, previous if warm else None)
    cached.append(new)
    if previous is not None:
        previous.unpersist()
    state[side] = new
    return stats


def _collect(blocks: Any, n: int, k: int, num_blocks: int, dtype: Any, with_bias: bool):
    factors = np.zeros((n, k), dtype=dtype)
    bias = np.zeros(n, dtype=dtype) if with_bias else None
    for block, (f, b, _) in blocks.collect():
        factors[block::num_blocks] = f
        if with_bias:
            bias[block::num_blocks] = b
    return factors, bias


def fit_als(
    df: Any,
    *,
    user: str = "user",
    item: str = "item",
    rating: str = "rating",
    n_factors: int | None = None,
    reg: float | None = None,
    n_epochs: int | None = None,
    biased: bool = True,
    implicit: bool = False,
    alpha: float | None = None,
    num_blocks: int | None = None,
    random_state: Any = None,
    keep_seen: bool = True,
    callback: Any = None,
    **params: Any,
):
    """Fit ALS (or implicit-feedback ALS) on a Spark DataFrame of ratings.

    Blocked like MLlib's ALS: ids are encoded to contiguous indices on the cluster,
    users and items fall into ``num_blocks`` blocks each, the rating blocks are built
    and cached once, and each half-step ships every factor once to each block that
    rates it; the row solves are mfrec's numba kernels inside the executors. The
    initial factors are drawn as the local model draws them, so on the same data,
    seed and settings the result agrees with ``ALS(...).fit(ratings)`` to within
    float rounding.

    Parameters
    ----------
    df : pyspark.sql.DataFrame
        One row per rating; each (user, item) pair at most once.
    user, item, rating : str
        Column names. Ids may be integers or strings (as for :class:`mfrec.Ratings`).
    n_factors, reg, n_epochs : optional
        As for :class:`mfrec.models.ALS` (or :class:`~mfrec.models.ImplicitALS`); None
        takes the model's default.
    biased : bool, default True
        Global mean and user/item biases (explicit ALS only).
    implicit : bool, default False
        Fit :class:`~mfrec.models.ImplicitALS` (ratings read as interaction strengths).
    alpha : float, optional
        Confidence slope of implicit ALS.
    num_blocks : int, optional
        Blocks per side (default: Spark's default parallelism, at most the number of
        users or items). More blocks: less memory per task, more messages.
    random_state : None, int or numpy Generator
    keep_seen : bool, default True
        Collect the training pairs to the driver so the model's ``exclude_seen`` (and
        the ``.mfrec`` file) knows them, as for a locally fitted model. False keeps the
        driver's memory to the factors; the model then excludes nothing by itself.
    callback : callable, optional
        Called with each epoch's history record; returning False stops training.
    **params
        Other hyperparameters of the model (``reg_bias``, ``reg_row``, ``reg_bias_row``,
        ``init_std``, ``dtype``, ``cg_steps``).

    Returns
    -------
    ALS or ImplicitALS
        Fitted, with the DataFrame's ids; save, load, recommend and fold-in as usual.
    """
    require_pyspark()
    import scipy.sparse as sp
    from pyspark.sql import functions as F

    from mfrec.data.vocab import Vocabulary
    from mfrec.models import ALS, ImplicitALS
    from mfrec.models.sgd import init_factors

    given = {"n_factors": n_factors, "reg": reg, "n_epochs": n_epochs, **params}
    if implicit:
        if alpha is not None:
            given["alpha"] = alpha
        model = ImplicitALS(**{k: v for k, v in given.items() if v is not None})
    else:
        if alpha is not None:
            raise ParameterError("alpha is a parameter of implicit ALS: pass implicit=True")
        model = ALS(biased=biased, **{k: v for k, v in given.items() if v is not None})
    model.random_state = random_state
    model._validate_params()
    if num_blocks is not None and (not isinstance(num_blocks, int) or num_blocks < 1):
        raise ParameterError(f"num_blocks must be a positive int, got {num_blocks!r}")
    check_columns(df, {"user": user, "item": item, "rating": rating})

    started = time.perf_counter()
    spark = df.sparkSession
    sc = spark.sparkContext
    frame = df.select(
        F.col(user).alias("u"), F.col(item).alias("i"), F.col(rating).cast("float").alias("r")
    )
    summary = frame.agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(F.when(F.col("u").isNull() | F.col("i").isNull(), 1).otherwise(0)).alias("null_id"),
        F.sum(F.when(F.col("r").isNull() | F.isnan("r"), 1).otherwise(0)).alias("bad"),
        F.sum(F.when(F.abs(F.col("r")) == float("inf"), 1).otherwise(0)).alias("inf"),
        F.avg(F.col("r").cast("double")).alias("mean"),
        F.sum(F.col("r").cast("double")).alias("total"),
        F.min("r").alias("low"),
        F.max("r").alias("high"),
    ).first()
    if not summary["n"]:
        raise DataError("no ratings: the DataFrame is empty")
    if summary["null_id"]:
        raise DataError(
            f"{summary['null_id']} row(s) have a missing {user!r} or {item!r} id; drop them "
            "first (df.dropna(subset=[...]))"
        )
    if summary["bad"] or summary["inf"]:
        raise DataError(
            f"{summary['bad'] + summary['inf']} row(s) have a missing, non-numeric or "
            f"infinite {rating!r}; every rating must be a finite number"
        )
    if implicit and summary["low"] < 0:
        raise DataError(
            f"ImplicitALS reads interaction strengths, which must be >= 0 (got "
            f"{summary['low']:g}); convert explicit ratings with a threshold first"
        )
    n = int(summary["n"])
    users, _ = Vocabulary.encode(frame.select("u").distinct().toPandas()["u"], "user")
    items, _ = Vocabulary.encode(frame.select("i").distinct().toPandas()["i"], "item")
    n_users, n_items = len(users), len(items)
    if num_blocks is None:
        num_blocks = sc.defaultParallelism
    num_blocks = max(1, min(num_blocks, n_users, n_items))

    def mapping(vocab: Any, key: str, index: str) -> Any:
        import pandas as pd

        ids = vocab.ids if vocab.kind == "int" else vocab.ids.astype(str)
        table = pd.DataFrame({key: ids, index: np.arange(len(vocab), dtype=np.int32)})
        return spark.createDataFrame(table)

    encoded = (
        frame.join(mapping(users, "u", "uidx"), "u")
        .join(mapping(items, "i", "iidx"), "i")
        .select("uidx", "iidx", "r")
        .persist()
    )
    cached: list[Any] = [encoded]
    try:
        by_user, user_stats = _build_side(encoded, "uidx", "iidx", n_users, num_blocks)
        by_item, _ = _build_side(encoded, "iidx", "uidx", n_items, num_blocks)
        cached += [by_user.in_blocks, by_user.links_in, by_item.in_blocks, by_item.links_in]
        duplicates = sum(s[0] for s in user_stats)
        if duplicates:
            raise DataError(
                f"{duplicates} (user, item) pair(s) occur more than once; keep one rating "
                f"per pair first, e.g. df.groupBy({user!r}, {item!r}).agg(F.avg({rating!r}))"
            )
        seen = None
        if keep_seen:
            pairs = encoded.toPandas()
            seen = sp.csr_matrix(
                (
                    pairs["r"].to_numpy(np.float32),
                    (pairs["uidx"].to_numpy(np.int32), pairs["iidx"].to_numpy(np.int32)),
                ),
                shape=(n_users, n_items),
                dtype=np.float32,
            )
            seen.sort_indices()
        encoded.unpersist()

        model.users_, model.items_ = users, items
        model.global_mean_ = float(summary["mean"])
        model.rating_scale_ = (float(summary["low"]), float(summary["high"]))
        model.item_titles_ = None
        model._seen = (
            seen if seen is not None else sp.csr_matrix((n_users, n_items), dtype=np.float32)
        )
        model.history_ = []
        rng = check_random_state(random_state)
        run = _run_implicit if implicit else _run_explicit
        run(
            model,
            sc,
            by_user,
            by_item,
            n,
            n_users,
            n_items,
            num_blocks,
            rng,
            init_factors,
            callback,
            summary,
            cached,
        )
    finally:
        for rdd in cached:
            rdd.unpersist()
    model.fit_seconds_ = time.perf_counter() - started
    model.spark_blocks_ = num_blocks
    logger.info("fit_als: %d ratings, %d blocks, %.1f s", n, num_blocks, model.fit_seconds_)
    return model


def _run_explicit(
    model,
    sc,
    by_user,
    by_item,
    n,
    n_users,
    n_items,
    num_blocks,
    rng,
    init_factors,
    callback,
    summary,
    cached,
):
    k = model.n_factors
    dtype = np.dtype(model.dtype)
    use_bias = bool(model.biased)
    init_std = 1.0 / np.sqrt(k) if model.init_std is None else model.init_std
    item_factors = init_factors(rng, (n_items, k), init_std, dtype)
    item_bias = np.zeros(n_items, dtype=dtype) if use_bias else None
    state = {"items": _distribute(sc, item_factors, item_bias, num_blocks), "users": None}
    cached.append(state["items"])
    del item_factors
    settings = {
        "k": k,
        "use_bias": use_bias,
        "dtype": dtype.str,
        "offset": float(model.global_mean_) if use_bias else 0.0,
        "reg": float(model.reg),
        "reg_bias": float(model.reg if model.reg_bias is None else model.reg_bias),
        **dict(zip(("reg_row", "reg_bias_row"), model._fixed_row_penalty(), strict=True)),
    }

    def epoch(_: int) -> dict[str, float]:
        user_stats = _advance(
            state,
            "users",
            by_user,
            "items",
            _blocks.solve_explicit,
            {**settings, "sse": False},
            cached,
        )
        item_stats = _advance(
            state,
            "items",
            by_item,
            "users",
            _blocks.solve_explicit,
            {**settings, "sse": True},
            cached,
        )
        sse = sum(s["sse"] for s in item_stats)
        penalty = sum(s["penalty"] for s in user_stats) + sum(s["penalty"] for s in item_stats)
        return {"train_loss": float((sse + penalty) / n), "train_rmse": float(np.sqrt(sse / n))}

    model._run_epochs(model.n_epochs, epoch, None, callback, None)
    model.user_factors_, model.user_bias_ = _collect(
        state["users"], n_users, k, num_blocks, dtype, use_bias
    )
    model.item_factors_, model.item_bias_ = _collect(
        state["items"], n_items, k, num_blocks, dtype, use_bias
    )


def _run_implicit(
    model,
    sc,
    by_user,
    by_item,
    n,
    n_users,
    n_items,
    num_blocks,
    rng,
    init_factors,
    callback,
    summary,
    cached,
):
    from mfrec.models.implicit import _init

    k = model.n_factors
    users0 = _init(rng, (n_users, k), model.init_std)
    items0 = _init(rng, (n_items, k), model.init_std)
    state = {
        "users": _distribute(sc, users0, None, num_blocks),
        "items": _distribute(sc, items0, None, num_blocks),
    }
    cached += [state["users"], state["items"]]
    del users0, items0
    reg = float(model.reg)
    ridge = reg * np.eye(k)
    total_confidence = n_users * n_items + float(model.alpha) * float(summary["total"])
    settings = {"k": k, "alpha": float(model.alpha), "cg_steps": int(model.cg_steps)}
    grams = {"items": state["items"].map(_blocks.block_gram).reduce(np.add)}

    def epoch(_: int) -> dict[str, float]:
        G = (grams["items"] + ridge).astype(np.float32)
        step = {**settings, "G": G, "loss": False}
        user_stats = _advance(
            state, "users", by_user, "items", _blocks.solve_implicit, step, cached, warm=True
        )
        gram_x = np.sum([s["gram"] for s in user_stats], axis=0)
        G = (gram_x + ridge).astype(np.float32)
        step = {**settings, "G": G, "loss": True}
        item_stats = _advance(
            state, "items", by_item, "users", _blocks.solve_implicit, step, cached, warm=True
        )
        gram_y = np.sum([s["gram"] for s in item_stats], axis=0)
        grams["items"] = gram_y
        observed = sum(s["observed"] for s in item_stats)
        objective = float(
            np.sum(gram_x * gram_y) + observed + reg * (np.trace(gram_x) + np.trace(gram_y))
        )
        return {"train_loss": objective / total_confidence}

    model._run_epochs(model.n_epochs, epoch, None, callback)
    model.user_factors_, _ = _collect(state["users"], n_users, k, num_blocks, np.float32, False)
    model.item_factors_, _ = _collect(state["items"], n_items, k, num_blocks, np.float32, False)
    model.user_bias_ = None
    model.item_bias_ = None
