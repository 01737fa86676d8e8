"""Scoring kernels: dot products of user and item factors for index pairs."""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def score_pairs(P, Q, bu, bi, intercept, users, items, out):
    """out[t] = intercept + bu[u] + bi[i] + P[u] . Q[i] for each pair t (empty bu/bi
    arrays mean no bias). Accumulates in float64."""
    k = P.shape[1]
    has_bu = bu.shape[0] > 0
    has_bi = bi.shape[0] > 0
    for t in prange(users.shape[0]):
        u = users[t]
        i = items[t]
        acc = intercept
        if has_bu:
            acc += bu[u]
        if has_bi:
            acc += bi[i]
        for f in range(k):
            acc += np.float64(P[u, f]) * Q[i, f]
        out[t] = acc


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
# chunk float32) stays in L2 while every user of the block is scored against it.
_CHUNK = 2048


@njit(parallel=True, cache=True, nogil=True)
def score_block(P, QT, bu, bi, intercept, users, out):
    """out[r, j] = intercept + bu[u] + bi[j] + sum_f P[u, f] QT[f, j] with u = users[r].

    float32, summed in factor order: each score is computed the same way whatever the
    block size or thread count, so scoring a user alone or in a batch gives identical
    numbers (BLAS does not promise that: it switches kernels by matrix shape).
    """
    k = QT.shape[0]
    n_items = QT.shape[1]
    has_bu = bu.shape[0] > 0
    has_bi = bi.shape[0] > 0
    for c0 in range(0, n_items, _CHUNK):
        c1 = min(c0 + _CHUNK, n_items)
        for r in prange(users.shape[0]):
            u = users[r]
            base = np.float32(intercept)
            if has_bu:
                base += bu[u]
            row = out[r]
            if has_bi:
                for j in range(c0, c1):
                    row[j] = base + bi[j]
            else:
                for j in range(c0, c1):
                    row[j] = base
            for f in range(k):
                pf = P[u, f]
                for j in range(c0, c1):
                    row[j] += pf * QT[f, j]


def score_block_reference(P, QT, bu, bi, intercept, users):
    """NumPy reference of :func:`score_block` (BLAS; equal up to float rounding)."""
    out = (P[users] @ QT).astype(np.float64) + intercept
    if len(bu):
        out += bu[users, None]
    if len(bi):
        out += bi[None, :]
    return out
