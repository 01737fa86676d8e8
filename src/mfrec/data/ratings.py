"""Ratings: validated (user, item, rating[, timestamp]) columns with two vocabularies.

The one in-memory form of explicit feedback in mfrec. Ids are mapped to contiguous
int32 indices once, here; ratings are float32; timestamps (optional) int64 seconds. Rows
keep their input order (the official ML-100K splits depend on it). Arrays are read-only:
a split or a subset is a new ``Ratings`` sharing the vocabularies, never a mutation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mfrec.data.vocab import Vocabulary, _describe_row, show
from mfrec.exceptions import DataError

DuplicatePolicy = Literal["error", "last", "mean"]
DUPLICATE_POLICIES = ("error", "last", "mean")


def _readonly(arr: np.ndarray) -> np.ndarray:
    arr.flags.writeable = False
    return arr


class Ratings:
    """Explicit ratings with a vocabulary per side.

    Build one with :meth:`from_frame`, :meth:`from_arrays`, :func:`mfrec.read_ratings`
    or :func:`mfrec.load_dataset`; the constructor itself trusts its (index) arguments.

    Attributes
    ----------
    user_index, item_index : ndarray of int32
        Index of each rating's user and item in :attr:`users` / :attr:`items`.
    rating : ndarray of float32
    timestamp : ndarray of int64 or None
        Seconds since the epoch, when known.
    users, items : Vocabulary
    scale : (float, float) or None
        The declared rating scale (e.g. ``(1, 5)``), checked on construction.
    item_info : pandas.DataFrame or None
        Item metadata (``title``, ``year``, ``genres``, ...) indexed by raw item id.
    name : str or None
        Where the data came from (``"ml-100k"``, a file name, ...).
    """

    def __init__(
        self,
        user_index: np.ndarray,
        item_index: np.ndarray,
        rating: np.ndarray,
        users: Vocabulary,
        items: Vocabulary,
        timestamp: np.ndarray | None = None,
        scale: tuple[float, float] | None = None,
        item_info: pd.DataFrame | None = None,
        name: str | None = None,
    ) -> None:
        n = len(rating)
        if not (len(user_index) == len(item_index) == n) or (
            timestamp is not None and len(timestamp) != n
        ):
            raise DataError("user, item, rating and timestamp columns must have the same length")
        self.user_index = _readonly(np.ascontiguousarray(user_index, dtype=np.int32))
        self.item_index = _readonly(np.ascontiguousarray(item_index, dtype=np.int32))
        self.rating = _readonly(np.ascontiguousarray(rating, dtype=np.float32))
        self.timestamp = (
            None
            if timestamp is None
            else _readonly(np.ascontiguousarray(timestamp, dtype=np.int64))
        )
        self.users = users
        self.items = items
        self.scale = None if scale is None else (float(scale[0]), float(scale[1]))
        self.item_info = item_info
        self.name = name
        self._csr: sp.csr_matrix | None = None
        self._csc: sp.csr_matrix | None = None

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        user: str = "user",
        item: str = "item",
        rating: str = "rating",
        timestamp: str | None = None,
        *,
        scale: tuple[float, float] | None = None,
        duplicates: DuplicatePolicy = "error",
        item_info: pd.DataFrame | None = None,
        name: str | None = None,
        describe_row: Callable[[int], str] = _describe_row,
    ) -> Ratings:
        """Validate a DataFrame of ratings.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per rating.
        user, item, rating, timestamp : str
            Column names (``timestamp`` optional).
        scale : (low, high), optional
            Declared rating scale; a rating outside it is an error.
        duplicates : {"error", "last", "mean"}, default "error"
            What to do when a (user, item) pair occurs more than once: refuse (the
            default, so that nothing is silently dropped), keep the last occurrence in
            row order, or average them (the latest timestamp is kept).
        item_info : pandas.DataFrame, optional
            Item metadata indexed by raw item id (titles for display).
        """
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(frame).__name__}")
        wanted = [c for c in (user, item, rating, timestamp) if c is not None]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise DataError(
                f"missing column(s) {missing}; the data has columns "
                f"{list(map(str, frame.columns))}. "
                "Name the right ones with user=, item=, rating= (or --columns on the command line)."
            )
        return cls.from_arrays(
            frame[user],
            frame[item],
            frame[rating],
            None if timestamp is None else frame[timestamp],
            scale=scale,
            duplicates=duplicates,
            item_info=item_info,
            name=name,
            describe_row=describe_row,
        )

    @classmethod
    def from_arrays(
        cls,
        users: Any,
        items: Any,
        ratings: Any,
        timestamps: Any = None,
        *,
        scale: tuple[float, float] | None = None,
        duplicates: DuplicatePolicy = "error",
        item_info: pd.DataFrame | None = None,
        name: str | None = None,
        describe_row: Callable[[int], str] = _describe_row,
    ) -> Ratings:
        """Validate parallel arrays of raw user ids, item ids and ratings.

        See :meth:`from_frame` for the parameters and the duplicate policy.
        """
        if duplicates not in DUPLICATE_POLICIES:
            raise DataError(f"duplicates must be one of {DUPLICATE_POLICIES}, got {duplicates!r}")
        n = len(ratings)
        if n == 0:
            raise DataError("no ratings: the input is empty")
        if len(users) != n or len(items) != n or (timestamps is not None and len(timestamps) != n):
            raise DataError(
                f"columns differ in length: {len(users)} users, {len(items)} items, {n} ratings"
                + ("" if timestamps is None else f", {len(timestamps)} timestamps")
            )
        if scale is not None:
            scale = _check_scale(scale)
        values = _validate_values(ratings, scale, describe_row)
        times = None if timestamps is None else _validate_timestamps(timestamps, describe_row)
        user_vocab, u_idx = Vocabulary.encode(users, "user", describe_row)
        item_vocab, i_idx = Vocabulary.encode(items, "item", describe_row)
        u_idx, i_idx, values, times = _resolve_duplicates(
            u_idx, i_idx, values, times, user_vocab, item_vocab, duplicates, describe_row
        )
        return cls(u_idx, i_idx, values, user_vocab, item_vocab, times, scale, item_info, name)

    # -- basic facts -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rating)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def density(self) -> float:
        return len(self) / max(1, self.n_users * self.n_items)

    def __repr__(self) -> str:
        scale = "" if self.scale is None else f", scale {self.scale[0]:g}-{self.scale[1]:g}"
        label = f"{self.name}: " if self.name else ""
        return (
            f"Ratings({label}{len(self):,} ratings, {self.n_users:,} users, "
            f"{self.n_items:,} items{scale})"
        )

    def rating_range(self) -> tuple[float, float]:
        """The declared scale, or the observed (min, max) when none was declared."""
        if self.scale is not None:
            return self.scale
        return float(self.rating.min()), float(self.rating.max())

    def user_counts(self) -> np.ndarray:
        """Number of ratings of each user index."""
        return np.bincount(self.user_index, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Number of ratings of each item index."""
        return np.bincount(self.item_index, minlength=self.n_items)

    # -- views -----------------------------------------------------------------------
    def to_csr(self) -> sp.csr_matrix:
        """users x items CSR matrix of float32 ratings (built once, then cached)."""
        if self._csr is None:
            m = sp.csr_matrix(
                (self.rating, (self.user_index, self.item_index)),
                shape=(self.n_users, self.n_items),
                dtype=np.float32,
            )
            m.sort_indices()
            self._csr = m
        return self._csr

    def to_csc(self) -> sp.csr_matrix:
        """items x users CSR matrix (the transpose of :meth:`to_csr`, cached)."""
        if self._csc is None:
            m = self.to_csr().T.tocsr()
            m.sort_indices()
            self._csc = m
        return self._csc

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with raw ids: columns user, item, rating[, timestamp]."""
        data = {
            "user": self.users.take(self.user_index),
            "item": self.items.take(self.item_index),
            "rating": self.rating,
        }
        if self.timestamp is not None:
            data["timestamp"] = self.timestamp
        return pd.DataFrame(data)

    def subset(self, rows: np.ndarray) -> Ratings:
        """The ratings at ``rows`` (int positions or a boolean mask), same vocabularies."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if len(rows) != len(self):
                raise DataError(f"boolean mask of length {len(rows)} for {len(self)} ratings")
            rows = np.flatnonzero(rows)
        return Ratings(
            self.user_index[rows],
            self.item_index[rows],
            self.rating[rows],
            self.users,
            self.items,
            None if self.timestamp is None else self.timestamp[rows],
            self.scale,
            self.item_info,
            self.name,
        )

    def compact(self) -> Ratings:
        """The same ratings with vocabularies cut to the ids that occur (self if none
        are missing). Models fit on compacted data, so that an id with no training
        rating is unknown to them rather than silently untrained."""
        users_present = self.user_counts() > 0
        items_present = self.item_counts() > 0
        if users_present.all() and items_present.all():
            return self
        u_keep = np.flatnonzero(users_present)
        i_keep = np.flatnonzero(items_present)
        u_map = np.cumsum(users_present, dtype=np.int64) - 1
        i_map = np.cumsum(items_present, dtype=np.int64) - 1
        return Ratings(
            u_map[self.user_index],
            i_map[self.item_index],
            self.rating,
            self.users.subset(u_keep),
            self.items.subset(i_keep),
            self.timestamp,
            self.scale,
            self.item_info,
            self.name,
        )

    def item_titles(self) -> np.ndarray | None:
        """Display title of every item index (``None`` when there is no metadata)."""
        if self.item_info is None or "title" not in self.item_info.columns:
            return None
        titles = self.item_info["title"].reindex(pd.Index(self.items.ids))
        return np.asarray(titles.fillna("").astype(str).to_numpy(), dtype=object)


