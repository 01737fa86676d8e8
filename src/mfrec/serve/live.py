"""The model being served: one immutable snapshot at a time, swapped atomically on reload.

A request takes :attr:`LiveModel.current` once and uses that :class:`ModelState` to the
end, so a reload (which builds a new state beside the old one, then rebinds one
attribute) never changes the model under a request in flight.

The shared model is never mutated after it is loaded. A user's live history is their
training ratings plus their stored feedback (the latest rating of an item wins); when
they have feedback, their vector is re-solved from that whole history by the model's own
fold-in solve (the one ``fold_in`` and ``partial_fit`` use), and kept in a per-state
cache keyed by the user and the version of their feedback (the id of their latest row).
Ranking then runs on a shallow copy of the model that holds just that user -- the very
code that ranks stored users -- so a user with feedback gets exactly what
``partial_fit`` followed by ``recommend`` would give, without touching the shared model.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Users whose re-solved vectors a state keeps (least recently used beyond this).
OVERLAY_CACHE_USERS = 100_000
#: Items per block of the top-N threshold (:func:`_lower_bound_of_kth`).
RANK_BLOCK = 64


class UnknownIdError(LookupError):
    """An id the model does not know, where one is required."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotSupportedError(Exception):
    """The served model cannot do what was asked (e.g. fold-in for SVD++)."""


@dataclass
class UserVector:
    """One user's vector and history, ready to rank with."""

    factors: np.ndarray  # (1, k)
    bias: np.ndarray | None  # (1,)
    history_items: np.ndarray  # sorted int32 item indices of the whole history
    history_values: np.ndarray  # their ratings
    from_feedback: bool
    #: the model's own row for a training vector (-1 for a solved one): models whose
    #: scores hold more per-user state than the factors (SVD++) must score by the row
    user_index: int = -1


def id_text(value: Any) -> str:
    """The canonical text of a raw id, as the store keeps it."""
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)


