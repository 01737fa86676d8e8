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


def _static_in(row: Any) -> tuple:
    return row[1], ("in", bytes(row[3]))


def _static_link(row: Any) -> tuple:
    return row[2], ("link", row[1], _blocks.loads(row[3]))


def _build(encoded: Any, row: str, col: str, n_rows: int, num_blocks: int, keys: list) -> Any:
    """The cached rows ``(kind, dst, src, payload, duplicates)`` of ``row``'s side: its
    in-blocks (keyed by ``dst``) and the out-links (positions of the rows that ``col``'s
    block ``src`` sends to ``dst``)."""
    from pyspark.sql import functions as F

    def build(key: tuple, frame: Any) -> Any:
        return _blocks.build_blocks(key[1:], frame, num_blocks, n_rows)

    blk = (F.col(row) % num_blocks).cast("int")
    frame = encoded.select(
        F.col(row).alias("row"),
        F.col(col).alias("col"),
        "r",
        blk.alias("blk"),
        F.element_at(F.array(*[F.lit(v) for v in keys]), blk + 1).alias("key"),
    )
    # An explicit repartition on a key that hashes block b to partition b: one task per
    # block, never two blocks in one task (as hashing the block number itself can do:
    # at 2 blocks both landed in one task), nor coalesced by adaptive execution.
    return (
        frame.repartition(num_blocks, "key")
        .groupBy("key", "blk")
        .applyInPandas(build, _blocks.BUILD_SCHEMA)
        .persist()
    )


def _partition_keys(spark: Any, num_blocks: int) -> list[int]:
    """For each block b, an int whose hash partitioning (Spark's ``pmod(hash(x), n)``,
    what ``repartition(n, col)`` uses) is b; b itself where none is found."""
    from pyspark.sql import functions as F

    found = (
        spark.range(0, 64 * num_blocks + 64)
        .select(F.col("id").cast("int").alias("x"))
        .select("x", F.expr(f"pmod(hash(x), {num_blocks})").alias("p"))
        .groupBy("p")
        .agg(F.min("x").alias("x"))
        .collect()
    )
    keys = {int(r["p"]): int(r["x"]) for r in found}
    return [keys.get(b, b) for b in range(num_blocks)]


def _static(sc: Any, own: Any, other: Any, num_blocks: int) -> Any:
    """One side's static records, one partition per block, cached: its in-blocks and
    the links from its blocks to the other side's (built with the other side's blocks).
    """
    records = sc.union(
        [
            own.where(f"kind = {_blocks.KIND_IN_BLOCK}").rdd.map(_static_in),
            other.where(f"kind = {_blocks.KIND_OUT_LINK}").rdd.map(_static_link),
        ]
    )
    return records.partitionBy(num_blocks, _identity).persist()


def _keyed(sc: Any, records: list, num_blocks: int) -> Any:
    return sc.parallelize(records, num_blocks).partitionBy(num_blocks, _identity)


