"""Top-N selection per row without sorting whole rows (a size-N heap per row).

:func:`topk_rescored` selects from approximate (BLAS) scores and returns the exact
ranking: see its docstring for the error bound that makes this safe."""

import itertools

import numpy as np
from numba import njit

from ._common import claim, run_threads, run_workers
from .score import exact_score


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _sift_down(heap_s, heap_i, size):
    # Min-heap on (score, -index), sifting from the root: the root is the worst kept
    # item; among equal scores the higher index is worse, so ties resolve to the lower
    # item index.
    pos = size - size
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


# Scores are scanned in chunks of this many: a chunk whose maximum cannot enter the
# heap (most of them, once it holds n good items) is skipped after one vectorised pass.
_CHUNK = 32


@njit(cache=True, nogil=True, fastmath={"nnan"}, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _chunk_max(row, start, stop):
    # Max is exact in any order; "nnan" only lets LLVM vectorise it (scores are never
    # NaN: excluded items are -inf, and training stops before factors turn NaN).
    m = row[start]
    for j in range(start + 1, stop):
        v = row[j]
        m = v if v > m else m
    return m


# The selection lives in the worker (one function, no allocation: see _rescore_rows):
# the heap is built in the row's own output slots, then heap-sorted in place.
@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _topk_rows_worker(counter, n_tasks, scores, row_users, excl_indptr, excl_indices, out_idx, out_scores):  # fmt: skip
    n = out_idx.shape[1]
    can_exclude = excl_indptr.shape[0] > 1
    n_rows = scores.shape[0]
    n_cols = scores.shape[1]
    while True:
        task = claim(counter, 0)
        if task >= n_tasks:
            break
        for r in range(task * 4, min(n_rows, (task + 1) * 4) if n > 0 else 0):
            u = row_users[r]
            row = scores[r]
            if can_exclude and u >= 0:
                for p in range(excl_indptr[u], excl_indptr[u + 1]):
                    row[excl_indices[p]] = -np.inf
            heap_s = out_scores[r]
            heap_i = out_idx[r]
            size = n - n
            for c0 in range(0, n_cols, _CHUNK):
                c1 = c0 + _CHUNK if c0 + _CHUNK < n_cols else n_cols
                if size == n and not _chunk_max(row, c0, c1) > heap_s[0]:
                    continue
                for j in range(c0, c1):
                    s = row[j]
                    if not s > -np.inf:  # excluded
                        continue
                    if size < n:
                        # Sift up: items arrive in increasing order, so an equal score
                        # is the worse one.
                        pos = size
                        size += 1
                        while pos > 0 and not s > heap_s[(pos - 1) >> 1]:
                            heap_s[pos] = heap_s[(pos - 1) >> 1]
                            heap_i[pos] = heap_i[(pos - 1) >> 1]
                            pos = (pos - 1) >> 1
                        heap_s[pos] = s
                        heap_i[pos] = j
                    elif s > heap_s[0]:  # strictly: among equals the lower index stays
                        heap_s[0] = s
                        heap_i[0] = j
                        _sift_down(heap_s, heap_i, size)
            # Heap sort: the worst goes to the end each time, so the row ends best-first.
            for end in range(size - 1, 0, -1):
                heap_s[0], heap_s[end] = heap_s[end], heap_s[0]
                heap_i[0], heap_i[end] = heap_i[end], heap_i[0]
                _sift_down(heap_s, heap_i, end)


def topk_rows(scores, row_users, excl_indptr, excl_indices, out_idx, out_scores):
    """Best ``out_idx.shape[1]`` columns of each row of ``scores`` (modified in place:
    excluded entries are set to -inf). Row r excludes the columns
    ``excl_indices[excl_indptr[u]:excl_indptr[u+1]]`` of user ``u = row_users[r]``
    (``u < 0`` or an indptr of length 1 excludes nothing). Unfilled slots are left as
    they were (callers pre-fill -1 / -inf). Rows are handed out four at a time
    (:func:`~._common.run_workers`)."""
    n_tasks = (scores.shape[0] + 3) // 4
    run_workers(
        _topk_rows_worker, n_tasks, scores, row_users, excl_indptr, excl_indices, out_idx,
        out_scores,
    )  # fmt: skip


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


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _sift_down_values(heap, size):
    # Min-heap of values only: the rescoring needs the n-th best approximate score,
    # never which item holds it.
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] < heap[pos]:
            heap[pos], heap[child] = heap[child], heap[pos]
            pos = child
        else:
            return


