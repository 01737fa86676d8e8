"""Each numba kernel agrees with its NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfrec.kernels.score import (
    score_block,
    score_block_reference,
    score_pairs,
    score_pairs_reference,
)
from mfrec.kernels.topk import topk_rows, topk_rows_reference


def _factors(seed, n_users=30, n_items=5000, k=7):
    rng = np.random.default_rng(seed)
    P = rng.normal(size=(n_users, k)).astype(np.float32)
    Q = rng.normal(size=(n_items, k)).astype(np.float32)
    bu = rng.normal(size=n_users).astype(np.float32)
    bi = rng.normal(size=n_items).astype(np.float32)
    return P, Q, bu, bi


@pytest.mark.parametrize("with_bias", [True, False])
def test_score_pairs_matches_reference(with_bias):
    P, Q, bu, bi = _factors(0)
    if not with_bias:
        bu, bi = bu[:0], bi[:0]
    rng = np.random.default_rng(1)
    users = rng.integers(0, len(P), 1000).astype(np.int32)
    items = rng.integers(0, len(Q), 1000).astype(np.int32)
    out = np.empty(1000)
    score_pairs(P, Q, bu, bi, 3.5, users, items, out)
    np.testing.assert_allclose(
        out, score_pairs_reference(P, Q, bu, bi, 3.5, users, items), rtol=1e-12
    )


def test_score_block_matches_reference_across_chunks():
    # 5000 items spans several 2048-item chunks, including a partial one.
    P, Q, bu, bi = _factors(2)
    users = np.array([3, 0, 29, 3], dtype=np.int32)
    out = np.empty((4, len(Q)), dtype=np.float32)
    QT = np.ascontiguousarray(Q.T)
    score_block(P, QT, bu, bi, 1.25, users, out)
    np.testing.assert_allclose(
        out, score_block_reference(P, QT, bu, bi, 1.25, users), rtol=1e-4, atol=1e-4
    )
    assert np.array_equal(out[0], out[3]), "same user, same scores"


def test_score_block_does_not_depend_on_batch():
    P, Q, bu, bi = _factors(3)
    QT = np.ascontiguousarray(Q.T)
    users = np.arange(len(P), dtype=np.int32)
    batch = np.empty((len(P), len(Q)), dtype=np.float32)
    score_block(P, QT, bu, bi, 0.0, users, batch)
    for u in (0, 17):
        single = np.empty((1, len(Q)), dtype=np.float32)
        score_block(P, QT, bu, bi, 0.0, users[u : u + 1], single)
        assert np.array_equal(single[0], batch[u])


@settings(max_examples=60, deadline=None)
@given(
    n_items=st.integers(1, 40),
    n=st.integers(1, 12),
    seed=st.integers(0, 10_000),
    levels=st.integers(1, 6),
)
def test_topk_matches_full_sort(n_items, n, seed, levels):
    """Random scores with many ties (few distinct levels) and random exclusions."""
    rng = np.random.default_rng(seed)
    n_rows = 5
    scores = rng.integers(0, levels, size=(n_rows, n_items)).astype(np.float32)
    excluded = [
        np.sort(rng.choice(n_items, size=rng.integers(0, n_items + 1), replace=False))
        for _ in range(n_rows)
    ]
    indptr = np.concatenate([[0], np.cumsum([len(e) for e in excluded])]).astype(np.int32)
    indices = np.concatenate(excluded).astype(np.int32) if indptr[-1] else np.zeros(0, np.int32)
    rows = np.arange(n_rows, dtype=np.int32)
    rows[2] = -1  # an unknown user: nothing excluded
    n = min(n, n_items)
    out_idx = np.full((n_rows, n), -1, dtype=np.int32)
    out_scores = np.full((n_rows, n), -np.inf, dtype=np.float32)
    ref_idx, ref_scores = topk_rows_reference(scores, rows, indptr, indices, n)
    topk_rows(scores.copy(), rows, indptr, indices, out_idx, out_scores)
    assert np.array_equal(out_idx, ref_idx)
    assert np.array_equal(out_scores, ref_scores)


@settings(max_examples=80, deadline=None)
@given(
    n_items=st.integers(1, 60),
    n=st.integers(1, 12),
    k=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    integer_factors=st.booleans(),
)
def test_rescored_topk_is_exact_under_any_error_within_the_bound(
    n_items, n, k, seed, integer_factors
):
    """Approximate scores moved anywhere within +-slack/2 of the exact ones (here:
    adversarially random) still give exactly the exact top-n -- ties included, which
    integer-valued factors produce in numbers."""
    from mfrec.kernels.score import exact_score
    from mfrec.kernels.topk import topk_rescored

    rng = np.random.default_rng(seed)
    n_users = 4
    draw = (lambda shape: rng.integers(-2, 3, shape)) if integer_factors else rng.standard_normal
    P = np.asarray(draw((n_users, k)), dtype=np.float32)
    Q = np.asarray(draw((n_items, k)), dtype=np.float32)
    bu = np.asarray(draw(n_users), dtype=np.float32)
    bi = np.asarray(draw(n_items), dtype=np.float32)
    users = np.array([0, 1, -1, 3], dtype=np.int32)  # row 2: an unknown user
    fallback = 3.0 + bi.astype(np.float64)
    exact = np.array(
        [
            [
                exact_score(P, Q, bu, bi, 3.0, u, j) if u >= 0 else fallback[j]
                for j in range(n_items)
            ]
            for u in users
        ]
    )
    excluded = [
        np.sort(rng.choice(n_items, rng.integers(0, n_items + 1), replace=False)) for _ in users
    ]
    indptr = np.concatenate([[0], np.cumsum([len(e) for e in excluded])]).astype(np.int64)
    indices = np.concatenate(excluded).astype(np.int32)
    slack = np.full(n_users, 0.5)
    approx = (exact + rng.uniform(-0.25, 0.25, exact.shape)).astype(np.float32)
    n = min(n, n_items)
    out_idx = np.full((n_users, n), -1, dtype=np.int32)
    out_scores = np.full((n_users, n), -np.inf, dtype=np.float32)
    # Split the approximate scores into a product part, a row base and item terms, as
    # the recommend path passes them: the kernel must add them back itself.
    row_base = rng.standard_normal(n_users).astype(np.float32)
    item_add = rng.standard_normal(n_items).astype(np.float32)
    product = (approx - row_base[:, None] - item_add[None, :]).astype(np.float32)
    slack = slack + 1e-3  # the split itself rounds (by ~1e-6)
    topk_rescored(
        product, row_base, item_add, users, indptr, indices, slack, P, Q, bu, bi, 3.0,
        fallback, out_idx, out_scores,
    )  # fmt: skip
    for r, u in enumerate(users):
        allowed = np.ones(n_items, dtype=bool)
        if u >= 0:
            allowed[indices[indptr[u] : indptr[u + 1]]] = False
        candidates = np.flatnonzero(allowed)
        order = candidates[np.lexsort((candidates, -exact[r, candidates]))][:n]
        assert out_idx[r, : len(order)].tolist() == order.tolist()
        assert np.array_equal(out_scores[r, : len(order)], exact[r, order].astype(np.float32))
        assert np.all(out_idx[r, len(order) :] == -1)


def test_parallel_kernels_called_from_several_threads_at_once():
    """The kernels' thread pool is shared: calls from several Python threads at once (the
    HTTP service makes them) each get every one of their own tasks done, once."""
    from concurrent.futures import ThreadPoolExecutor

    from mfrec.kernels.score import score_pairs, score_pairs_reference

    rng = np.random.default_rng(0)
    P = rng.standard_normal((300, 8)).astype(np.float32)
    Q = rng.standard_normal((200, 8)).astype(np.float32)
    bu = rng.standard_normal(300).astype(np.float32)
    bi = rng.standard_normal(200).astype(np.float32)

    def call(seed):
        r = np.random.default_rng(seed)
        users = r.integers(0, 300, 5000).astype(np.int32)
        items = r.integers(0, 200, 5000).astype(np.int32)
        out = np.full(5000, np.nan)
        score_pairs(P, Q, bu, bi, 3.5, users, items, out)
        expected = score_pairs_reference(P, Q, bu, bi, 3.5, users, items)
        return np.allclose(out, expected, rtol=1e-12, atol=1e-9)

    with ThreadPoolExecutor(6) as callers:
        assert all(callers.map(call, range(24)))


def _half_sweep_inputs(n=5000, n_rows=40, n_others=70, seed=3):
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, n_rows, n).astype(np.int32)
    others = rng.integers(0, n_others, n).astype(np.int32)
    r = rng.normal(size=n)
    other_bias = rng.normal(size=n_others)
    denominator = 10.0 + np.bincount(rows, minlength=n_rows)
    return rows, others, r, other_bias, denominator


def test_bias_half_sweep_is_numpys_bincount_bit_for_bit_in_one_chunk():
    from mfrec.kernels.baseline import (
        bias_half_sweep,
        bias_half_sweep_reference,
        n_chunks,
    )

    rows, others, r, other_bias, denominator = _half_sweep_inputs()
    assert n_chunks(len(r)) == 1
    out, expected = np.empty(40), np.empty(40)
    bias_half_sweep(rows, others, r, other_bias, denominator, out, np.empty((1, 40)))
    bias_half_sweep_reference(rows, others, r, other_bias, denominator, expected)
    assert np.array_equal(out, expected)


def test_bias_half_sweep_in_chunks_agrees_and_does_not_depend_on_threads(monkeypatch):
    """Several chunks: the sums are regrouped (within a few ULPs of NumPy's), and the
    result is the same on one thread and on several, whoever claims which chunk."""
    import mfrec.kernels.baseline as kb
    from mfrec._threads import numba_threads

    monkeypatch.setattr(kb, "CHUNK", 300)
    rows, others, r, other_bias, denominator = _half_sweep_inputs()
    chunks = kb.n_chunks(len(r))
    assert chunks == kb.MAX_CHUNKS  # 5000 / 300 > 16: capped, longer chunks
    expected = np.empty(40)
    kb.bias_half_sweep_reference(rows, others, r, other_bias, denominator, expected)
    results = []
    for threads in (1, 2, 1, 2):
        out = np.full(40, np.nan)
        with numba_threads(threads):
            kb.bias_half_sweep(
                rows, others, r, other_bias, denominator, out, np.empty((chunks, 40))
            )
        results.append(out)
    np.testing.assert_allclose(results[0], expected, rtol=1e-12, atol=1e-15)
    for out in results[1:]:
        assert np.array_equal(out, results[0])