class _Engine:
    """The iterations: each half-step is one Spark stage per side (solve, then send the
    new factors to the other side's blocks that need them, through one shuffle), and an
    epoch is one job; its output is cached and locally checkpointed, so the lineage
    stays one epoch long."""

    def __init__(self, sc: Any, static: dict, num_blocks: int, cached: list) -> None:
        self.sc = sc
        self.static = static  # {"users": rdd, "items": rdd}
        self.num_blocks = num_blocks
        self.cached = cached
        self.state = None  # the messages to the user blocks, cached

    def _step(self, side: str, incoming: Any, solve: Any, settings: dict, report: Any,
              send_only: bool = False) -> Any:  # fmt: skip
        from functools import partial

        joined = self.sc.union([self.static[side], incoming])
        if joined.getNumPartitions() != self.num_blocks:  # not a partitioner-aware union
            raise RuntimeError(
                f"{joined.getNumPartitions()} partitions, expected {self.num_blocks}"
            )
        step = partial(
            _blocks.half_step, solve=solve, settings=settings, report=report,
            num_blocks=self.num_blocks, send_only=send_only,
        )  # fmt: skip
        return joined.mapPartitionsWithIndex(step).partitionBy(self.num_blocks, _identity)

    def _settle(self, messages: Any) -> None:
        messages.persist()
        messages.localCheckpoint()
        messages._jrdd.count()  # counted by the JVM: no Python worker reads it back
        if self.state is not None:
            self.state.unpersist()
        self.state = messages
        self.cached.append(messages)

    def start(self, items: Any, users: Any, settings: dict) -> None:
        """The initial item factors (and user factors, if given) sent to the user blocks."""
        incoming = items if users is None else self.sc.union([items, users])
        report = self.sc.accumulator([], _blocks.StatsParam())
        self._settle(self._step("items", incoming, None, settings, report, send_only=True))

    def epoch(self, solve: Any, user_settings: dict, item_settings: dict) -> tuple:
        """Users from items, then items from users: (user stats, item stats) per block."""
        users_report = self.sc.accumulator([], _blocks.StatsParam())
        items_report = self.sc.accumulator([], _blocks.StatsParam())
        to_items = self._step("users", self.state, solve, user_settings, users_report)
        self._settle(self._step("items", to_items, solve, item_settings, items_report))
        out = []
        for report in (users_report, items_report):
            stats = dict(report.value)  # a retried task reports its block again
            if len(stats) != self.num_blocks:
                raise RuntimeError(f"{len(stats)} block(s) reported, expected {self.num_blocks}")
            out.append([stats[b] for b in range(self.num_blocks)])
        failed = sum(s.get("failed", 0) for side in out for s in side)
        if failed:
            raise DivergenceError(
                f"ALS on Spark: {failed} row system(s) became singular or non-finite. "
                "Try stronger regularisation."
            )
        return out[0], out[1]

    def collect(self, n_users: int, n_items: int, k: int, dtype: Any, with_bias: bool):
        """The current factors of both sides (users', items' factors and biases)."""
        nb = self.num_blocks
        carried = self.state.filter(lambda kv: kv[1][0] in ("own", "transit")).collect()
        sides = {"own": (n_users, {}), "transit": (n_items, {})}
        for block, (tag, f, b) in carried:
            sides[tag][1][block] = (f, b)
        out = []
        for tag in ("own", "transit"):
            n, blocks = sides[tag]
            if len(blocks) != nb:
                raise RuntimeError(f"collected {len(blocks)} block(s) of a side, expected {nb}")
            factors = np.zeros((n, k), dtype=dtype)
            bias = np.zeros(n, dtype=dtype) if with_bias else None
            for block, (f, b) in blocks.items():
                factors[block::nb] = f
                if with_bias:
                    bias[block::nb] = b
            out.append((factors, bias))
        return out


def _blocks_of(factors: np.ndarray, bias: np.ndarray | None, num_blocks: int) -> list:
    return [
        (
            j,
            (
                "own",
                np.ascontiguousarray(factors[j::num_blocks]),
                None if bias is None else np.ascontiguousarray(bias[j::num_blocks]),
            ),
        )
        for j in range(num_blocks)
    ]


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
    seed and settings the result agrees with ``ALS(..., patience=None).fit(ratings)``
    to within float rounding. Every one of ``n_epochs`` runs: early stopping (the
    local ALS's default) would need a held-out slice and a refit, which the distributed
    fit does not do.

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

    if params.get("patience") is not None:
        raise ParameterError(
            "fit_als runs every one of n_epochs (no early stopping on Spark): drop "
            "patience and choose n_epochs, e.g. by a local fit on a sample with patience"
        )
    given = {"n_factors": n_factors, "reg": reg, "n_epochs": n_epochs, **params}
    if implicit:
        if alpha is not None:
            given["alpha"] = alpha
        model = ImplicitALS(**{k: v for k, v in given.items() if v is not None})
    else:
        if alpha is not None:
            raise ParameterError("alpha is a parameter of implicit ALS: pass implicit=True")
        model = ALS(biased=biased, **{k: v for k, v in given.items() if v is not None})
        model.patience = None  # every epoch, as above
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
        keys = _partition_keys(spark, num_blocks)
        built_users = _build(encoded, "uidx", "iidx", n_users, num_blocks, keys)
        built_items = _build(encoded, "iidx", "uidx", n_items, num_blocks, keys)
        cached += [built_users, built_items]
        duplicates = built_users.agg(F.sum("duplicates")).first()[0] or 0
        if duplicates:
            raise DataError(
                f"{duplicates} (user, item) pair(s) occur more than once; keep one rating "
                f"per pair first, e.g. df.groupBy({user!r}, {item!r}).agg(F.avg({rating!r}))"
            )
        static = {
            "users": _static(sc, built_users, built_items, num_blocks),
            "items": _static(sc, built_items, built_users, num_blocks),
        }
        cached += list(static.values())
        for rdd in static.values():
            rdd._jrdd.count()
        built_users.unpersist()
        built_items.unpersist()
        engine = _Engine(sc, static, num_blocks, cached)
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
            engine,
            n,
            n_users,
            n_items,
            num_blocks,
            rng,
            init_factors,
            callback,
            summary,
        )
    finally:
        for rdd in cached:
            rdd.unpersist()
    model.fit_seconds_ = time.perf_counter() - started
    model.spark_blocks_ = num_blocks
    logger.info("fit_als: %d ratings, %d blocks, %.1f s", n, num_blocks, model.fit_seconds_)
    return model