# One function, no allocation, few callees: its cold compile is most of a first
# recommend's (bench/coldstart.py). Each np.empty, min() or helper call would compile an
# implementation of its own, once per set of compile flags, and every helper's code is
# optimised again by LLVM in each caller it is linked into.
@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _rescore_rows(
    approx,
    row_base,
    item_add,
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
    heap,
    best,
    out_idx,
    out_scores,
):
    """The rows of :func:`topk_rescored`, on the calling thread. ``heap`` (float32) and
    ``best`` (float64) are work space of at least ``out_idx.shape[1]`` values."""
    n = out_idx.shape[1]
    n_cols = approx.shape[1]
    can_exclude = excl_indptr.shape[0] > 1
    has_add = item_add.shape[0] > 0
    for r in range(approx.shape[0] if n > 0 else 0):
        u = row_users[r]
        row = approx[r]
        base = row_base[r]
        if has_add:
            for j in range(n_cols):
                row[j] = row[j] + base + item_add[j]
        else:
            for j in range(n_cols):
                row[j] = row[j] + base
        if can_exclude and u >= 0:
            for p in range(excl_indptr[u], excl_indptr[u + 1]):
                row[excl_indices[p]] = -np.inf
        # The n-th best approximate score s_n: a min-heap of the n best values.
        size = n - n  # zero, not the literal 0 (which would compile the sift twice)
        for c0 in range(0, n_cols, _CHUNK):
            c1 = c0 + _CHUNK if c0 + _CHUNK < n_cols else n_cols
            if size == n and not _chunk_max(row, c0, c1) > heap[0]:
                continue
            for j in range(c0, c1):
                s = row[j]
                if not s > -np.inf:  # excluded
                    continue
                if size < n:
                    pos = size
                    size += 1
                    while pos > 0 and s < heap[(pos - 1) >> 1]:
                        heap[pos] = heap[(pos - 1) >> 1]
                        pos = (pos - 1) >> 1
                    heap[pos] = s
                elif s > heap[0]:
                    heap[0] = s
                    _sift_down_values(heap, size)
        threshold = heap[0] - slack[r] if size == n else -np.inf
        # Every candidate (an item at or above the threshold: usually about n of them),
        # scored exactly, enters the best n of (exact score desc, item asc) by insertion;
        # items arrive in increasing order, so the lower one stays first among equals.
        idx = out_idx[r]
        m = 0
        for c0 in range(0, n_cols, _CHUNK):
            c1 = c0 + _CHUNK if c0 + _CHUNK < n_cols else n_cols
            if not _chunk_max(row, c0, c1) >= threshold:
                continue
            for j in range(c0, c1):
                a = row[j]
                if not (a > -np.inf and a >= threshold):
                    continue
                # (an int32 item: the signature predict's score_pairs compiles too)
                e = exact_score(P, Q, bu, bi, intercept, u, np.int32(j)) if u >= 0 else fallback[j]
                if m == n and not e > best[n - 1]:
                    continue
                pos = m if m < n else n - 1
                while pos > 0 and e > best[pos - 1]:
                    best[pos] = best[pos - 1]
                    idx[pos] = idx[pos - 1]
                    pos -= 1
                best[pos] = e
                idx[pos] = j
                if m < n:
                    m += 1
        for q in range(m):
            out_scores[r, q] = best[q]