def id_json(value: Any) -> int | str:
    """A raw id as JSON: integers stay integers."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return str(value)


@dataclass
class ModelState:
    """An immutable served model plus its caches."""

    model: Any
    path: str
    version: str
    loaded_at: float
    supports_fold_in: bool
    titles: np.ndarray | None
    lower_titles: list[str] | None
    ranker: Ranker | None = None
    _overlays: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- ids ------------------------------------------------------------------------
    def parse_ids(self, side: str, values: list[Any], field_name: str) -> np.ndarray:
        """Raw ids of ``side`` ("user"/"item") from JSON values or text: integer ids
        accept ``196`` and ``"196"``; string ids accept any string (or a number, as
        its text). A value that cannot be an id of this kind is an error naming
        ``field_name``."""
        vocab = self.model.users_ if side == "user" else self.model.items_
        if vocab.kind == "str":
            out = np.empty(len(values), dtype=object)
            for k, value in enumerate(values):
                if isinstance(value, bool) or not isinstance(value, (str, int)):
                    raise ValueError(f"{field_name}: {side} ids are strings, got {value!r}")
                out[k] = str(value)
            return out
        out = np.empty(len(values), dtype=object)
        for k, value in enumerate(values):
            if isinstance(value, bool):
                raise ValueError(f"{field_name}: {side} ids are integers, got {value!r}")
            if isinstance(value, int):
                out[k] = value
                continue
            text = str(value).strip() if isinstance(value, str) else None
            try:
                if text is None or not text.lstrip("-").isdigit():
                    raise ValueError
                out[k] = int(text)
            except ValueError:
                raise ValueError(
                    f"{field_name}: {side} ids are integers; {value!r} is not one"
                ) from None
            if vocab.kind == "uint" and out[k] < 0:
                raise ValueError(f"{field_name}: {side} ids are non-negative, got {value!r}")
        return out

    def lookup(self, side: str, ids: np.ndarray) -> np.ndarray:
        vocab = self.model.users_ if side == "user" else self.model.items_
        if len(ids) == 0:
            return np.zeros(0, dtype=np.int32)
        try:
            return vocab.lookup(ids)
        except Exception:  # ids beyond int64, None for a stored id of another kind, ...
            return np.array([_lookup_one(vocab, v) for v in ids], np.int32)

    def index_of(self, side: str, value: Any) -> int:
        """Index of one id from :meth:`parse_ids` (-1 if unknown): :meth:`lookup` for a
        single id, by one hash probe instead of an array round trip."""
        vocab = self.model.users_ if side == "user" else self.model.items_
        try:
            found = vocab.pd_index.get_loc(value)
        except Exception:  # unknown, or beyond what the index's dtype holds
            return -1
        return found if isinstance(found, int) else int(self.lookup(side, np.array([value]))[0])

    def lookup_parsed(self, side: str, values: list[Any]) -> np.ndarray:
        """:meth:`lookup` of ids from :meth:`parse_ids`, given as a list: hash probes for a
        few ids (a request's usual handful), the vectorised lookup for many."""
        if len(values) <= 32:
            return np.array([self.index_of(side, v) for v in values], dtype=np.int32)
        return self.lookup(side, np.array(values, dtype=object))

    def item_json(self, index: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        ids = self.model.items_.take(index)
        out = []
        for k in range(len(index)):
            entry = {"item": id_json(ids[k]), "score": float(scores[k])}
            entry["title"] = None if self.titles is None else str(self.titles[index[k]])
            out.append(entry)
        return out

    # -- user vectors ---------------------------------------------------------------
    def training_history(self, user_index: int) -> tuple[np.ndarray, np.ndarray]:
        seen = self.model._seen
        lo, hi = seen.indptr[user_index], seen.indptr[user_index + 1]
        return seen.indices[lo:hi].astype(np.int32), seen.data[lo:hi].astype(np.float64)

    def user_vector(self, user_key: str, user_index: int, version: int | None, rows) -> UserVector:
        """The user's vector from training (+ feedback ``rows`` when ``version`` is set).

        ``rows`` is a callable returning the user's stored feedback (called only on a
        cache miss)."""
        model = self.model
        if version is None or not self.supports_fold_in:
            if user_index < 0:
                raise UnknownIdError("user", f"unknown user {user_key!r}")
            items, values = self.training_history(user_index)
            bias = (
                None if model.user_bias_ is None else model.user_bias_[user_index : user_index + 1]
            )
            if version is not None:  # feedback the model cannot fold in: exclude it at least
                extra = self.feedback_items(rows())[0]
                items = np.union1d(items, extra).astype(np.int32)
                values = np.zeros(len(items))
            return UserVector(
                model.user_factors_[user_index : user_index + 1],
                bias,
                items,
                values,
                False,
                user_index,
            )
        with self._lock:
            cached = self._overlays.get(user_key)
            if cached is not None and cached[0] == version:
                self._overlays.move_to_end(user_key)
                return cached[1]
        items, values = self.feedback_items(rows())
        if user_index >= 0:
            train_items, train_values = self.training_history(user_index)
            keep = ~np.isin(train_items, items)
            items = np.concatenate([train_items[keep], items])
            values = np.concatenate([train_values[keep], values])
        order = np.argsort(items, kind="stable")
        vector = self.solve(items[order].astype(np.int32), values[order])
        with self._lock:
            self._overlays[user_key] = (version, vector)
            self._overlays.move_to_end(user_key)
            while len(self._overlays) > OVERLAY_CACHE_USERS:
                self._overlays.popitem(last=False)
        return vector

    def cached_vector(self, user_key: str) -> UserVector | None:
        """The last vector solved for this user (any version), or None."""
        with self._lock:
            cached = self._overlays.get(user_key)
        return None if cached is None else cached[1]

    def feedback_items(self, rows) -> tuple[np.ndarray, np.ndarray]:
        """Known item indices and ratings of stored rows, the latest per item."""
        latest: dict[str, float] = {}
        for row in rows:
            latest[row.item] = float(row.rating)
        if not latest:
            return np.zeros(0, np.int32), np.zeros(0)
        keys = list(latest)
        index = self.lookup("item", self.parse_stored_items(keys))
        values = np.fromiter(latest.values(), dtype=np.float64, count=len(keys))
        known = index >= 0
        return index[known], values[known]

    def parse_stored_items(self, keys: list[str]) -> np.ndarray:
        try:
            return self.parse_ids("item", keys, "item")
        except ValueError:  # a stored id of another kind: unknown to this model
            out = []
            for key in keys:
                try:
                    out.append(self.parse_ids("item", [key], "item")[0])
                except ValueError:
                    out.append(None)
            return np.array(out, dtype=object)

    def solve(self, items: np.ndarray, values: np.ndarray) -> UserVector:
        """The vector the model's fold-in solve gives these ratings (item indices)."""
        if not self.supports_fold_in:
            raise NotSupportedError(
                f"{type(self.model).__name__} does not support fold-in: recommendations "
                "for new ratings need a model such as biased-mf or als"
            )
        indptr = np.array([0, len(items)], dtype=np.int64)
        with _one_numba_thread():
            factors, bias = self.model._solve_users(indptr, items, values)
        return UserVector(factors, bias, items, values, True)

    # -- ranking --------------------------------------------------------------------
    def rank(
        self,
        vector: UserVector,
        n: int,
        *,
        exclude_seen: bool = True,
        exclude: np.ndarray | None = None,
        allow: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``n`` (item indices, float32 scores) for one user vector: the exact ranking
        (ties by lower item index) and scores that ``model.recommend`` gives."""
        banned = vector.history_items if exclude_seen else np.zeros(0, np.int32)
        if exclude is not None and len(exclude):
            banned = np.union1d(banned, exclude).astype(np.int32)
        if allow is not None:
            candidates = np.setdiff1d(np.unique(allow), banned).astype(np.int32)
            if len(candidates) == 0:
                return np.zeros(0, np.int32), np.zeros(0, np.float32)
            scores = self._exact(vector, candidates)
            order = np.lexsort((candidates, -scores))[:n]
            return candidates[order], scores[order].astype(np.float32)
        if self.ranker is None:
            return self._rank_by_model(vector, n, banned, exclude_seen)
        return self.ranker.top(vector, n, banned, self._exact)

    def _exact(self, vector: UserVector, items: np.ndarray) -> np.ndarray:
        """float64 scores of one user for ``items``, by the model's own pair scoring."""
        if vector.user_index >= 0:
            with _one_numba_thread():
                rows = np.full(len(items), vector.user_index, np.int32)
                return self.model._predict_indices(rows, items)
        single = copy.copy(self.model)
        single.user_factors_ = vector.factors
        if vector.bias is not None:
            single.user_bias_ = vector.bias
        with _one_numba_thread():
            return single._predict_indices(np.zeros(len(items), np.int32), items)

    def _rank_by_model(self, vector: UserVector, n: int, banned: np.ndarray, exclude_seen: bool):
        """Ranking through the model's batched top-N (models with their own scoring)."""
        import scipy.sparse as sp

        if vector.user_index >= 0:
            # the model's own row and seen items; enough extra places to drop the rest
            with _one_numba_thread():
                idx, scores = self.model._recommend_indices(
                    np.array([vector.user_index], np.int32), n + len(banned), exclude_seen
                )
            keep = np.isfinite(scores[0]) & ~np.isin(idx[0], banned)
            return idx[0][keep][:n], scores[0][keep][:n]
        single = copy.copy(self.model)
        single.user_factors_ = vector.factors
        if vector.bias is not None:
            single.user_bias_ = vector.bias
        banned = np.asarray(banned, dtype=np.int32)
        single._seen = sp.csr_matrix(
            (np.ones(len(banned), np.float32), banned, np.array([0, len(banned)], np.int32)),
            shape=(1, len(self.model.items_)),
        )
        with _one_numba_thread():
            idx, scores = single._recommend_indices(np.zeros(1, np.int32), n, True)
        valid = np.isfinite(scores[0])
        return idx[0][valid], scores[0][valid]

    def similar(self, item_index: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` items of highest factor cosine with one item (itself excluded),
        ties by lower index; float32 cosines."""
        unit, unit_t = self.model._unit_item_factors()
        sims = unit[item_index] @ unit_t
        sims[item_index] = -np.inf
        m = min(n, len(sims) - 1)
        if m <= 0:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        # every item of the top m is at least the bound; then an exact order among those
        starts = np.arange(0, len(sims), RANK_BLOCK)
        candidates = np.flatnonzero(sims >= _lower_bound_of_kth(sims, m, starts))
        top = candidates[np.lexsort((candidates, -sims[candidates]))[:m]]
        return top.astype(np.int32), sims[top]

    def predict(self, vector: UserVector | None, item_index: np.ndarray) -> np.ndarray:
        """Predicted ratings of one user (None: unknown, the fallback) for items."""
        model = self.model
        if vector is None:
            values = model._predict_indices(np.full(len(item_index), -1, np.int32), item_index)
        elif vector.user_index >= 0:
            values = self._exact(vector, item_index)
        else:
            single = copy.copy(model)
            single.user_factors_ = vector.factors
            if vector.bias is not None:
                single.user_bias_ = vector.bias
            values = single._predict_indices(np.zeros(len(item_index), np.int32), item_index)
        return np.clip(values, *model.rating_scale_)

    def search(self, query: str, limit: int) -> list[dict[str, Any]]:
        """Items whose title (or id) contains ``query``, case-insensitive, in
        vocabulary order."""
        needle = query.casefold().strip()
        ids = self.model.items_.ids
        out: list[dict[str, Any]] = []
        if not needle:
            return out
        for k in range(len(ids)):
            title = self.lower_titles[k] if self.lower_titles is not None else ""
            if needle in title or needle == str(ids[k]).casefold():
                out.append(
                    {
                        "item": id_json(ids[k]),
                        "title": None if self.titles is None else str(self.titles[k]),
                    }
                )
                if len(out) >= limit:
                    break
        return out


class Ranker:
    """Exact top-N for one user at BLAS speed: a float32 product scores every item, and
    the few items the product's error bound cannot rule out are rescored with the
    model's exact float64 score (the scheme of :mod:`mfrec.kernels.topk`, for one user:
    one matrix-vector product on the calling thread instead of a block kernel)."""

    def __init__(self, model) -> None:
        self.model = model
        q = model.item_factors_
        self.qt = model._item_factors_t()
        self.item_add = (
            np.zeros(q.shape[0], np.float32)
            if model.item_bias_ is None
            else model.item_bias_.astype(np.float32)
        )
        self.intercept = float(model._intercept())
        k = q.shape[1]
        unit = 2.0**-24
        # Higham's bound for a float32 dot product of k terms plus three additions,
        # doubled for the float64 -> float32 rounding of the factors and again for safety
        self.gamma = (2 * k + 8) * unit / (1 - (2 * k + 8) * unit)
        self.q_norm = float(np.sqrt(np.max(np.einsum("ij,ij->i", q, q, dtype=np.float64))))
        self.bi_max = float(np.max(np.abs(self.item_add))) if len(self.item_add) else 0.0
        self.block_starts = np.arange(0, q.shape[0], RANK_BLOCK)

    def top(self, vector: UserVector, n: int, banned: np.ndarray, exact) -> tuple:
        p = vector.factors[0]
        bias = 0.0 if vector.bias is None else float(vector.bias[0])
        scores = p.astype(np.float32) @ self.qt
        scores += self.item_add
        scores += np.float32(self.intercept + bias)
        if len(banned):
            scores[banned] = -np.inf
        m = min(int(n), len(scores) - len(banned))
        if m <= 0:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        p_norm = float(np.sqrt(np.dot(p.astype(np.float64), p.astype(np.float64))))
        slack = (
            4 * self.gamma * (p_norm * self.q_norm + abs(self.intercept) + abs(bias) + self.bi_max)
        )
        kth = _lower_bound_of_kth(scores, m, self.block_starts)
        # every item of the exact top m scores >= kth - 2 slack in float32
        candidates = np.flatnonzero(scores >= kth - 2 * slack).astype(np.int32)
        values = exact(vector, candidates)
        order = np.lexsort((candidates, -values))[:m]
        return candidates[order], values[order].astype(np.float32)


def _lower_bound_of_kth(scores: np.ndarray, m: int, block_starts: np.ndarray) -> float:
    """A value <= the ``m``-th largest of ``scores``, close to it, without a selection
    over every item: the ``m``-th largest of the block maxima (``m`` distinct blocks
    each hold an item at least that high). Exact when there are too few blocks."""
    if m > len(block_starts) // 4:
        return float(np.partition(scores, len(scores) - m)[len(scores) - m])
    block_max = np.maximum.reduceat(scores, block_starts)
    return float(np.partition(block_max, len(block_max) - m)[len(block_max) - m])


def _one_numba_thread():
    """Numba kernels of one request on the calling thread only. The serving threads
    are set to one thread once (the app's lifespan), so this is usually a no-op check
    rather than two thread-count switches per kernel call."""
    import numba

    if numba.get_num_threads() == 1:
        return contextlib.nullcontext()
    from mfrec._threads import numba_threads

    return numba_threads(1)


def _lookup_one(vocab, value: Any) -> int:
    """Index of one raw id, -1 when the vocabulary cannot hold it (None, too large)."""
    if value is None or (isinstance(value, int) and not -(2**63) <= value < 2**64):
        return -1
    try:
        return int(vocab.lookup([value])[0])
    except Exception:
        return -1


def load_state(path: str | os.PathLike[str]) -> ModelState:
    """Load and warm a model file; raises :class:`mfrec.exceptions.ModelFileError` (or
    :class:`NotSupportedError`) when it cannot be served."""
    import mfrec
    from mfrec.models.base import FactorModel

    path = str(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    model = mfrec.load(path)
    if not isinstance(model, FactorModel):
        raise NotSupportedError(
            f"{path} holds a {type(model).__name__}, which mfrec serve cannot serve"
        )
    try:
        model._check_fold_in()
        supports = model.n_factors_ + (model.user_bias_ is not None) > 0
    except NotImplementedError:
        supports = False
    titles = model.item_titles_
    ranker = Ranker(model) if model._uses_standard_scoring() and model.n_factors_ > 0 else None
    state = ModelState(
        model=model,
        path=path,
        version=digest.hexdigest()[:16],
        loaded_at=time.time(),
        supports_fold_in=supports,
        titles=titles,
        lower_titles=None if titles is None else [str(t).casefold() for t in titles],
        ranker=ranker,
    )
    _warm(state)
    return state


def _warm(state: ModelState) -> None:
    """Fill the model's lazy caches (and compile its kernels) before it serves, so that
    requests only ever read the shared model."""
    model = state.model
    model._item_factors_t()
    if model.n_factors_ > 0 and len(model.items_) > 1:
        model._unit_item_factors()
        state.similar(0, 1)
    if len(model.users_):
        state.rank(state.user_vector("", 0, None, list), 1)
    if state.supports_fold_in:
        model._fold_in_design()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state.rank(state.solve(np.zeros(1, np.int32), np.ones(1)), 1)


class LiveModel:
    """Holds the current :class:`ModelState`; :meth:`reload` swaps in a new one."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(Path(path))
        self.current: ModelState = load_state(self.path)
        self._reload_lock = threading.Lock()
        self.reloads = 0

    def reload(self, path: str | None = None) -> ModelState:
        """Load ``path`` (default: the file served now) and swap it in. On any error the
        old model keeps serving and the error propagates."""
        with self._reload_lock:
            target = str(path or self.path)
            state = load_state(target)
            self.current = state  # one reference rebind: atomic for every reader
            self.path = target
            self.reloads += 1
            logger.info("now serving %s (version %s)", target, state.version)
            return state
