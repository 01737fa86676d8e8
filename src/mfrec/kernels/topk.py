"""Top-N selection per row without sorting whole rows (a size-N heap per row)."""

import numpy as np
from numba import njit, prange


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
