"""Top-N selection per row without sorting whole rows (a size-N heap per row).

:func:`topk_rescored` selects from approximate (BLAS) scores and returns the exact
ranking: see its docstring for the error bound that makes this safe."""

import numpy as np
from numba import njit, prange

from .score import exact_score


@njit(cache=True, nogil=True, inline="always")
def _sift_down(heap_s, heap_i, size, pos):
    # Min-heap on (score, -index): the root is the worst kept item; among equal scores
    # the higher index is worse, so ties resolve to the lower item index.
    while True:
        left = 2 * pos + 1
        if left >= size:
            return
        child = left
        right = left + 1
        if right < size and (
            heap_s[right] < heap_s[left]
            or (heap_s[right] == heap_s[left] and heap_i[right] > heap_i[left])
        ):
            child = right
        if heap_s[child] < heap_s[pos] or (
            heap_s[child] == heap_s[pos] and heap_i[child] > heap_i[pos]
        ):
            heap_s[pos], heap_s[child] = heap_s[child], heap_s[pos]
            heap_i[pos], heap_i[child] = heap_i[child], heap_i[pos]
            pos = child
        else:
            return


@njit(cache=True, nogil=True)
def _select_row(row, n, out_idx, out_scores):
    heap_s = np.empty(n, dtype=np.float32)
    heap_i = np.empty(n, dtype=np.int32)
    size = 0
    for j in range(row.shape[0]):
        s = row[j]
        if not (s > -np.inf):  # excluded (-inf) or NaN
            continue
        if size < n:
            # sift up
            pos = size
            heap_s[pos] = s
            heap_i[pos] = j
            size += 1
            while pos > 0:
                parent = (pos - 1) // 2
                if heap_s[pos] < heap_s[parent] or (
                    heap_s[pos] == heap_s[parent] and heap_i[pos] > heap_i[parent]
                ):
                    heap_s[pos], heap_s[parent] = heap_s[parent], heap_s[pos]
                    heap_i[pos], heap_i[parent] = heap_i[parent], heap_i[pos]
                    pos = parent
                else:
                    break
        elif s > heap_s[0]:
            heap_s[0] = s
            heap_i[0] = j
            _sift_down(heap_s, heap_i, size, 0)
    # Pop worst-first into the tail: the output ends up best-first.
    for r in range(size - 1, -1, -1):
        out_scores[r] = heap_s[0]
        out_idx[r] = heap_i[0]
        size -= 1
        heap_s[0] = heap_s[size]
        heap_i[0] = heap_i[size]
        _sift_down(heap_s, heap_i, size, 0)


@njit(parallel=True, cache=True, nogil=True)
def topk_rows(scores, row_users, excl_indptr, excl_indices, out_idx, out_scores):
    """Best ``out_idx.shape[1]`` columns of each row of ``scores`` (modified in place:
    excluded entries are set to -inf). Row r excludes the columns
    ``excl_indices[excl_indptr[u]:excl_indptr[u+1]]`` of user ``u = row_users[r]``
    (``u < 0`` or an indptr of length 1 excludes nothing). Unfilled slots are left as
    they were (callers pre-fill -1 / -inf)."""
    n = out_idx.shape[1]
    can_exclude = excl_indptr.shape[0] > 1
    for r in prange(scores.shape[0]):
        u = row_users[r]
        row = scores[r]
        if can_exclude and u >= 0:
            for p in range(excl_indptr[u], excl_indptr[u + 1]):
                row[excl_indices[p]] = -np.inf
        _select_row(row, n, out_idx[r], out_scores[r])


def topk_rows_reference(scores, row_users, excl_indptr, excl_indices, n):
    """NumPy reference of :func:`topk_rows`: a full stable sort per row."""
    scores = scores.astype(np.float32, copy=True)
    out_idx = np.full((scores.shape[0], n), -1, dtype=np.int32)
    out_scores = np.full((scores.shape[0], n), -np.inf, dtype=np.float32)
    for r in range(scores.shape[0]):
        u = row_users[r]
        if len(excl_indptr) > 1 and u >= 0:
            scores[r, excl_indices[excl_indptr[u] : excl_indptr[u + 1]]] = -np.inf
        order = np.argsort(-scores[r], kind="stable")
        order = order[np.isfinite(scores[r, order])][:n]
        out_idx[r, : len(order)] = order
        out_scores[r, : len(order)] = scores[r, order]
    return out_idx, out_scores


@njit(cache=True, nogil=True)
def _select_exact(scores, ids, n, out_idx, out_scores):
    # Best n of (scores desc, ids asc); ids arrive in increasing order, so a stable
    # insertion into a sorted buffer of size n keeps the lower id first among equals.
    size = 0
    best_s = np.empty(n, dtype=np.float64)
    best_i = np.empty(n, dtype=np.int32)
    for c in range(scores.shape[0]):
        s = scores[c]
        if size == n and not s > best_s[n - 1]:
            continue
        pos = size if size < n else n - 1
        while pos > 0 and s > best_s[pos - 1]:
            if pos < n:
                best_s[pos] = best_s[pos - 1]
                best_i[pos] = best_i[pos - 1]
            pos -= 1
        best_s[pos] = s
        best_i[pos] = ids[c]
        if size < n:
            size += 1
    for r in range(size):
        out_idx[r] = best_i[r]
        out_scores[r] = best_s[r]


@njit(parallel=True, cache=True, nogil=True)
def topk_rescored(
    approx,
    row_users,
    excl_indptr,
    excl_indices,
    slack,
    P,
    Q,
    bu,
    bi,
    intercept,
    fallback,
    out_idx,
    out_scores,
):
    """Exact top-n per row, from approximate scores.

    ``approx[r]`` holds float32 scores of user ``row_users[r]`` (BLAS), each within
    ``slack[r] / 2`` of the exact score (:func:`mfrec.kernels.score.exact_score`;
    ``fallback[j]`` for an unknown user, ``row_users[r] < 0``). If s_n is the n-th best
    approximate score, every item of the exact top-n has an approximate score of at
    least s_n - slack[r] (|A - E| <= B gives s_n <= T + B and A >= T - B for the exact
    n-th score T), so rescoring just those candidates exactly and ranking them by
    (exact score desc, item asc) gives the exact top-n whatever rounding the
    approximate scores had. Excluded items (as in :func:`topk_rows`) never enter.
    """
    n = out_idx.shape[1]
    can_exclude = excl_indptr.shape[0] > 1
    for r in prange(approx.shape[0]):
        u = row_users[r]
        row = approx[r]
        if can_exclude and u >= 0:
            for p in range(excl_indptr[u], excl_indptr[u + 1]):
                row[excl_indices[p]] = -np.inf
        heap_i = np.full(n, -1, dtype=np.int32)
        heap_s = np.full(n, -np.inf, dtype=np.float32)
        _select_row(row, n, heap_i, heap_s)
        threshold = heap_s[n - 1] - slack[r] if heap_i[n - 1] >= 0 else -np.inf
        m = 0
        for j in range(row.shape[0]):
            if row[j] > -np.inf and row[j] >= threshold:
                m += 1
        cand = np.empty(m, dtype=np.int32)
        exact = np.empty(m, dtype=np.float64)
        m = 0
        for j in range(row.shape[0]):
            if row[j] > -np.inf and row[j] >= threshold:
                cand[m] = j
                exact[m] = exact_score(P, Q, bu, bi, intercept, u, j) if u >= 0 else fallback[j]
                m += 1
        _select_exact(exact, cand, n, out_idx[r], out_scores[r])
