"""The top-N evaluation protocol: rank every candidate item for each test user, score
the lists against the user's relevant test items.

Protocol (what :func:`evaluate_ranking` does, for a model fitted on a fold's training
part and that fold's test part):

1. **Test users**: every user with at least one test rating.
2. **Relevant items** of a user: their test items rated ``>= relevance_threshold``
   (default 4, as on MovieLens' 1-5 scale); with ``relevance_threshold=None`` every test
   item is relevant (implicit feedback, where a test row *is* an interaction). A test
   item unknown to the model (no training rating) still counts as relevant -- the model
   cannot recommend it, which is a real miss -- and is counted in
   ``n_relevant_unknown_items``.
3. **Users without relevant items** are excluded from every mean and counted in
   ``n_users_no_relevant`` (see :mod:`mfrec.evaluation.ranking`).
4. **Candidates** of a user: every item known to the model (every item with a training
   rating) minus the items the user rated in training -- training items are always
   excluded, so nothing the user already rated can count as a hit. Items unknown to the
   model can never be recommended. A test user unknown to the model gets the model's
   documented fallback ranking (global mean + item bias), with nothing to exclude, and
   is counted in ``n_users_unknown``.
5. **Lists**: the model's batched top-N (:meth:`~mfrec.models.base.Recommender.recommend`
   via ``_recommend_indices``, ties broken by the lower item index) with N the largest
   cutoff asked for; each metric reads its first k entries. A user with fewer candidates
   than k gets a shorter list (the missing slots are misses).
6. ``mrr`` without a cutoff uses the rank of the user's best-ranked relevant item among
   *all* their candidates: read from the top-N list when it is there, else counted on
   the model's full score rows with the same exclusions and tie rule
   (:func:`first_relevant_rank`).

The metric definitions are in :mod:`mfrec.evaluation.ranking`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from mfrec.data.ratings import Ratings
from mfrec.evaluation.ranking import (
    MetricSpec,
    catalog_coverage,
    parse_metrics,
    user_scores,
)
from mfrec.exceptions import DataError
from mfrec.models.base import Recommender, _index_table


def evaluate_ranking(
    model: Recommender,
    test: Ratings,
    metrics: str | Iterable[str | MetricSpec] = ("ndcg@10", "recall@10"),
    *,
    relevance_threshold: float | None = 4.0,
    block_size: int | None = None,
) -> dict[str, Any]:
    """Ranking metrics of a fitted model on held-out ratings (protocol in the module
    docstring).

    Parameters
    ----------
    model : Recommender
        Fitted on the training part; its seen items are the training items excluded
        from each user's candidates.
    test : Ratings
        The held-out ratings.
    metrics : str or iterable
        Ranking metrics, e.g. ``"ndcg@10,recall@10,mrr"`` (see
        :func:`~mfrec.evaluation.ranking.parse_metrics`).
    relevance_threshold : float or None, default 4.0
        A test rating ``>= relevance_threshold`` marks a relevant item; None: all are.
    block_size : int, optional
        Users scored at once (see ``recommend``).

    Returns
    -------
    dict
        ``{metric: mean over evaluated users, ...}`` plus ``n_test_users``,
        ``n_users_evaluated``, ``n_users_no_relevant`` (excluded),
        ``n_users_unknown`` (evaluated with the fallback ranking), ``n_relevant``,
        ``n_relevant_unknown_items``, ``relevance_threshold`` and ``rank_seconds``.

    Raises
    ------
    DataError
        When no test user has a relevant item.
    """
    model._check_fitted()
    specs = parse_metrics([str(s) for s in _as_list(metrics)])
    rating = [str(s) for s in specs if not s.is_ranking]
    if rating:
        raise ValueError(f"{rating} are rating metrics; evaluate_ranking computes ranking ones")
    started = time.perf_counter()
    n_items = len(model.items_)
    relevant = (
        np.ones(len(test), dtype=bool)
        if relevance_threshold is None
        else test.rating >= relevance_threshold
    )
    # Test users, in the test vocabulary's order.
    test_users = np.unique(test.user_index)
    n_relevant_all = np.bincount(test.user_index[relevant], minlength=test.n_users)[test_users]
    evaluated = test_users[n_relevant_all > 0]
    n_relevant = n_relevant_all[n_relevant_all > 0]
    if len(evaluated) == 0:
        threshold = "any rating" if relevance_threshold is None else f">= {relevance_threshold:g}"
        raise DataError(
            f"no test user has a relevant item (rating {threshold}) among {len(test):,} test "
            "ratings; lower the relevance threshold (--relevance-threshold) or pass None"
        )
    row_of_user = np.full(test.n_users, -1, dtype=np.int64)
    row_of_user[evaluated] = np.arange(len(evaluated))
    model_user = _index_table(test.users, model.users_)[evaluated]
    item_table = _index_table(test.items, model.items_)
    rel_rows = row_of_user[test.user_index[relevant]]
    rel_items = item_table[test.item_index[relevant]].astype(np.int64)
    known_item = rel_items >= 0
    rel_keys = np.unique(rel_rows[known_item] * n_items + rel_items[known_item])

    full_mrr = any(s.name == "mrr" and s.k is None for s in specs)
    width = max([s.k for s in specs if s.k is not None] or [10])
    rec_idx, _ = model._recommend_indices(model_user, width, True, block_size)
    keys = np.arange(len(evaluated), dtype=np.int64)[:, None] * n_items + rec_idx
    hits = (rec_idx >= 0) & np.isin(keys, rel_keys)
    result: dict[str, Any] = {}
    for spec in specs:
        if spec.name == "coverage":
            result[str(spec)] = catalog_coverage(rec_idx, n_items, spec.k)
        elif spec.k is not None:
            result[str(spec)] = float(np.mean(user_scores(spec, hits, n_relevant)))
    if full_mrr:
        ranks = first_relevant_rank(model, model_user, rel_keys, rec_idx, hits, block_size)
        result["mrr"] = float(np.mean(np.where(np.isfinite(ranks), 1.0 / ranks, 0.0)))
    ordered = {str(s): result[str(s)] for s in specs}
    ordered.update(
        {
            "n_test_users": len(test_users),
            "n_users_evaluated": len(evaluated),
            "n_users_no_relevant": len(test_users) - len(evaluated),
            "n_users_unknown": int((model_user < 0).sum()),
            "n_relevant": int(relevant.sum()),
            "n_relevant_unknown_items": int((~known_item).sum()),
            "relevance_threshold": relevance_threshold,
            "rank_seconds": time.perf_counter() - started,
        }
    )
    return ordered


def _as_list(metrics: Any) -> list[Any]:
    if isinstance(metrics, MetricSpec):
        return [metrics]
    if isinstance(metrics, str):
        return metrics.split(",")
    return list(metrics)


def score_rows(model: Recommender, user_index: np.ndarray) -> np.ndarray:
    """float32 scores of every item for model user indices: the model's
    ``_score_block`` rows, and the fallback row (``-1``, an unknown user)."""
    known = user_index >= 0
    scores = np.empty((len(user_index), len(model.items_)), dtype=np.float32)
    if known.any():
        scores[known] = model._score_block(user_index[known])
    if not known.all():
        scores[~known] = model._fallback_item_scores()
    return scores


def first_relevant_rank(
    model: Recommender,
    user_index: np.ndarray,
    relevant_keys: np.ndarray,
    lists: np.ndarray,
    hits: np.ndarray,
    block_size: int | None = None,
) -> np.ndarray:
    """Rank (1 = best) of each user's best-ranked relevant item among all their
    candidates; ``inf`` when no relevant item is a candidate.

    ``relevant_keys`` holds ``row * n_items + item`` for row r of ``user_index``;
    ``lists`` and ``hits`` are the users' top-N lists (from ``_recommend_indices``) and
    their hit matrix. A first hit inside the lists gives the rank directly, so ``mrr``
    and ``mrr@N`` agree on it. Beyond the lists, the rank is counted on the full score
    rows (:func:`score_rows`): items scoring higher, plus equal-scoring items of lower
    index, the user's training items excluded -- one more pass of scoring, in blocks,
    for those users only.
    """
    n_items = len(model.items_)
    width = lists.shape[1]
    ranks = np.full(len(user_index), np.inf)
    found = hits.any(axis=1)
    ranks[found] = hits[found].argmax(axis=1) + 1.0
    # A list with empty slots holds every candidate: no hit there means no hit at all.
    pending = np.flatnonzero(~found & (lists[:, -1] >= 0))
    seen = model.seen_items
    key_rows = relevant_keys // n_items
    key_items = relevant_keys % n_items
    for start in range(0, len(pending), model._block_rows(block_size)):
        rows = pending[start : start + model._block_rows(block_size)]
        block = user_index[rows]
        scores = score_rows(model, block)
        for r, u in enumerate(block):
            if u >= 0:
                scores[r, seen.indices[seen.indptr[u] : seen.indptr[u + 1]]] = -np.inf
        lo = np.searchsorted(key_rows, rows, side="left")
        hi = np.searchsorted(key_rows, rows, side="right")
        owner = np.repeat(np.arange(len(rows)), hi - lo)
        take = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)] or [[]])
        items = key_items[take.astype(np.int64)]
        rel_scores = scores[owner, items]
        best_score = np.full(len(rows), -np.inf, dtype=np.float32)
        np.maximum.at(best_score, owner, rel_scores)
        # Among relevant items tied at the best score, the lowest index ranks first.
        best_item = np.full(len(rows), n_items, dtype=np.int64)
        at_best = rel_scores == best_score[owner]
        np.minimum.at(best_item, owner[at_best], items[at_best])
        columns = np.arange(n_items)
        before = (scores > best_score[:, None]).sum(axis=1) + (
            (scores == best_score[:, None]) & (columns < best_item[:, None])
        ).sum(axis=1)
        # Not in the top `width`, so at least width + 1 (guards a last-ulp disagreement
        # between these scores and the ones the lists were ranked by).
        rank = np.maximum(before + 1.0, width + 1.0)
        ranks[rows] = np.where(np.isfinite(best_score), rank, np.inf)
    return ranks
