"""Ingest kernels (numba): cheap facts about a text file before pyarrow parses it, and
the linear-time id encoding and duplicate check of freshly read ratings."""

import numpy as np
from numba import njit

_ZERO, _NINE = 48, 57
_PLUS, _MINUS, _QUOTE = 43, 45, 34
_TAB, _NEWLINE, _RETURN, _SPACE, _DOT = 9, 10, 13, 32, 46


# Compile options: helpers only kernels call have no wrappers (see kernels._common), and
# every call passes the same argument types (no literal ints, which would compile a
# specialisation each): a first read of a file compiled _any_suspicious four times.
@njit(cache=True, nogil=True, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _suspicious_at(buf, t, sep, at_line_start):
    # The test of one position, edges included (see has_noncanonical_int_field).
    n = buf.shape[0]
    c = buf[t]
    if c == _SPACE or (c == _TAB and sep != _TAB):
        return True
    if t == 0:
        starts = at_line_start
    else:
        prev = buf[t - 1]
        starts = prev in (sep, _NEWLINE)
        if not starts and prev == _QUOTE:  # a quote that opens a field
            starts = (t == 1 and at_line_start) or (
                t >= 2 and (buf[t - 2] == sep or buf[t - 2] == _NEWLINE)
            )
    if not starts:
        return False
    nx = buf[t + 1] if t + 1 < n else _NEWLINE
    if c == _PLUS or (c == _MINUS and nx == _ZERO):
        return True
    if c == _ZERO:
        return nx not in (sep, _NEWLINE, _RETURN, _QUOTE, _DOT)
    return False


@njit(cache=True, nogil=True, fastmath=True, no_cfunc_wrapper=True)
def has_noncanonical_int_field(buf, sep, at_line_start):
    """Whether parsing the integer-looking fields of ``buf`` (bytes as uint8) as int64
    could lose information: some field starts with ``+``, with ``-0``, or with ``0``
    followed by anything but a field end or ``.`` (``007``, ``0x1F``), possibly after an
    opening quote; or the text holds a space, or a tab that is not the separator
    (parsers trim spaces). Fields start at the beginning of a line -- ``at_line_start``
    says whether ``buf`` itself does -- and after the one-byte separator ``sep``.

    The interior is a branch-free, vectorised pass that flags every byte that *could*
    start such a field (a field start, or a quote, followed by ``0``, ``+`` or ``-``;
    a space; a stray tab); only then are the flagged places checked exactly.
    """
    n = buf.shape[0]
    zero = n - n  # (not literals: one signature of _any_suspicious)
    two = zero + 2
    if n < 4:
        return _any_suspicious(buf, zero, n, sep, at_line_start)
    if _any_suspicious(buf, zero, two, sep, at_line_start):
        return True
    if _any_suspicious(buf, n - 1, n, sep, at_line_start):
        return True
    s = np.uint8(sep)
    rough = np.uint8(0)
    for t in range(2, n - 1):
        prev = buf[t - 1]
        c = buf[t]
        nx = buf[t + 1]
        opens = (prev == s) | (prev == _NEWLINE) | (prev == _QUOTE)
        field_end = (nx == s) | (nx == _NEWLINE) | (nx == _RETURN) | (nx == _QUOTE) | (nx == _DOT)
        sign = (c == _PLUS) | ((c == _MINUS) & (nx == _ZERO)) | ((c == _ZERO) & ~field_end)
        blank = (c == _SPACE) | ((c == _TAB) & (s != _TAB))
        rough |= np.uint8((opens & sign) | blank)
    if rough == 0:
        return False
    return _any_suspicious(buf, two, n - 1, sep, at_line_start)


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _any_suspicious(buf, start, stop, sep, at_line_start):
    for t in range(start, stop):  # noqa: SIM110 (numba: a loop, not a generator)
        if _suspicious_at(buf, t, sep, at_line_start):
            return True
    return False


def has_noncanonical_int_field_reference(data: bytes, sep: int, at_line_start: bool) -> bool:
    """Regex reference of :func:`has_noncanonical_int_field`."""
    import re

    s = re.escape(bytes([sep]))
    first = rb"\A" if at_line_start else rb"(?!)"
    field = rb"(?:" + first + rb"|(?<=[\n" + s + rb"]))\"?"
    ends = rb"[\n\r" + s + rb"\".]"
    bad = field + rb"(?:\+|-0|0(?!" + ends + rb"|\Z))"
    if re.search(bad, data) is not None:
        return True
    return b" " in data or (sep != 9 and b"\t" in data)


@njit(cache=True, nogil=True)
def dense_codes(values, high):
    """Sorted distinct values and the int32 code of every value, for non-negative ints
    below ``high + 1``: a presence table, no hashing, no temporary of len(values)."""
    present = np.zeros(high + 1, dtype=np.bool_)
    for v in values:
        present[v] = True
    code_of = np.empty(high + 1, dtype=np.int32)
    n_distinct = 0
    for v in range(high + 1):
        code_of[v] = n_distinct
        if present[v]:
            n_distinct += 1
    ids = np.empty(n_distinct, dtype=np.int64)
    for v in range(high + 1):
        if present[v]:
            ids[code_of[v]] = v
    codes = np.empty(values.shape[0], dtype=np.int32)
    for t in range(values.shape[0]):
        codes[t] = code_of[values[t]]
    return ids, codes


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def has_duplicate_pairs(u_idx, i_idx, n_users, n_items):
    """Whether some (user, item) pair occurs twice: a counting sort by user, then one
    pass per user against a table of the items it has seen -- O(n), where sorting
    n int64 keys costs n log n (about 1.3 s at 25M ratings, this about 0.2 s)."""
    # (np.empty and loops only: np.zeros, np.full and .copy() each compile their own)
    n = u_idx.shape[0]
    starts = np.empty(n_users + 1, dtype=np.int64)
    for u in range(n_users + 1):
        starts[u] = 0
    for t in range(n):
        starts[u_idx[t] + 1] += 1
    for u in range(n_users):
        starts[u + 1] += starts[u]
    fill = np.empty(n_users, dtype=np.int64)
    for u in range(n_users):
        fill[u] = starts[u]
    grouped = np.empty(n, dtype=np.int32)
    for t in range(n):
        u = u_idx[t]
        grouped[fill[u]] = i_idx[t]
        fill[u] += 1
    seen_by = np.empty(n_items, dtype=np.int64)
    for i in range(n_items):
        seen_by[i] = -1
    for u in range(n_users):
        for t in range(starts[u], starts[u + 1]):
            i = grouped[t]
            if seen_by[i] == u:
                return True
            seen_by[i] = u
    return False