def topk_rescored(
    approx, row_base, item_add, row_users, excl_indptr, excl_indices, slack, P, Q, bu, bi,
    intercept, fallback, out_idx, out_scores,
):  # fmt: skip
    """Exact top-n per row, from approximate scores.

    ``approx[r] + row_base[r] + item_add`` (an empty ``item_add`` adds nothing; the sum
    is formed here, in one pass over a row still in cache) are float32 scores of user
    ``row_users[r]`` (BLAS), each within
    ``slack[r] / 2`` of the exact score (:func:`mfrec.kernels.score.exact_score`;
    ``fallback[j]`` for an unknown user, ``row_users[r] < 0``). If s_n is the n-th best
    approximate score, every item of the exact top-n has an approximate score of at
    least s_n - slack[r] (|A - E| <= B gives s_n <= T + B and A >= T - B for the exact
    n-th score T), so rescoring just those candidates exactly and ranking them by
    (exact score desc, item asc) gives the exact top-n whatever rounding the
    approximate scores had. Excluded items (as in :func:`topk_rows`) never enter.
    ``out_idx`` / ``out_scores`` arrive filled with -1 / -inf; slots beyond the
    candidates stay so. Runs on the calling thread (:func:`recommend_exact` is the
    parallel, blocked caller).
    """
    n = out_idx.shape[1]
    _rescore_rows(
        approx, row_base, item_add, row_users, excl_indptr, excl_indices, slack, P, Q, bu,
        bi, intercept, fallback, np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float64),
        out_idx, out_scores,
    )  # fmt: skip


def recommend_exact(
    P32, QT32, row_users, row_base, item_add, slack, excl_indptr, excl_indices, P, Q, bu, bi,
    intercept, fallback, block_rows, out_idx, out_scores,
):  # fmt: skip
    """Exact top-n for many users, each thread taking whole blocks of ``block_rows``
    users: one float32 matrix product per block (``np.dot``: BLAS, which the caller
    keeps single-threaded so that the two thread pools never compete for the cores),
    then :func:`topk_rescored`'s selection and exact rescoring on rows still in cache.
    Rows of unknown users (``row_users < 0``) are scored by ``fallback``."""
    n_rows = row_users.shape[0]
    n_blocks = (n_rows + block_rows - 1) // block_rows
    # The product is numpy's (it releases the GIL); only the selection is compiled, so a
    # first recommend does not compile numba's BLAS binding and a second parallel kernel.
    # The approximate scores need not match any other product bit for bit: the exact
    # rescoring bounds their error whatever it is.
    fallback32 = fallback.astype(np.float32)
    if item_add.shape[0] > 0:
        fallback32 = fallback32 - item_add
    blocks = itertools.count()  # next() is atomic under the GIL
    n = out_idx.shape[1]

    def work():
        heap = np.empty(n, dtype=np.float32)
        best = np.empty(n, dtype=np.float64)
        while (blk := next(blocks)) < n_blocks:
            r0 = blk * block_rows
            r1 = min(r0 + block_rows, n_rows)
            users = row_users[r0:r1]
            known = users >= 0
            if known.all():
                approx = P32[users] @ QT32
            else:
                approx = np.empty((r1 - r0, QT32.shape[1]), dtype=np.float32)
                approx[known] = P32[users[known]] @ QT32
                approx[~known] = fallback32
            _rescore_rows(
                approx, row_base[r0:r1], item_add, users, excl_indptr, excl_indices,
                slack[r0:r1], P, Q, bu, bi, intercept, fallback, heap, best,
                out_idx[r0:r1], out_scores[r0:r1],
            )  # fmt: skip

    def prepare():  # compile the selection on this thread (see run_threads)
        _rescore_rows(
            np.empty((0, QT32.shape[1]), dtype=np.float32), row_base[:0], item_add,
            row_users[:0], excl_indptr, excl_indices, slack[:0], P, Q, bu, bi, intercept,
            fallback, np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float64),
            out_idx[:0], out_scores[:0],
        )  # fmt: skip

    run_threads(work, n_blocks, prepare=prepare)
