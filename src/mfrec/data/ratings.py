"""Ratings: validated (user, item, rating[, timestamp]) columns with two vocabularies.

The one in-memory form of explicit feedback in mfrec. Ids are mapped to contiguous
int32 indices once, here; ratings are float32; timestamps (optional) int64 seconds. Rows
keep their input order (the official ML-100K splits depend on it). Arrays are read-only:
a split or a subset is a new ``Ratings`` sharing the vocabularies, never a mutation.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mfrec.data.vocab import Vocabulary, _describe_row, normalize_ids, show
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
        self._user_counts: np.ndarray | None = None
        self._item_counts: np.ndarray | None = None

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
                "Name the right ones with user=, item=, rating=."
            )
        _refuse_missing_ratings(frame, rating)
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

    @classmethod
    def from_matrix(
        cls,
        matrix: Any,
        *,
        missing: float | None = np.nan,
        users: Any = None,
        items: Any = None,
        orient: str = "users x items",
        scale: tuple[float, float] | None = None,
        item_info: pd.DataFrame | None = None,
        name: str | None = None,
    ) -> Ratings:
        """Ratings from a dense or sparse rating matrix (one row per user, or per item).

        A cell is a rating unless it is *missing*: not stored (SciPy sparse input), or
        equal to ``missing`` (NaN by default; ``missing=0`` for the classic "0 =
        unknown" matrix). Ratings are kept in row-major order of the users x items
        matrix, and the vocabularies hold every row and column label in matrix order,
        also those with no rating (a model fitted on the ratings knows only the rated
        ones; see :meth:`compact`).

        Parameters
        ----------
        matrix : ndarray, pandas.DataFrame or scipy.sparse matrix/array
            2-D numbers. A DataFrame's index and columns become the ids. For sparse
            input the stored entries are the ratings: an explicitly stored 0 *is* a
            rating of 0 (pass ``missing=0`` to treat stored zeros as unknown too), and
            a cell stored twice (COO duplicates, which SciPy would sum) is an error.
        missing : float or None, default NaN
            The value that marks an unknown rating. NaN cells are an error when
            ``missing`` is a number (say which value marks unknown ratings); None means
            no cell is missing (every cell must be a finite rating).
        users, items : array-like, optional
            Raw ids of the matrix's user and item axes (ints or strings, distinct).
            Default: the DataFrame's labels, else positions ``0..n-1`` (as pandas).
        orient : {"users x items", "items x users"}, default "users x items"
            Whether rows are users (columns items) or rows are items (columns users).
        scale : (low, high), optional
            Declared rating scale; a rating outside it is an error.
        item_info : pandas.DataFrame, optional
            Item metadata indexed by raw item id (titles for display).
        name : str, optional

        Examples
        --------
        >>> R = np.array([[5, 3, 0, 1], [4, 0, 0, 1], [0, 1, 5, 4]])
        >>> Ratings.from_matrix(R, missing=0)
        Ratings(8 ratings, 3 users, 4 items)
        """
        axes = _ORIENTS.get(" ".join(str(orient).lower().split()))
        if axes is None:
            raise DataError(
                f"orient must be 'users x items' (rows are users) or 'items x users' "
                f"(rows are items), got {orient!r}"
            )
        if missing is not None:
            try:
                missing = float(missing)
            except (TypeError, ValueError):
                raise DataError(f"missing must be a number, NaN or None, got {missing!r}") from None
            if np.isinf(missing):
                raise DataError(f"missing must be finite or NaN, got {missing!r}")
        if sp.issparse(matrix):
            rows, cols, values, shape = _sparse_cells(matrix, missing)
            row_labels = col_labels = None
        else:
            values2d, row_labels, col_labels = _dense_values(matrix)
            shape = values2d.shape
            rows, cols, values = _dense_cells(values2d, missing)
        if shape[0] == 0 or shape[1] == 0:
            raise DataError(f"the matrix is empty (shape {shape[0]} x {shape[1]})")
        row_what, col_what = axes
        given = {"user": users, "item": items}
        row_ids = _axis_ids(given[row_what], row_labels, shape[0], row_what, "rows", orient)
        col_ids = _axis_ids(given[col_what], col_labels, shape[1], col_what, "columns", orient)
        if len(values) == 0:
            shown = "NaN" if missing is not None and np.isnan(missing) else f"{missing:g}"
            raise DataError(
                f"no ratings: every cell of the {shape[0]} x {shape[1]} matrix is missing "
                f"(missing={shown}); pass the value that marks unknown ratings as missing="
            )
        row_vocab = Vocabulary(row_ids, row_what)
        col_vocab = Vocabulary(col_ids, col_what)

        def describe(pos: int) -> str:
            r, c = int(rows[pos]), int(cols[pos])
            return (
                f"row {r}, column {c} ({row_what} {show(row_vocab.ids[r])}, "
                f"{col_what} {show(col_vocab.ids[c])})"
            )

        if scale is not None:
            scale = _check_scale(scale)
        values = _validate_values(values, scale, describe)
        if row_what == "user":
            user_vocab, item_vocab, u_idx, i_idx = row_vocab, col_vocab, rows, cols
        else:  # items x users: reorder the cells to users x items row-major order
            order = np.lexsort((rows, cols))
            user_vocab, item_vocab = col_vocab, row_vocab
            u_idx, i_idx, values = cols[order], rows[order], values[order]
        return cls(u_idx, i_idx, values, user_vocab, item_vocab, None, scale, item_info, name)

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
        """Number of ratings of each user index (read-only; counted once: a fit asks
        several times, and at 10M ratings each count is a pass over 40 MB)."""
        if self._user_counts is None:
            self._user_counts = _readonly(np.bincount(self.user_index, minlength=self.n_users))
        return self._user_counts

    def item_counts(self) -> np.ndarray:
        """Number of ratings of each item index (read-only, counted once)."""
        if self._item_counts is None:
            self._item_counts = _readonly(np.bincount(self.item_index, minlength=self.n_items))
        return self._item_counts

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


_ORIENTS = {"users x items": ("user", "item"), "items x users": ("item", "user")}


def _refuse_missing_ratings(frame: pd.DataFrame, rating: str) -> None:
    """A NaN rating in a long frame is most often a wide matrix gone through
    ``stack()``, which keeps NaN cells under pandas 3: say so, and name both fixes."""
    nan = frame[rating].isna().to_numpy()
    if not nan.any():
        return
    pos = int(np.flatnonzero(nan)[0])
    raise DataError(
        f"missing rating (NaN) at row {pos} ({int(nan.sum())} of {len(nan)} rows); drop "
        f"them first (frame.dropna(subset=[{rating!r}])), or, if the frame is a wide "
        "matrix made long by stack() (which keeps NaN cells under pandas 3), build the "
        "ratings straight from the matrix: Ratings.from_matrix(df, orient='items x users' "
        "or 'users x items')"
    )


def _dense_values(matrix: Any) -> tuple[np.ndarray, Any, Any]:
    """float64 2-D values of an array-like or DataFrame, and its labels (or None)."""
    if isinstance(matrix, pd.Series):
        raise DataError(
            "expected a 2-D matrix, got a pandas Series; for long (user, item, rating) "
            "data use Ratings.from_frame, for one column use series.to_frame()"
        )
    row_labels = col_labels = None
    if isinstance(matrix, pd.DataFrame):
        for what, labels in (("index", matrix.index), ("columns", matrix.columns)):
            if isinstance(labels, pd.MultiIndex):
                raise DataError(
                    f"the DataFrame's {what} has several levels; flatten it to one level "
                    "of ids (or pass users=/items=)"
                )
        row_labels, col_labels = matrix.index.to_numpy(), matrix.columns.to_numpy()
        for column, dtype in matrix.dtypes.items():
            if pd.api.types.is_bool_dtype(dtype):
                raise DataError(f"column {show(column)} holds booleans, not ratings")
            if dtype.kind in "Mm" or isinstance(dtype, (pd.PeriodDtype, pd.IntervalDtype)):
                raise DataError(f"column {show(column)} holds {dtype} values, not ratings")
        try:
            raw = matrix.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raw = matrix.to_numpy(dtype=object)
    else:
        if isinstance(matrix, np.ma.MaskedArray):
            raise DataError(
                "masked arrays are not read as such; use matrix.filled(np.nan) and missing=np.nan"
            )
        raw = (
            np.asarray(matrix)
            if isinstance(matrix, np.ndarray)
            else np.asarray(matrix, dtype=object)
        )
    if raw.ndim != 2:
        raise DataError(
            f"expected a 2-D matrix, got shape {raw.shape}; for long (user, item, rating) "
            "data use Ratings.from_frame or Ratings.from_arrays"
        )
    if raw.dtype.kind == "b":
        raise DataError("the matrix holds booleans, not ratings")
    if raw.dtype.kind not in "iufO":
        raise DataError(f"the matrix holds {raw.dtype} values, not ratings")
    if raw.dtype.kind in "iuf":
        return raw.astype(np.float64, copy=False), row_labels, col_labels
    flat = raw.ravel()
    values = pd.to_numeric(pd.Series(flat), errors="coerce").to_numpy(dtype=np.float64)
    # Numbers and numeric text only: to_numeric would turn a date into nanoseconds.
    number = np.fromiter(
        (isinstance(v, (numbers.Real, str)) and not isinstance(v, (bool, np.bool_)) for v in flat),
        dtype=bool,
        count=len(flat),
    )
    bad = (np.isnan(values) | ~number) & ~pd.isna(flat)
    if bad.any():
        r, c = divmod(int(np.flatnonzero(bad)[0]), raw.shape[1])
        raise DataError(
            f"non-numeric value {show(flat[r * raw.shape[1] + c])} at row {r}, column {c} "
            f"({int(bad.sum())} such cells); a rating matrix holds numbers (and NaN or "
            "the missing= value for unknown ratings)"
        )
    return values.reshape(raw.shape), row_labels, col_labels


def _dense_cells(values: np.ndarray, missing: float | None):
    """Row, column and value of every non-missing cell, row-major."""
    nan = np.isnan(values)
    if missing is not None and not np.isnan(missing):
        if nan.any():
            r, c = (int(v[0]) for v in np.nonzero(nan))
            raise DataError(
                f"NaN at row {r}, column {c} ({int(nan.sum())} NaN cells) but "
                f"missing={missing:g} says unknown ratings are {missing:g}; pass "
                "missing=np.nan if NaN marks them (or fill the NaN cells)"
            )
        observed = values != missing
    elif missing is None:
        observed = np.ones(values.shape, dtype=bool)  # NaN is refused as a rating later
    else:
        observed = ~nan
    rows, cols = np.nonzero(observed)
    return rows.astype(np.int32), cols.astype(np.int32), values[rows, cols]


def _sparse_cells(matrix: Any, missing: float | None):
    """Row, column and value of every stored entry not equal to ``missing``."""
    if matrix.ndim != 2:
        raise DataError(f"expected a 2-D sparse matrix, got {matrix.ndim} dimensions")
    kind = matrix.dtype.kind
    if kind == "b" or kind not in "iuf":
        what = "booleans" if kind == "b" else f"dtype {matrix.dtype}"
        raise DataError(f"the sparse matrix holds {what}, not ratings")
    coo = matrix.tocoo()
    rows = np.asarray(coo.row, dtype=np.int64)
    cols = np.asarray(coo.col, dtype=np.int64)
    values = np.asarray(coo.data, dtype=np.float64)
    n_cols = coo.shape[1]
    key = rows * n_cols + cols
    order = np.argsort(key, kind="stable")  # row-major, as for a dense matrix
    key, rows, cols, values = key[order], rows[order], cols[order], values[order]
    repeated = np.flatnonzero(key[1:] == key[:-1])
    if len(repeated):
        r, c = int(rows[repeated[0]]), int(cols[repeated[0]])
        raise DataError(
            f"the sparse matrix stores cell (row {r}, column {c}) more than once "
            f"({len(repeated)} repeats), which SciPy would sum; call "
            "matrix.sum_duplicates() if summing is meant, else keep one entry per cell"
        )
    if missing is not None:
        keep = ~np.isnan(values) if np.isnan(missing) else values != missing
        if not np.isnan(missing) and np.isnan(values).any():
            pos = int(np.flatnonzero(np.isnan(values))[0])
            raise DataError(
                f"NaN stored at row {int(rows[pos])}, column {int(cols[pos])} but "
                f"missing={missing:g}; pass missing=np.nan if NaN marks unknown ratings"
            )
        rows, cols, values = rows[keep], cols[keep], values[keep]
    return rows.astype(np.int32), cols.astype(np.int32), values, coo.shape


def _axis_ids(given: Any, labels: Any, n: int, what: str, axis: str, orient: str) -> Any:
    """The raw ids of one axis: given ones (checked), else the labels, else 0..n-1."""
    if given is None:
        ids = np.arange(n, dtype=np.int64) if labels is None else labels
    else:
        ids = given.to_numpy() if isinstance(given, (pd.Index, pd.Series)) else given
        if isinstance(ids, str) or np.ndim(ids) != 1:
            raise DataError(f"{what}s must be a 1-D sequence of ids, got {ids!r:.80}")
        if len(ids) != n:
            raise DataError(
                f"{what}s has {len(ids)} ids but the matrix has {n} {axis} "
                f"(orient={orient!r}); pass one id per {axis[:-1]}, or the other orient"
            )
    _, arr = normalize_ids(ids, what)
    codes, uniques = pd.factorize(arr)
    if len(uniques) != len(arr):
        counts = np.bincount(codes)
        dup = uniques[int(np.flatnonzero(counts > 1)[0])]
        raise DataError(
            f"{what} id {show(dup)} labels more than one of the matrix's {axis}; "
            f"{what} ids must be distinct"
        )
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
            "duplicates='last' or duplicates='mean' to resolve them"
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
