"""Vocabulary: raw ids (ints of any size, or strings) <-> contiguous indices 0..n-1.

One object owns the mapping for one side (users or items), as LensKit's ``Vocabulary``
does. Ids are translated here, at the edge, and never again inside a model.

Unknown ids have one policy everywhere: :meth:`Vocabulary.lookup` returns ``-1`` for
them (internal use), and the public model methods turn that into the documented
fallback. There is no sentinel id.

Id kinds
--------
``int``     signed integers that fit in int64 (stored as int64)
``uint``    non-negative integers that need uint64
``bigint``  Python ints beyond 64 bits (kept as Python ints; stored as decimal text)
``str``     strings

A query of the wrong kind (strings against an integer vocabulary, say) is an error,
never a silent miss: ``"196"`` and ``196`` are different ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from mfrec.exceptions import DataError

_INT64_MAX = np.iinfo(np.int64).max
#: Columns at least this long are encoded by a numba pass (worth importing numba for).
_NUMBA_ENCODE_MIN = 1_000_000
_UINT64_MAX = np.iinfo(np.uint64).max
KINDS = ("int", "uint", "bigint", "str")


def _describe_row(pos: int) -> str:
    return f"row {pos}"


def normalize_ids(
    values: Any, what: str = "id", describe_row=_describe_row
) -> tuple[str, np.ndarray]:
    """Check a column of raw ids and return ``(kind, array)`` in canonical form.

    Raises :class:`DataError` naming the first offending row for missing ids, floats that
    are not whole numbers, booleans and columns that mix ints and strings.
    """
    if isinstance(values, pd.Series):
        values = (
            values.to_numpy(dtype=object)
            if isinstance(values.dtype, pd.CategoricalDtype)
            else values.to_numpy()
        )
    # Lists go through object dtype so that [1, "b"] is seen as mixed, not as strings.
    arr = np.asarray(values) if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.dtype == object and arr.ndim == 1 and len(arr) and isinstance(values, (list, tuple)):
        arr = _narrow_object(arr)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise DataError(f"{what} ids must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        raise DataError(f"{what} ids must be ints or strings, got booleans")
    if arr.dtype.kind == "i":
        # int32 stays int32 (its values are all int64-exact); wider kinds become int64.
        return "int", arr if arr.dtype == np.int32 else arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "u":
        if arr.size and int(arr.max()) > _INT64_MAX:
            return "uint", arr.astype(np.uint64, copy=False)
        return "int", arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f":
        return "int", _floats_to_int(arr, what, describe_row)
    if arr.dtype.kind in "US":
        return "str", arr.astype(str).astype(object)
    if arr.dtype.kind != "O":
        raise DataError(f"{what} ids must be ints or strings, got dtype {arr.dtype}")
    return _object_ids(arr, what, describe_row)


def _narrow_object(arr: np.ndarray) -> np.ndarray:
    """An object array of plain floats becomes float64 (ints and strings stay object)."""
    if pd.api.types.infer_dtype(arr, skipna=False) in ("floating", "mixed-integer-float"):
        return arr.astype(np.float64)
    return arr


def show(value: Any) -> str:
    """repr of a raw id or value without numpy's type wrapper (``1``, not ``np.int64(1)``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _floats_to_int(arr: np.ndarray, what: str, describe_row) -> np.ndarray:
    bad = ~np.isfinite(arr)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise DataError(f"missing {what} id at {describe_row(pos)}: every rating needs a {what}")
    frac = arr != np.round(arr)
    if frac.any():
        pos = int(np.flatnonzero(frac)[0])
        raise DataError(
            f"{what} ids must be ints or strings; {describe_row(pos)} has the number "
            f"{show(arr[pos])}"
        )
    if arr.size and (arr.max() > _INT64_MAX or arr.min() < -_INT64_MAX):
        raise DataError(f"{what} ids stored as floats are too large to be exact; read them as text")
    return arr.astype(np.int64)


