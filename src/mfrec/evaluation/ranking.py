"""Top-N ranking metrics with exact definitions.

Notation, for one user: the ranked list ``L`` holds the user's recommendations best first
(at most ``k`` of them count; a list may be shorter than ``k`` when the user has fewer
candidate items); ``R`` is the user's set of *relevant* test items, ``|R| >= 1``;
``hit_j = 1`` when ``L_j`` is in ``R`` (j = 1, 2, ...), and 0 for a missing slot.

- ``precision@k = (sum_{j<=k} hit_j) / k``. The denominator is always ``k``: slots a short
  list leaves empty count as misses (not ``/ len(L)``, not ``/ min(k, |R|)``).
- ``recall@k = (sum_{j<=k} hit_j) / |R|``.
- ``hit@k`` (hit rate) ``= 1`` if some ``hit_j = 1`` for ``j <= k``, else 0.
- ``ndcg@k = DCG@k / IDCG@k`` with binary gains and a log2 discount:
  ``DCG@k = sum_{j<=k} hit_j / log2(j + 1)`` and ``IDCG@k = sum_{j=1}^{min(k, |R|)}
  1 / log2(j + 1)``, the DCG of a list holding relevant items in its first
  ``min(k, |R|)`` slots.
- ``map@k``: the mean over users of ``AP@k = (1 / min(k, |R|)) sum_{j<=k} hit_j *
  precision@j``, normalised by ``min(k, |R|)`` (the most hits a list of ``k`` can hold),
  so that a perfect list scores 1.
- ``mrr@k``: the mean of ``1 / j*``, ``j*`` the rank of the first hit within the top
  ``k`` (0 when there is none). ``mrr`` without a cutoff uses the user's full ranking of
  candidate items (see :mod:`mfrec.evaluation.topn`).
- ``coverage@k`` (catalogue coverage): the number of distinct items in the top-``k``
  lists of all evaluated users, divided by the number of items in the catalogue (every
  item the model knows).

Every per-user metric is averaged over users with equal weight. The one rule for users
without relevant test items (``|R| = 0``): they are **excluded from the means** (recall,
NDCG and AP are undefined for them) and **counted** in the report
(``n_users_no_relevant``). The functions here refuse such rows rather than return NaN.

Ties in scores are not a metric's business: the lists come from
:meth:`~mfrec.models.base.Recommender.recommend`, which breaks ties by the lower item
index, so every list -- and every metric -- is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np

#: Metric names the evaluation understands, with their meaning.
RANKING_METRICS = {
    "precision": "precision@k: hits in the top k / k",
    "recall": "recall@k: hits in the top k / relevant items",
    "ndcg": "ndcg@k: binary-gain, log2-discount NDCG",
    "map": "map@k: mean average precision, normalised by min(k, relevant items)",
    "mrr": "mrr (full ranking) or mrr@k: mean reciprocal rank of the first hit",
    "hit": "hit@k: share of users with at least one hit in the top k",
    "coverage": "coverage@k: share of the catalogue in some user's top k",
}
_ALIASES = {"hr": "hit", "hit_rate": "hit", "hitrate": "hit", "prec": "precision"}
#: Rating-prediction metric names (see :mod:`mfrec.evaluation.metrics`).
_RATING = ("rmse", "mae", "mse")


class MetricSpec(NamedTuple):
    """A parsed metric name: ``name`` and the cutoff ``k`` (None: no cutoff)."""

    name: str
    k: int | None = None

    def __str__(self) -> str:
        return self.name if self.k is None else f"{self.name}@{self.k}"

    @property
    def is_ranking(self) -> bool:
        return self.name in RANKING_METRICS


def parse_metrics(metrics: str | Iterable[str]) -> list[MetricSpec]:
    """Parse ``"rmse,ndcg@10,mrr"`` (or a sequence of such names) into :class:`MetricSpec`.

    Rating metrics (rmse, mae, mse) take no cutoff; ranking metrics need one (``ndcg@10``)
    except ``mrr``, which without one ranks all candidates. Names are case-insensitive;
    duplicates are dropped.

    Raises
    ------
    ValueError
        For an unknown name or a missing or invalid cutoff; the message lists the names.
    """
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    specs: list[MetricSpec] = []
    for raw in items:
        text = str(raw).strip().lower()
        if not text:
            continue
        match = re.fullmatch(r"([a-z_]+)(?:@(\S+))?", text)
        name = match.group(1) if match else text
        name = _ALIASES.get(name, name)
        if match is None or (name not in RANKING_METRICS and name not in _RATING):
            raise ValueError(f"unknown metric {raw!r}; {_known()}")
        cutoff = match.group(2)
        if name in _RATING:
            if cutoff is not None:
                raise ValueError(f"{name} is a rating metric and takes no cutoff (got {raw!r})")
            spec = MetricSpec(name)
        elif cutoff is None:
            if name != "mrr":
                raise ValueError(f"{name} needs a cutoff, e.g. {name}@10 (got {raw!r})")
            spec = MetricSpec(name)
        else:
            if not re.fullmatch(r"\d+", cutoff) or int(cutoff) < 1:
                raise ValueError(f"the cutoff of {raw!r} must be a positive integer")
            spec = MetricSpec(name, int(cutoff))
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise ValueError(f"no metric given; {_known()}")
    return specs


def _known() -> str:
    return (
        "known metrics: rmse, mae, mse, and ranking metrics with a cutoff: "
        "precision@K, recall@K, ndcg@K, map@K, hit@K, coverage@K, mrr@K, and mrr"
    )


# -- building the hit matrix ------------------------------------------------------------
def hit_matrix(
    recommended: Sequence[Sequence[Any]],
    relevant: Sequence[Collection[Any]],
    k: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The hit matrix of ranked lists against relevant sets (raw ids, any hashable kind).

    Parameters
    ----------
    recommended : sequence of sequences
        One ranked list per user, best first; lists may differ in length.
    relevant : sequence of collections
        The relevant items of each user (same order as ``recommended``).
    k : int, optional
        Columns of the result (default: the longest list). Lists are cut at ``k``;
        shorter lists are padded with misses.

    Returns
    -------
    hits : ndarray of bool, shape (n_users, k)
    n_relevant : ndarray of int64, shape (n_users,)
        ``|R|`` of each user.

    Raises
    ------
    ValueError
        When the two sequences differ in length or a list repeats an item.
    """
    if len(recommended) != len(relevant):
        raise ValueError(
            f"{len(recommended)} recommendation lists for {len(relevant)} relevant sets"
        )
    width = max((len(r) for r in recommended), default=0) if k is None else int(k)
    hits = np.zeros((len(recommended), width), dtype=bool)
    n_relevant = np.zeros(len(recommended), dtype=np.int64)
    for row, (items, rel) in enumerate(zip(recommended, relevant, strict=True)):
        items = list(items)
        if len(set(items)) != len(items):
            raise ValueError(f"recommendation list {row} repeats an item: {items}")
        rel_set = set(rel)
        n_relevant[row] = len(rel_set)
        for j, item in enumerate(items[:width]):
            hits[row, j] = item in rel_set
    return hits, n_relevant


