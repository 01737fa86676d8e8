"""Scoring kernels: dot products of user and item factors for index pairs."""

import numpy as np
from numba import njit

from ._common import claim, run_workers


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
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


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _score_pairs_worker(counter, n_tasks, P, Q, bu, bi, intercept, users, items, out):
    n = users.shape[0]
    while True:
        task = claim(counter, 0)
        if task >= n_tasks:
            break
        for t in range(task * 256, min(n, (task + 1) * 256)):
            out[t] = exact_score(P, Q, bu, bi, intercept, users[t], items[t])


def score_pairs(P, Q, bu, bi, intercept, users, items, out):
    """out[t] = exact_score of pair t (empty bu/bi arrays mean no bias)."""
    n_tasks = (users.shape[0] + 255) // 256
    run_workers(_score_pairs_worker, n_tasks, P, Q, bu, bi, intercept, users, items, out)


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
@njit(cache=True, nogil=True, no_cfunc_wrapper=True, no_cpython_wrapper=True)
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


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _score_block_worker(counter, n_tasks, P, QT, bu, bi, intercept, users, out):
    n_items = QT.shape[1]
    n_rows = users.shape[0]
    n_chunks = (n_items + _CHUNK - 1) // _CHUNK
    while True:
        task = claim(counter, 0)
        if task >= n_tasks:
            break
        g = task // n_chunks
        c = task % n_chunks
        g0 = g * _GROUP
        g1 = min(g0 + _GROUP, n_rows)
        c0 = c * _CHUNK
        c1 = min(c0 + _CHUNK, n_items)
        _score_group(P, QT, bu, bi, intercept, users, g0, g1, c0, c1, out)


def score_block(P, QT, bu, bi, intercept, users, out):
    """out[r, j] = intercept + bu[u] + bi[j] + sum_f P[u, f] QT[f, j] with u = users[r].

    float32, each score summed in factor order (one multiply-add per factor): it is
    computed the same way whatever the block size, grouping or thread count, so scoring
    a user alone or in a batch gives identical numbers (BLAS does not promise that: it
    switches kernels by matrix shape).
    """
    n_groups = (users.shape[0] + _GROUP - 1) // _GROUP
    n_chunks = (QT.shape[1] + _CHUNK - 1) // _CHUNK
    run_workers(_score_block_worker, n_groups * n_chunks, P, QT, bu, bi, intercept, users, out)


def score_block_reference(P, QT, bu, bi, intercept, users):
    """NumPy reference of :func:`score_block` (BLAS; equal up to float rounding)."""
    out = (P[users] @ QT).astype(np.float64) + intercept
    if len(bu):
        out += bu[users, None]
    if len(bi):
        out += bi[None, :]
    return out