def _object_ids(arr: np.ndarray, what: str, describe_row) -> tuple[str, np.ndarray]:
    missing = pd.isna(arr)
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise DataError(f"missing {what} id at {describe_row(pos)}: every rating needs a {what}")
    inferred = pd.api.types.infer_dtype(arr, skipna=False)
    if inferred == "string":
        return "str", arr
    if inferred == "integer":
        lo, hi = min(arr), max(arr)
        if lo >= -_INT64_MAX - 1 and hi <= _INT64_MAX:
            return "int", arr.astype(np.int64)
        if lo >= 0 and hi <= _UINT64_MAX:
            return "uint", arr.astype(np.uint64)
        return "bigint", np.array([int(v) for v in arr], dtype=object)
    if inferred in ("floating", "mixed-integer-float"):
        return "int", _floats_to_int(arr.astype(np.float64), what, describe_row)
    if inferred == "boolean":
        raise DataError(f"{what} ids must be ints or strings, got booleans")
    if inferred == "empty":
        return "int", np.zeros(0, dtype=np.int64)
    # Find the first row whose type differs from the first row's, to name it.
    first = type(arr[0])
    pos = next((i for i, v in enumerate(arr) if type(v) is not first), 0)
    raise DataError(
        f"{what} ids must be all ints or all strings; {describe_row(0)} has "
        f"{type(arr[0]).__name__} {show(arr[0])} but {describe_row(pos)} has "
        f"{type(arr[pos]).__name__} {show(arr[pos])}. Convert the column to one type first."
    )


