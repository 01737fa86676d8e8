"""Top-N for every user on Spark, exact: the lists of the model's own ``recommend``."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np

from mfrec.exceptions import NotFittedError, ParameterError
from mfrec.spark._session import require_pyspark

#: Users per task by default: their factors, seen items and (cache-sized) score blocks
#: are all a task holds besides the item side.
DEFAULT_BLOCK_USERS = 16_384


def _spark_type(kind: str) -> str:
    return "long" if kind == "int" else "string"


def _item_side(model: Any) -> Any:
    """The model without its user side or seen matrix (what every task needs)."""
    import scipy.sparse as sp

    lite = copy.copy(model)
    fallback = model._fallback_item_scores()
    for key in ("user_factors_", "user_bias_", "users_"):
        if key in lite.__dict__:
            lite.__dict__[key] = None
    for key in ("_fold_in_cache", "_qt_cache"):
        lite.__dict__.pop(key, None)
    lite._seen = sp.csr_matrix((0, len(model.items_)), dtype=np.float32)
    lite.__dict__["_fallback_scores"] = fallback
    return lite


def top_n_block(lite: Any, payload: bytes, n: int, exclude_seen: bool):
    """Top-``n`` of one block of users (executor side): ``(user ids, rank, item ids,
    scores)`` as flat arrays, through the model's own exact ``_recommend_indices``."""
    import scipy.sparse as sp

    user_ids, factors, bias, indptr, indices = pickle.loads(payload)
    model = copy.copy(lite)
    fallback = lite.__dict__["_fallback_scores"]
    model._fallback_item_scores = lambda: fallback
    model.user_factors_ = factors
    model.user_bias_ = bias
    model._seen = sp.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr),
        shape=(len(user_ids), len(lite.items_)),
    )
    local = np.arange(len(user_ids), dtype=np.int32)
    idx, scores = model._recommend_indices(local, n, exclude_seen)
    valid = idx >= 0
    rows, ranks = np.nonzero(valid)
    items = lite.items_.take(idx[valid])
    return user_ids[rows], (ranks + 1).astype(np.int32), items, scores[valid]


def recommend_all(
    model: Any,
    spark: Any,
    n: int = 10,
    *,
    exclude_seen: bool = True,
    users: Any = None,
    block_users: int | None = None,
) -> Any:
    """The top-``n`` items of every user (or of ``users``), computed on the cluster.

    Each task scores one block of users against all items with the model's exact top-k
    code (:func:`mfrec.kernels.topk.recommend_exact`), so every list is the one
    ``model.recommend`` gives -- same items, same order, same float32 scores -- and a
    task's memory is its block of users plus the item side, whatever the number of
    users.

    Parameters
    ----------
    model : FactorModel
        A fitted factor model (from :func:`mfrec.spark.fit_als`, ``fit`` or ``mfrec.load``).
    spark : SparkSession
    n : int, default 10
    exclude_seen : bool, default True
        Leave out each user's training items (the model's ``seen_items``).
    users : sequence of raw ids, optional
        Default: every user the model knows. Unknown ids are an error.
    block_users : int, optional
        Users per block (default 16,384, fewer when needed to give every core work);
        the blocks are spread evenly over the default parallelism.

    Returns
    -------
    pyspark.sql.DataFrame
        Columns ``user``, ``rank`` (1 = best), ``item``, ``score``; a user with fewer
        than ``n`` unseen items has fewer rows. Write it with ``.write.parquet(path)``.
    """
    require_pyspark()
    import pandas as pd

    from mfrec.models.base import FactorModel

    if not isinstance(model, FactorModel):
        raise ParameterError(
            f"recommend_all needs a factor model (ALS, ImplicitALS, BiasedMF, ...), got "
            f"{type(model).__name__}"
        )
    if not model.is_fitted:
        raise NotFittedError(f"this {type(model).__name__} is not fitted yet")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError(f"n must be a positive int, got {n!r}")
    if block_users is not None and (not isinstance(block_users, int) or block_users < 1):
        raise ParameterError(f"block_users must be a positive int, got {block_users!r}")
    index = (
        np.arange(len(model.users_), dtype=np.int32)
        if users is None
        else np.asarray(model.users_.index(users), dtype=np.int32)
    )
    sc = spark.sparkContext
    if block_users is None:
        # Equal blocks, a multiple of the cores in number, so that every task gets the
        # same work (createDataFrame deals the blocks out evenly).
        cores = max(1, sc.defaultParallelism)
        rounds = max(1, -(-len(index) // (cores * DEFAULT_BLOCK_USERS)))
        block_users = max(1, -(-len(index) // (cores * rounds)))
    seen = model._seen
    user_kind = _spark_type(model.users_.kind)
    blocks = []
    for start in range(0, len(index), block_users):
        part = index[start : start + block_users]
        rows = seen[part] if exclude_seen else None
        ids = model.users_.take(part)
        if user_kind == "string":
            ids = np.asarray([str(v) for v in ids], dtype=object)
        payload = (
            ids,
            np.ascontiguousarray(model.user_factors_[part]),
            None if model.user_bias_ is None else np.ascontiguousarray(model.user_bias_[part]),
            rows.indptr if rows is not None else np.zeros(len(part) + 1, dtype=np.int32),
            rows.indices if rows is not None else np.zeros(0, dtype=np.int32),
        )
        blocks.append((len(blocks), pickle.dumps(payload, protocol=5)))
    lite = sc.broadcast(_item_side(model))
    item_kind = _spark_type(model.items_.kind)
    schema = f"user {user_kind}, rank int, item {item_kind}, score float"
    count = int(n)

    def score(frames: Any) -> Any:
        import warnings

        from mfrec._threads import numba_threads
        from mfrec.spark._blocks import _threads

        # The task's own cores only (spark.task.cpus): numba's default, every core of the
        # machine, would oversubscribe an executor that runs a task per core.
        for frame in frames:
            for payload in frame["payload"]:
                with warnings.catch_warnings(), numba_threads(_threads()):
                    warnings.simplefilter("ignore")
                    user_ids, ranks, items, scores = top_n_block(
                        lite.value, payload, count, exclude_seen
                    )
                if item_kind == "string":
                    items = np.asarray([str(v) for v in items], dtype=object)
                yield pd.DataFrame(
                    {"user": user_ids, "rank": ranks, "item": items, "score": scores}
                )

    frame = pd.DataFrame(blocks, columns=["block", "payload"])
    # createDataFrame slices the blocks evenly over the default parallelism: no shuffle.
    source = spark.createDataFrame(frame, "block int, payload binary")
    return source.mapInPandas(score, schema)