def _check(hits: np.ndarray, k: int, n_relevant: np.ndarray | None = None) -> np.ndarray:
    hits = np.asarray(hits, dtype=bool)
    if hits.ndim != 2:
        raise ValueError(f"hits must be a 2-D (users x ranks) matrix, got shape {hits.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    if n_relevant is not None:
        n_relevant = np.asarray(n_relevant)
        if n_relevant.shape != (hits.shape[0],):
            raise ValueError(
                f"n_relevant has shape {n_relevant.shape}, expected ({hits.shape[0]},)"
            )
        if (n_relevant < 1).any():
            raise ValueError(
                f"{int((n_relevant < 1).sum())} users have no relevant item; exclude them "
                "first (the documented rule: they are left out of the mean and counted)"
            )
        if (hits.sum(axis=1) > n_relevant).any():
            raise ValueError("a user has more hits than relevant items")
    # A list shorter than k pads with misses.
    if hits.shape[1] < k:
        hits = np.pad(hits, ((0, 0), (0, k - hits.shape[1])))
    return hits[:, :k]


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


# -- per-user metrics --------------------------------------------------------------------
def precision_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Per-user precision@k: hits in the first ``k`` ranks / ``k``."""
    return _check(hits, k).sum(axis=1) / float(k)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user recall@k: hits in the first ``k`` ranks / ``|R|``."""
    h = _check(hits, k, n_relevant)
    return h.sum(axis=1) / np.asarray(n_relevant, dtype=np.float64)


def hit_rate_at_k(hits: np.ndarray, k: int) -> np.ndarray:
    """Per-user hit@k: 1.0 when some item of the first ``k`` is relevant, else 0.0."""
    return _check(hits, k).any(axis=1).astype(np.float64)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k with binary gains, ``1 / log2(rank + 1)`` discounts and the ideal
    DCG of ``min(k, |R|)`` relevant items in the first ranks."""
    h = _check(hits, k, n_relevant)
    disc = _discounts(k)
    dcg = h @ disc
    ideal = np.cumsum(disc)[np.minimum(np.asarray(n_relevant), k) - 1]
    return dcg / ideal


def average_precision_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Per-user AP@k = ``sum_j hit_j precision@j / min(k, |R|)`` over the first ``k``."""
    h = _check(hits, k, n_relevant)
    precision_at_j = np.cumsum(h, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    return (precision_at_j * h).sum(axis=1) / np.minimum(np.asarray(n_relevant), k)


def reciprocal_rank(hits: np.ndarray, k: int | None = None) -> np.ndarray:
    """Per-user ``1 / rank`` of the first hit within the first ``k`` ranks (all columns
    when ``k`` is None), 0.0 when there is none."""
    h = np.asarray(hits, dtype=bool) if k is None else _check(hits, k)
    if h.shape[1] == 0:
        return np.zeros(h.shape[0])
    first = h.argmax(axis=1)
    return np.where(h.any(axis=1), 1.0 / (first + 1.0), 0.0)


def catalog_coverage(recommended_index: np.ndarray, n_items: int, k: int) -> float:
    """Share of the ``n_items`` catalogue appearing in some row's first ``k`` columns.

    ``recommended_index`` holds item indices (0 .. n_items - 1) per row, ``-1`` for an
    empty slot.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be positive, got {n_items}")
    top = np.asarray(recommended_index)[:, :k]
    top = top[top >= 0]
    if top.size and top.max() >= n_items:
        raise ValueError(f"an item index {int(top.max())} is outside the catalogue of {n_items}")
    return float(np.unique(top).size / n_items)


def user_scores(spec: MetricSpec, hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-user values of one per-user ranking metric (all but coverage)."""
    k = spec.k
    if spec.name == "precision":
        return precision_at_k(hits, k)
    if spec.name == "recall":
        return recall_at_k(hits, n_relevant, k)
    if spec.name == "ndcg":
        return ndcg_at_k(hits, n_relevant, k)
    if spec.name == "map":
        return average_precision_at_k(hits, n_relevant, k)
    if spec.name == "hit":
        return hit_rate_at_k(hits, k)
    if spec.name == "mrr":
        return reciprocal_rank(hits, k)
    raise ValueError(f"{spec} is not a per-user ranking metric")


def score_lists(
    recommended: Sequence[Sequence[Any]],
    relevant: Sequence[Collection[Any]],
    metrics: str | Iterable[str],
    *,
    catalog: Collection[Any] | None = None,
) -> dict[str, Any]:
    """Mean ranking metrics of given top-N lists (raw ids), applying the documented rules.

    Users with no relevant item are left out of the means and counted in
    ``n_users_no_relevant``. ``mrr`` without a cutoff ranks only what is in the lists.
    ``coverage@k`` needs the ``catalog`` (all recommendable items).

    Returns
    -------
    dict
        ``{str(metric): mean, ..., "n_users": ..., "n_users_evaluated": ...,
        "n_users_no_relevant": ...}``
    """
    specs = parse_metrics(metrics)
    rating = [str(s) for s in specs if not s.is_ranking]
    if rating:
        raise ValueError(f"{rating} are rating metrics; score_lists computes ranking metrics")
    width = max([s.k for s in specs if s.k is not None] + [max(map(len, recommended), default=0)])
    hits, n_relevant = hit_matrix(recommended, relevant, width)
    keep = n_relevant > 0
    out: dict[str, Any] = {}
    for spec in specs:
        if spec.name == "coverage":
            if catalog is None:
                raise ValueError("coverage needs the catalog of recommendable items")
            index = {item: j for j, item in enumerate(catalog)}
            rows = [
                [index.get(item, -1) for item in list(lst)[: spec.k]]
                for lst, kept in zip(recommended, keep, strict=True)
                if kept
            ]
            matrix = np.full((len(rows), spec.k), -1, dtype=np.int64)
            for r, row in enumerate(rows):
                matrix[r, : len(row)] = row
            out[str(spec)] = catalog_coverage(matrix, len(index), spec.k)
        elif not keep.any():
            out[str(spec)] = None
        elif spec.k is None:
            out[str(spec)] = float(np.mean(reciprocal_rank(hits[keep])))
        else:
            out[str(spec)] = float(np.mean(user_scores(spec, hits[keep], n_relevant[keep])))
    out["n_users"] = len(recommended)
    out["n_users_evaluated"] = int(keep.sum())
    out["n_users_no_relevant"] = int((~keep).sum())
    return out