def _encode_dense(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Sorted vocabulary and int32 codes of non-negative ints in a compact range, by a
    presence table instead of hashing (O(n + max id)); None when the range is too wide."""
    if len(arr) == 0:
        return None
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high > 4 * len(arr) + 1_000_000 or high >= np.iinfo(np.int32).max:
        return None
    if len(arr) >= _NUMBA_ENCODE_MIN:  # one pass, no temporaries the size of the column
        from mfrec.kernels.ingest import dense_codes

        return dense_codes(arr, high)
    present = np.bincount(arr, minlength=high + 1) > 0
    ids = np.flatnonzero(present).astype(np.int64)
    code_of = np.cumsum(present, dtype=np.int32) - 1  # code of id v, where v is present
    return ids, np.take(code_of, arr)


class Vocabulary:
    """The mapping between raw ids and contiguous indices for one side.

    Parameters
    ----------
    ids : array-like
        Distinct raw ids, in index order (``ids[k]`` is the id of index ``k``).
    name : str
        ``"user"`` or ``"item"``; used in messages.
    """

    __slots__ = ("_index", "ids", "kind", "name")

    def __init__(self, ids: Any, name: str = "id") -> None:
        kind, arr = normalize_ids(ids, name)
        if len(arr) != len(pd.unique(arr)):
            raise DataError(f"{name} vocabulary ids must be distinct")
        self.kind: str = kind
        self.ids: np.ndarray = arr
        self.name: str = name
        self._index: pd.Index | None = None

    @classmethod
    def _from_checked(cls, kind: str, ids: np.ndarray, name: str) -> Vocabulary:
        vocab = cls.__new__(cls)
        vocab.kind, vocab.ids, vocab.name, vocab._index = kind, ids, name, None
        return vocab

    @classmethod
    def encode(
        cls, values: Any, name: str = "id", describe_row=_describe_row
    ) -> tuple[Vocabulary, np.ndarray]:
        """Build the vocabulary of ``values`` (ids sorted) and return it with the int32
        index of every value."""
        kind, arr = normalize_ids(values, name, describe_row)
        dense = _encode_dense(arr) if kind == "int" else None
        if dense is not None:
            ids, codes = dense
            return cls._from_checked(kind, ids, name), codes
        codes, uniques = pd.factorize(arr, sort=True)
        if len(uniques) >= np.iinfo(np.int32).max:
            raise DataError(f"more than 2**31 distinct {name} ids are not supported")
        ids = np.asarray(uniques, dtype=object if kind in ("str", "bigint") else arr.dtype)
        return cls._from_checked(kind, ids, name), codes.astype(np.int32)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"Vocabulary({self.name}, {len(self):,} {self.kind} ids)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.kind == other.kind and np.array_equal(self.ids, other.ids)

    __hash__ = None  # type: ignore[assignment]

    def __contains__(self, raw_id: Any) -> bool:
        try:
            return bool(self.lookup([raw_id])[0] >= 0)
        except DataError:
            return False

    @property
    def pd_index(self) -> pd.Index:
        """A hashed pandas Index over the ids (built once, on first lookup)."""
        if self._index is None:
            self._index = pd.Index(
                self.ids, dtype=object if self.kind in ("str", "bigint") else None
            )
        return self._index

    def _check_kind(self, kind: str, values: np.ndarray) -> None:
        numeric = {"int", "uint", "bigint"}
        if (kind == "str") != (self.kind == "str") or (kind in numeric) != (self.kind in numeric):
            sample = values[0] if len(values) else None
            want = "strings" if self.kind == "str" else "integers"
            raise DataError(
                f"{self.name} ids are {want} but got {type(sample).__name__} {show(sample)}; "
                f"pass {want} (e.g. "
                + ("str(...)" if self.kind == "str" else "int(...)")
                + ") so that ids are never confused"
            )

    def lookup(self, values: Any) -> np.ndarray:
        """int32 index of every value; ``-1`` where the id is unknown."""
        kind, arr = normalize_ids(values, self.name)
        if len(arr) == 0:
            return np.zeros(0, dtype=np.int32)
        self._check_kind(kind, arr)
        return self.pd_index.get_indexer(arr).astype(np.int32)

    def index(self, values: Any) -> np.ndarray:
        """int32 index of every value; raises :class:`KeyError` naming unknown ids."""
        idx = self.lookup(values)
        if (idx < 0).any():
            _, arr = normalize_ids(values, self.name)
            missing = arr[idx < 0]
            shown = ", ".join(show(v) for v in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise KeyError(f"{len(missing)} unknown {self.name} id(s): {shown}")
        return idx

    def take(self, indices: Any) -> np.ndarray:
        """The raw ids at ``indices``."""
        return self.ids[np.asarray(indices)]

    def subset(self, keep: np.ndarray) -> Vocabulary:
        """The vocabulary of the ids at positions ``keep`` (in that order)."""
        return Vocabulary._from_checked(self.kind, self.ids[keep], self.name)

    def parse(self, texts: Iterable[str]) -> np.ndarray:
        """Convert command-line strings to ids of this vocabulary's kind."""
        texts = list(texts)
        if self.kind == "str":
            return np.array(texts, dtype=object)
        try:
            values = [int(t) for t in texts]
        except ValueError:
            bad = next(t for t in texts if not _is_int_text(t))
            raise DataError(f"{self.name} ids are integers; {bad!r} is not one") from None
        return normalize_ids(np.array(values, dtype=object), self.name)[1]

    # -- persistence (no pickle) ------------------------------------------------------
    def to_array(self) -> np.ndarray:
        """The ids as a pickle-free numpy array (text for str and bigint kinds)."""
        if self.kind in ("str", "bigint"):
            return (
                np.array([str(v) for v in self.ids], dtype=str)
                if len(self.ids)
                else np.zeros(0, dtype="<U1")
            )
        return self.ids

    @classmethod
    def from_array(cls, kind: str, array: np.ndarray, name: str) -> Vocabulary:
        """Inverse of :meth:`to_array`."""
        if kind not in KINDS:
            raise DataError(f"unknown vocabulary kind {kind!r}")
        if kind == "str":
            ids = np.array(array.tolist(), dtype=object)
        elif kind == "bigint":
            ids = np.array([int(v) for v in array.tolist()], dtype=object)
        elif kind == "uint":
            ids = array.astype(np.uint64)
        else:
            ids = array.astype(np.int64)
        return cls._from_checked(kind, ids, name)


def _is_int_text(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