def _as_array(values: Any) -> np.ndarray:
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy()
    if isinstance(values, np.ndarray):
        return values
    arr = np.asarray(values, dtype=object)
    # Plain numbers come back as a numeric array; anything else stays object for checks.
    if pd.api.types.infer_dtype(arr, skipna=True) in ("integer", "floating", "mixed-integer-float"):
        return arr.astype(np.float64)
    return arr


def _check_scale(scale: Any) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in scale)
    except (TypeError, ValueError):
        raise DataError(f"scale must be a pair (low, high), got {scale!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise DataError(f"scale must be finite with low < high, got {scale!r}")
    return low, high


def _validate_values(ratings: Any, scale, describe_row) -> np.ndarray:
    raw = ratings.to_numpy() if isinstance(ratings, pd.Series) else _as_array(ratings)
    if raw.ndim != 1:
        raise DataError(f"ratings must be one-dimensional, got shape {raw.shape}")
    if raw.dtype.kind == "b":
        raise DataError("ratings must be numbers, got booleans")
    if raw.dtype == np.float32:
        values = raw  # checked as is: no float64 round trip for 25M ratings
    elif raw.dtype.kind in "iuf":
        values = raw.astype(np.float64, copy=False)
    else:
        if pd.api.types.infer_dtype(raw, skipna=True) != "string":
            flags = [isinstance(v, (bool, np.bool_)) for v in raw]
            if any(flags):
                pos = flags.index(True)
                raise DataError(
                    f"ratings must be numbers, got the boolean {raw[pos]!r} at {describe_row(pos)}"
                )
        values = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & ~pd.isna(raw)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise DataError(f"non-numeric rating {show(raw[pos])} at {describe_row(pos)}")
    nan = np.isnan(values)
    if nan.any():
        pos = int(np.flatnonzero(nan)[0])
        raise DataError(
            f"missing rating (NaN) at {describe_row(pos)} ({int(nan.sum())} in all); "
            "drop those rows or fill them before building Ratings"
        )
    inf = np.isinf(values)
    if inf.any():
        pos = int(np.flatnonzero(inf)[0])
        raise DataError(f"infinite rating {values[pos]} at {describe_row(pos)}")
    if scale is not None:
        out = (values < scale[0]) | (values > scale[1])
        if out.any():
            pos = int(np.flatnonzero(out)[0])
            raise DataError(
                f"rating {values[pos]:g} at {describe_row(pos)} is outside the declared scale "
                f"{scale[0]:g}-{scale[1]:g} ({int(out.sum())} such ratings); fix the data or "
                "declare the right scale"
            )
    with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
        stored = values.astype(np.float32, copy=False)
    if stored is not values:
        # Checked again after the cast: 1e39 is finite as float64 but inf as float32.
        big = ~np.isfinite(stored)
        if big.any():
            pos = int(np.flatnonzero(big)[0])
            raise DataError(
                f"rating {values[pos]:g} at {describe_row(pos)} is too large to store "
                "(ratings are float32, at most about 3.4e38); fix the data"
            )
    return stored


def _validate_timestamps(timestamps: Any, describe_row) -> np.ndarray:
    raw = timestamps.to_numpy() if isinstance(timestamps, pd.Series) else _as_array(timestamps)
    if raw.dtype.kind == "M":
        nat = np.isnat(raw)
        if nat.any():
            pos = int(np.flatnonzero(nat)[0])
            raise DataError(f"missing timestamp at {describe_row(pos)}")
        return raw.astype("datetime64[s]").astype(np.int64)
    if raw.dtype.kind == "i":
        return raw.astype(np.int64, copy=False)
    if raw.dtype.kind == "u":
        over = raw > np.iinfo(np.int64).max
        if over.any():
            pos = int(np.flatnonzero(over)[0])
            raise DataError(
                f"timestamp {show(raw[pos])} at {describe_row(pos)} is out of range "
                "(seconds since 1970 that fit int64)"
            )
        return raw.astype(np.int64)
    values = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DataError(f"timestamp {show(raw[pos])} at {describe_row(pos)} is not a number")
    # float64 -> int64 is undefined beyond +-2**63: check before the cast.
    over = np.abs(values) >= 2.0**63
    if over.any():
        pos = int(np.flatnonzero(over)[0])
        raise DataError(
            f"timestamp {show(raw[pos])} at {describe_row(pos)} is out of range "
            "(seconds since 1970 that fit int64)"
        )
    return values.astype(np.int64)


def _resolve_duplicates(u_idx, i_idx, values, times, users, items, policy, describe_row):
    from mfrec.kernels.ingest import has_duplicate_pairs

    if not has_duplicate_pairs(u_idx, i_idx, len(users), len(items)):
        return u_idx, i_idx, values, times
    key = u_idx.astype(np.int64)  # built in place: one array the size of the column
    key *= len(items)
    key += i_idx
    # Group equal keys; a stable sort keeps each group's rows in input order.
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    del sorted_key
    first_rows = order[starts]  # first occurrence of each pair
    last_rows = order[np.r_[starts[1:], len(order)] - 1]  # last occurrence
    if policy == "error":
        repeated = np.ones(len(order), dtype=bool)
        repeated[starts] = False
        later = order[repeated]  # every occurrence after a pair's first
        pos = int(later.min())
        first = int(np.flatnonzero(key == key[pos])[0])
        user_id, item_id = users.ids[u_idx[pos]], items.ids[i_idx[pos]]
        raise DataError(
            f"duplicate rating of item {show(item_id)} by user {show(user_id)} at "
            f"{describe_row(first)} "
            f"and {describe_row(pos)} ({len(later)} duplicates in all); pass "
            "duplicates='last' or 'mean' (--duplicates on the command line) to resolve them"
        )
    if policy == "last":
        keep = np.sort(last_rows)  # rows in input order, each pair at its last occurrence
        return u_idx[keep], i_idx[keep], values[keep], None if times is None else times[keep]
    # mean: one row per pair, at the position of its first occurrence; the latest time.
    counts = np.diff(np.r_[starts, len(order)])
    means = np.add.reduceat(values[order].astype(np.float64), starts) / counts
    new_times = None if times is None else np.maximum.reduceat(times[order], starts)
    place = np.argsort(first_rows, kind="stable")
    rows = first_rows[place]
    return (
        u_idx[rows],
        i_idx[rows],
        means[place].astype(np.float32),
        None if new_times is None else new_times[place],
    )
