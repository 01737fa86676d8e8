"""Exact top-N and similar items of factor models, at BLAS speed.

The block of users is scored with one float32 matrix product; the few items that the
product's rounding-error bound cannot rule out are rescored exactly
(:func:`mfrec.kernels.topk.recommend_exact`), so the lists equal those of ranking every
item by ``predict``. :class:`~mfrec.models.base.FactorModel` mixes this in; the service
and ``mfrec.spark.recommend_all`` rank with the same code.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from mfrec.exceptions import ParameterError

#: ``recommend`` scores users in blocks of at most this many bytes of float32 scores.
DEFAULT_BLOCK_BYTES = 64 * 2**20
#: Block size of the rescoring top-N path: small enough to stay in cache.
CACHE_BLOCK_BYTES = 8 * 2**20
#: Users per block of ``iter_recommendations`` on the rescoring path, whose scores are
#: computed in cache-sized blocks inside: a block costs only its lists in memory.
LIST_BLOCK_USERS = 16_384


class Recommendations(NamedTuple):
    """Top-N lists: ``item_ids`` and ``scores``, best first.

    For one user both are 1-D and hold only real recommendations. For several users
    they are 2-D (one row per user, in the order asked); a user with fewer than ``n``
    candidate items (one who rated almost the whole catalogue) has the rest of the row
    padded with score ``-inf`` and item id ``-1`` (integer ids) or ``""`` (string ids).
    :meth:`to_frame` gives the long form without padding.
    """

    item_ids: np.ndarray
    scores: np.ndarray

    def to_frame(self, users: Any = None):
        """A DataFrame (user, rank, item, score) without padded slots."""
        import pandas as pd

        ids = np.atleast_2d(self.item_ids)
        scores = np.atleast_2d(self.scores)
        valid = np.isfinite(scores)
        rows, ranks = np.nonzero(valid)
        frame = pd.DataFrame({"rank": ranks + 1, "item": ids[valid], "score": scores[valid]})
        if users is not None:
            users = np.atleast_1d(np.asarray(users, dtype=object))
            frame.insert(0, "user", users[rows])
        return frame


class TopN:
    """Exact top-N (``recommend``'s engine) and ``similar_items`` for
    :class:`~mfrec.models.base.FactorModel`."""

    def _list_block_rows(self, block_size: int | None) -> int:
        if block_size is None and self._uses_standard_scoring():
            return LIST_BLOCK_USERS
        return super()._list_block_rows(block_size)

    def _recommend_indices(
        self, user_index: np.ndarray, n: int, exclude_seen: bool, block_size: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-n at BLAS speed: each block of users is scored with one float32
        matrix product, then the few items that the product's error bound cannot rule
        out are rescored with the exact (predict) score (:func:`mfrec.kernels.topk.
        recommend_exact`). The ranking is therefore the exact one -- the same for a user
        alone or in any batch -- and each reported score is float32(predict(user, item))."""
        if not self._uses_standard_scoring():
            return super()._recommend_indices(user_index, n, exclude_seen, block_size)
        from mfrec._threads import blas_threads, threads_for_work
        from mfrec.kernels.topk import recommend_exact

        n = min(int(n), len(self.items_))
        # Users per block: their scores (block x n_items float32) stay in cache while
        # they are selected and rescored. A larger block_size only bounds memory, never
        # enlarges the blocks: a block beyond malloc's mmap threshold would be fresh
        # pages on every call, and first-touching them costs more than the scoring.
        rows = self._block_rows(None, CACHE_BLOCK_BYTES)
        if block_size is not None:
            rows = min(rows, self._block_rows(block_size))
        users = np.ascontiguousarray(user_index, dtype=np.int32)
        out_idx = np.full((len(users), n), -1, dtype=np.int32)
        out_scores = np.full((len(users), n), -np.inf, dtype=np.float32)
        seen = self._seen if exclude_seen else None
        indptr = seen.indptr if seen is not None else np.zeros(1, dtype=np.int32)
        indices = seen.indices if seen is not None else np.zeros(0, dtype=np.int32)
        P, Q = self.user_factors_, self.item_factors_
        bu = self.user_bias_ if self.user_bias_ is not None else _EMPTY
        bi = self.item_bias_ if self.item_bias_ is not None else _EMPTY
        intercept = self._intercept()
        fallback = self._fallback_item_scores()
        item_add = bi.astype(np.float32, copy=False)
        # Higham's bound for a float32 dot product of k terms plus three additions,
        # doubled for the float64 -> float32 rounding of the factors and again for safety.
        k = Q.shape[1]
        unit = 2.0**-24
        gamma = (2 * k + 8) * unit / (1 - (2 * k + 8) * unit)
        q_norm = float(np.sqrt(np.max(np.einsum("ij,ij->i", Q, Q, dtype=np.float64))))
        bi_max = float(np.max(np.abs(bi))) if len(bi) else 0.0
        known = users >= 0
        known_users = users[known]
        p = P[known_users]
        bu_abs = np.abs(bu[known_users].astype(np.float64)) if len(bu) else 0.0
        p_norm = np.sqrt(np.einsum("ij,ij->i", p, p, dtype=np.float64))
        slack = np.empty(len(users), dtype=np.float64)
        slack[known] = 4 * gamma * (p_norm * q_norm + abs(intercept) + bu_abs + bi_max)
        # unknown rows: three float32 roundings (cast, minus b_i, plus b_i), doubled
        slack[~known] = 8 * unit * (float(np.max(np.abs(fallback))) + bi_max)
        row_base = np.zeros(len(users), dtype=np.float32)
        row_base[known] = np.float32(intercept)
        if len(bu):
            row_base[known] += bu[known_users].astype(np.float32)
        # numba's threads run the products (one pool, no contention), as many as the
        # block of users x items x factors merits.
        work = len(users) * Q.shape[0] * (k + 1)
        with blas_threads(1), threads_for_work(work):
            recommend_exact(
                P.astype(np.float32, copy=False), self._item_factors_t(), users, row_base,
                item_add, slack, indptr, indices, P, Q, bu, bi, intercept, fallback, rows,
                out_idx, out_scores,
            )  # fmt: skip
        return out_idx, out_scores

    # -- similar items ----------------------------------------------------------------
    def _unit_item_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 item factors scaled to unit length (zero rows stay zero), and their
        transpose; cached per factor array."""
        cached = getattr(self, "_unit_cache", None)
        if cached is not None and cached[0] is self.item_factors_:
            return cached[1]
        q = self.item_factors_.astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", q, q))
        unit = (q / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32)
        pair = (unit, np.ascontiguousarray(unit.T))
        self._unit_cache = (self.item_factors_, pair)
        return pair

    def similar_items(
        self, item_ids: Any, n: int = 10, *, block_size: int | None = None
    ) -> Recommendations:
        """The ``n`` items most similar to each of ``item_ids``: cosine similarity of the
        item factors, the item itself excluded.

        Parameters
        ----------
        item_ids : raw id or sequence of raw ids
            Items known to the model (an unknown one is a :class:`KeyError`).
        n : int, default 10
        block_size : int, optional
            Items scored at once (memory: block_size x n_items float32); default: as
            many as fit in 64 MiB.

        Returns
        -------
        Recommendations
            ``(item_ids, scores)`` with cosine similarities in [-1, 1], best first, ties
            broken by lower item index; 1-D for one id, 2-D (padded as in
            :meth:`recommend`) for a sequence. An item with all-zero factors has
            similarity 0 to every item.
        """
        from mfrec.kernels.score import score_block
        from mfrec.kernels.topk import topk_rows

        self._check_fitted()
        _check_n(n)
        if self.n_factors_ == 0:
            raise NotImplementedError(
                f"{type(self).__name__} has no item factors (0 latent dimensions), so it "
                "has no latent space to measure item similarity in"
            )
        single = np.ndim(item_ids) == 0
        index = self.items_.index(item_ids)
        unit, unit_t = self._unit_item_factors()
        width = min(int(n), len(self.items_) - 1)
        out_idx = np.full((len(index), width), -1, dtype=np.int32)
        out_scores = np.full((len(index), width), -np.inf, dtype=np.float32)
        rows = self._block_rows(block_size)
        for start in range(0, len(index) if width > 0 else 0, rows):
            block = np.ascontiguousarray(index[start : start + rows], dtype=np.int32)
            scores = np.empty((len(block), len(self.items_)), dtype=np.float32)
            score_block(unit, unit_t, _EMPTY, _EMPTY, 0.0, block, scores)
            local = np.arange(len(block), dtype=np.int32)
            topk_rows(
                scores,
                local,
                np.arange(len(block) + 1, dtype=np.int32),
                block,
                out_idx[start : start + rows],
                out_scores[start : start + rows],
            )
        if single:
            valid = np.isfinite(out_scores[0])
            return Recommendations(self.items_.take(out_idx[0][valid]), out_scores[0][valid])
        return Recommendations(self._ids_with_padding(out_idx), out_scores)


def _check_n(n: Any) -> None:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ParameterError(f"n must be a positive int, got {n!r}")


_EMPTY = np.zeros(0, dtype=np.float32)


def _as32(bias: np.ndarray | None) -> np.ndarray:
    return _EMPTY if bias is None else bias.astype(np.float32, copy=False)
