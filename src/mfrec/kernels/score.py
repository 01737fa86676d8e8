"""Scoring kernels: dot products of user and item factors for index pairs."""

import numpy as np
from numba import njit, prange

from ._common import WORKER_LOOPS, claim


@njit(cache=True, nogil=True)
def exact_score(P, Q, bu, bi, intercept, u, i):
    """intercept + bu[u] + bi[i] + P[u] . Q[i] in float64, summed in factor order.

    THE score of a (user, item) pair: predict and recommend both call it, and without
    fastmath every caller gets the same bits whatever inlining or batching."""
    acc = np.float64(intercept)
    if bu.shape[0] > 0:
        acc += bu[u]
    if bi.shape[0] > 0:
        acc += bi[i]
    for f in range(P.shape[1]):
        acc += np.float64(P[u, f]) * Q[i, f]
    return acc


@njit(parallel=True, cache=True, nogil=True)
def score_pairs(P, Q, bu, bi, intercept, users, items, out):
    """out[t] = exact_score of pair t (empty bu/bi arrays mean no bias)."""
    _n = users.shape[0]
    _tasks = (_n + 255) // 256
    _counter = np.zeros(1, dtype=np.int64)
    for _ in prange(min(_tasks, WORKER_LOOPS)):  # worker loops (_common.claim)
        while True:
            _task = claim(_counter, 0)
            if _task >= _tasks:
                break
            for t in range(_task * 256, min(_n, (_task + 1) * 256)):
                out[t] = exact_score(P, Q, bu, bi, intercept, users[t], items[t])


def score_pairs_reference(P, Q, bu, bi, intercept, users, items):
    """NumPy reference of :func:`score_pairs`."""
    out = intercept + np.einsum(
        "ij,ij->i", P[users].astype(np.float64), Q[items].astype(np.float64)
    )
    if len(bu):
        out += bu[users]
    if len(bi):
        out += bi[items]
    return out


# Items per chunk in score_block: a chunk of the transposed item factors (n_factors x
# chunk float32, 256 KiB at 64 factors) stays in L2 while the block's users are scored
# against it, four users at a time so each factor row is loaded once per four users.
_CHUNK = 1024
_GROUP = 4


# No fastmath here: a fused multiply-add in one code path and not in another would
# break "batch equals single" by one rounding.
@njit(cache=True, nogil=True)
def _score_group(P, QT, bu, bi, intercept, users, g0, g1, c0, c1, out):
    k = QT.shape[0]
    has_bu = bu.shape[0] > 0
    has_bi = bi.shape[0] > 0
    for r in range(g0, g1):
        base = np.float32(intercept)
        if has_bu:
            base += bu[users[r]]
        row = out[r]
        if has_bi:
            for j in range(c0, c1):
                row[j] = base + bi[j]
        else:
            for j in range(c0, c1):
                row[j] = base
    if g1 - g0 == _GROUP:
        u0, u1, u2, u3 = users[g0], users[g0 + 1], users[g0 + 2], users[g0 + 3]
        r0, r1, r2, r3 = out[g0], out[g0 + 1], out[g0 + 2], out[g0 + 3]
        for f in range(k):
            p0, p1, p2, p3 = P[u0, f], P[u1, f], P[u2, f], P[u3, f]
            q = QT[f]
            for j in range(c0, c1):
                qj = q[j]
                r0[j] += p0 * qj
                r1[j] += p1 * qj
                r2[j] += p2 * qj
                r3[j] += p3 * qj
    else:
        for r in range(g0, g1):
            u = users[r]
            row = out[r]
            for f in range(k):
                pf = P[u, f]
                q = QT[f]
                for j in range(c0, c1):
                    row[j] += pf * q[j]


@njit(parallel=True, cache=True, nogil=True)
def score_block(P, QT, bu, bi, intercept, users, out):
    """out[r, j] = intercept + bu[u] + bi[j] + sum_f P[u, f] QT[f, j] with u = users[r].

    float32, each score summed in factor order (one multiply-add per factor): it is
    computed the same way whatever the block size, grouping or thread count, so scoring
    a user alone or in a batch gives identical numbers (BLAS does not promise that: it
    switches kernels by matrix shape).
    """
    n_items = QT.shape[1]
    n_rows = users.shape[0]
    n_groups = (n_rows + _GROUP - 1) // _GROUP
    n_chunks = (n_items + _CHUNK - 1) // _CHUNK
    _n = n_groups * n_chunks
    _tasks = _n
    _counter = np.zeros(1, dtype=np.int64)
    for _ in prange(min(_tasks, WORKER_LOOPS)):  # worker loops (_common.claim)
        while True:
            _task = claim(_counter, 0)
            if _task >= _tasks:
                break
            task = _task
            g = task // n_chunks
            c = task % n_chunks
            g0 = g * _GROUP
            g1 = min(g0 + _GROUP, n_rows)
            c0 = c * _CHUNK
            c1 = min(c0 + _CHUNK, n_items)
            _score_group(P, QT, bu, bi, intercept, users, g0, g1, c0, c1, out)


def score_block_reference(P, QT, bu, bi, intercept, users):
    """NumPy reference of :func:`score_block` (BLAS; equal up to float rounding)."""
    out = (P[users] @ QT).astype(np.float64) + intercept
    if len(bu):
        out += bu[users, None]
    if len(bi):
        out += bi[None, :]
    return out