def _run_explicit(
    model, sc, engine, n, n_users, n_items, num_blocks, rng, init_factors, callback, summary
):
    k = model.n_factors
    dtype = np.dtype(model.dtype)
    use_bias = bool(model.biased)
    init_std = 1.0 / np.sqrt(k) if model.init_std is None else model.init_std
    item_factors = init_factors(rng, (n_items, k), init_std, dtype)
    item_bias = np.zeros(n_items, dtype=dtype) if use_bias else None
    items = _keyed(sc, _blocks_of(item_factors, item_bias, num_blocks), num_blocks)
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
    engine.start(items, None, settings)

    def epoch(_: int) -> dict[str, float]:
        user_stats, item_stats = engine.epoch(
            _blocks.solve_explicit, {**settings, "sse": False}, {**settings, "sse": True}
        )
        sse = sum(s["sse"] for s in item_stats)
        penalty = sum(s["penalty"] for s in user_stats) + sum(s["penalty"] for s in item_stats)
        return {"train_loss": float((sse + penalty) / n), "train_rmse": float(np.sqrt(sse / n))}

    model._run_epochs(model.n_epochs, epoch, None, callback, None)
    (model.user_factors_, model.user_bias_), (model.item_factors_, model.item_bias_) = (
        engine.collect(n_users, n_items, k, dtype, use_bias)
    )


def _run_implicit(
    model, sc, engine, n, n_users, n_items, num_blocks, rng, init_factors, callback, summary
):
    from mfrec.models.implicit import _init

    k = model.n_factors
    users0 = _init(rng, (n_users, k), model.init_std)
    items0 = _init(rng, (n_items, k), model.init_std)
    items = _keyed(sc, _blocks_of(items0, None, num_blocks), num_blocks)
    users = [(j, ("transit", f, b)) for j, (_, f, b) in _blocks_of(users0, None, num_blocks)]
    users = _keyed(sc, users, num_blocks)
    del users0, items0
    reg = float(model.reg)
    total_confidence = n_users * n_items + float(model.alpha) * float(summary["total"])
    settings = {"k": k, "alpha": float(model.alpha), "cg_steps": int(model.cg_steps), "reg": reg}
    engine.start(items, users, settings)

    def epoch(_: int) -> dict[str, float]:
        user_stats, item_stats = engine.epoch(
            _blocks.solve_implicit, {**settings, "loss": False}, {**settings, "loss": True}
        )
        gram_x = np.sum([s["gram"] for s in user_stats], axis=0)
        gram_y = np.sum([s["gram"] for s in item_stats], axis=0)
        observed = sum(s["observed"] for s in item_stats)
        objective = float(
            np.sum(gram_x * gram_y) + observed + reg * (np.trace(gram_x) + np.trace(gram_y))
        )
        return {"train_loss": objective / total_confidence}

    model._run_epochs(model.n_epochs, epoch, None, callback)
    (model.user_factors_, _), (model.item_factors_, _) = engine.collect(
        n_users, n_items, k, np.float32, False
    )
    model.user_bias_ = None
    model.item_bias_ = None
