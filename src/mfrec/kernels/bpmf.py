"""Gibbs-sampling kernels for Bayesian probabilistic matrix factorization.

The model (Salakhutdinov & Mnih 2008, "Bayesian probabilistic matrix factorization
using Markov chain Monte Carlo", with biases, and optionally the implicit-feedback terms
of SVD++ and their "flipped" mirror, as in Rendle's Bayesian factorization machines):

    r_ui ~ N(mu + b_u + b_i + (p_u + ybar_u) . (q_i + zbar_i),  1 / alpha)
    ybar_u = |N(u)|^-1/2 sum_{j in N(u)} y_j        (items u rated; zero when unused)
    zbar_i = |N(i)|^-1/2 sum_{v in N(i)} z_v        (users who rated i; zero when unused)

Blocked step (:func:`sample_rows`): given everything else, a user's ``x_u = (p_u, b_u)``
has a Gaussian conditional. With regressors ``w_i = (q_i + zbar_i, 1)`` and targets
``t_ui = r_ui - mu - b_i - ybar_u . (q_i + zbar_i)``, and prior ``N(m, Lambda^-1)``:

    precision  Lambda* = Lambda + alpha sum_i w_i w_i^T
    mean       m*      = Lambda*^-1 (Lambda m + alpha sum_i w_i t_ui)

(BPMF eq. 12-13). It is drawn as ``x = m* + L^-T g`` with ``Lambda* = L L^T`` (Cholesky)
and ``g ~ N(0, I)``. Users are independent given the items, so they are sampled in
parallel; items likewise, with the roles swapped.

Coordinate step (:func:`implicit_pass`): the implicit vectors ``y_j`` enter the ratings of
every user who rated j, so they are not independent given the rest; each coordinate
``y_jf`` is drawn from its exact one-dimensional conditional, one item after another (the
coordinate-wise Gibbs sampler of libFM, Rendle 2012, with the residual caching that makes
a pass cost O(n_ratings) per factor).

Randomness is explicit: each call gets 64-bit seeds (one per block of rows, or one per
pass) and draws standard normals from a splitmix64 stream (Box-Muller), so a result
depends on the seeds, never on the number of threads or on scheduling.
"""

import numpy as np
from numba import njit

from ._common import cholesky_lower, claim, run_workers, solve_lower, solve_lower_t, splitmix64

# splitmix64 constants, for the independent pure-Python reference below.
_MASK = 0xFFFFFFFFFFFFFFFF
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB

_TWO_PI = 2.0 * np.pi


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _normal(state):
    """One standard normal (Box-Muller, cosine branch) from two uniforms in (0, 1)."""
    state, a = splitmix64(state)
    state, b = splitmix64(state)
    u1 = (np.float64(a >> np.uint64(11)) + 0.5) * 2.0**-53
    u2 = (np.float64(b >> np.uint64(11)) + 0.5) * 2.0**-53
    return state, np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def normal_stream(seed, n):
    """The first ``n`` standard normals of the stream seeded with ``seed`` (for tests)."""
    out = np.empty(n)
    state = np.uint64(seed)
    for t in range(n):
        state, out[t] = _normal(state)
    return out


@njit(cache=True, nogil=True, no_cfunc_wrapper=True, no_cpython_wrapper=True)
def _draw_gaussian(A, h, g, out):
    """out = A^-1 h + L^-T g where A = L L^T (A's lower triangle is overwritten by L).

    Returns False (and fills ``out`` with NaN) when A is not positive definite.
    """
    if not cholesky_lower(A):
        out[:] = np.nan
        return False
    # Forward solve L w = h, then back solve L^T x = w + g.
    solve_lower(A, h, out)
    for i in range(A.shape[0]):
        out[i] += g[i]
    solve_lower_t(A, out)
    return True


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _sample_rows_worker(
    counter, n_tasks, indptr, cols, ratings, other, other_bias, offset, mu, alpha, prior_prec,
    prior_h, seeds, block_rows, out_factors, out_bias,
):  # fmt: skip
    n_rows = indptr.shape[0] - 1
    k = other.shape[1]
    d = k + 1
    while True:
        b = claim(counter, 0)
        if b >= n_tasks:
            break
        A = np.empty((d, d))
        h = np.empty(d)
        w = np.empty(d)
        g = np.empty(d)
        x = np.empty(d)
        state = np.uint64(seeds[b])
        for r in range(b * block_rows, min((b + 1) * block_rows, n_rows)):
            for a in range(d):
                h[a] = prior_h[a]
                for c in range(a + 1):
                    A[a, c] = prior_prec[a, c]
            for t in range(indptr[r], indptr[r + 1]):
                col = cols[t]
                target = ratings[t] - mu - other_bias[col]
                for f in range(k):
                    w[f] = other[col, f]
                    target -= offset[r, f] * w[f]
                w[k] = 1.0
                target *= alpha
                for a in range(d):
                    h[a] += w[a] * target
                    wa = alpha * w[a]
                    for c in range(a + 1):  # lower triangle only
                        A[a, c] += wa * w[c]
            for a in range(d):
                state, g[a] = _normal(state)
            _draw_gaussian(A, h, g, x)
            for f in range(k):
                out_factors[r, f] = x[f]
            out_bias[r] = x[k]


def sample_rows(
    indptr, cols, ratings, other, other_bias, offset, mu, alpha, prior_prec, prior_h, seeds,
    block_rows, out_factors, out_bias,
):  # fmt: skip
    """Draw every row's (factors, bias) from its Gaussian conditional (module docstring).

    Row r's ratings are ``ratings[indptr[r]:indptr[r+1]]`` of columns ``cols[...]``;
    ``other`` holds the columns' effective vectors (n_cols x k), ``other_bias`` their
    biases, ``offset`` the rows' implicit offsets (n_rows x k). ``prior_prec`` is the
    (k+1) x (k+1) prior precision of (factors, bias) and ``prior_h`` = prior_prec @
    prior mean. Rows are taken in blocks of ``block_rows``; block b draws its normals
    from ``seeds[b]``. Writes ``out_factors`` (n_rows x k) and ``out_bias``.
    """
    n_blocks = (indptr.shape[0] - 1 + block_rows - 1) // block_rows
    run_workers(
        _sample_rows_worker, n_blocks, indptr, cols, ratings, other, other_bias, offset, mu,
        alpha, prior_prec, prior_h, seeds, block_rows, out_factors, out_bias,
    )  # fmt: skip


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def residuals(indptr, cols, ratings, row_vecs, col_vecs, row_bias, col_bias, mu, out):
    """out[t] = ratings[t] - (mu + b_r + b_c + row_vecs[r] . col_vecs[c]) for every CSR
    entry t = (r, c); returns the sum of squared residuals (summed per row, then over
    rows). Serial: it costs less than starting a parallel loop on a busy machine."""
    n_rows = indptr.shape[0] - 1
    k = row_vecs.shape[1]
    row_sse = np.zeros(n_rows)
    for r in range(n_rows):
        s = 0.0
        for t in range(indptr[r], indptr[r + 1]):
            c = cols[t]
            pred = mu + row_bias[r] + col_bias[c]
            for f in range(k):
                pred += row_vecs[r, f] * col_vecs[c, f]
            e = ratings[t] - pred
            out[t] = e
            s += e * e
        row_sse[r] = s
    total = 0.0
    for r in range(n_rows):
        total += row_sse[r]
    return total


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def implicit_pass(
    t_indptr,
    t_cols,
    t_pos,
    o_indptr,
    o_rows,
    norm,
    other_t,
    implicit,
    offset,
    resid,
    alpha,
    prior_mean,
    prior_prec,
    seed,
    work,
):
    """One coordinate-wise Gibbs pass over the implicit vectors of the "other" side.

    Notation for the user-side pass (SVD++'s y): T = users, O = items. User t's ratings
    are CSR entries ``t_indptr[t]:t_indptr[t+1]`` of items ``t_cols``, with residuals at
    ``resid[t_pos[...]]``; ``o_rows[o_indptr[j]:o_indptr[j+1]]`` are the users who rated j
    (its implicit neighbours); ``norm[t]`` = |N(t)|^-1/2; ``other_t`` the items' effective
    vectors, transposed (k x n_O, so that one factor is contiguous); ``implicit`` the y_j
    (updated); ``offset`` the ybar_t (kept equal to norm[t] * sum_j y_j); ``resid`` (kept
    equal to rating - prediction).

    For factor f, the conditional of y_jf given the rest (prior N(prior_mean[f],
    1/prior_prec[f])), with A_t = sum_i x_if^2 and B_t = sum_i e_ti x_if over t's
    ratings (x = other), is Gaussian with

        precision = prior_prec[f] + alpha sum_{t in N(j)} c_t^2 A_t
        mean      = (prior_prec[f] prior_mean[f]
                     + alpha sum_{t in N(j)} c_t (B_t + c_t A_t y_jf)) / precision

    After each draw, B_t of the users of j moves by -c_t delta A_t; residuals and offsets
    catch up once per factor, in the same loop that sums A and B for the next factor.
    Items are visited in order (their conditionals depend on each other), and the whole
    pass is serial: its per-user loops are too short to pay for the 2(k+1) parallel
    start-ups they would need. Normals come from one stream seeded with ``seed``. ``work`` is n_T x 4 scratch, holding
    (c_t, c_t A_t, B_t, pending change of offset_t) side by side: the sequential loop
    over items reads each user's four numbers from one cache line.
    """
    n_t = t_indptr.shape[0] - 1
    n_o = o_indptr.shape[0] - 1
    k = other_t.shape[0]
    state = np.uint64(seed)
    for f in range(k + 1):
        for t in range(n_t):
            start = t_indptr[t]
            stop = t_indptr[t + 1]
            if f > 0:  # apply factor f-1's changes to t's offset and residuals
                dt = work[t, 3]
                if dt != 0.0:
                    offset[t, f - 1] += dt
                    for p in range(start, stop):
                        resid[t_pos[p]] -= dt * other_t[f - 1, t_cols[p]]
            if f < k:
                a = 0.0
                s = 0.0
                for p in range(start, stop):
                    x = other_t[f, t_cols[p]]
                    a += x * x
                    s += resid[t_pos[p]] * x
                work[t, 0] = norm[t]
                work[t, 1] = norm[t] * a
                work[t, 2] = s
                work[t, 3] = 0.0
        if f == k:
            break
        lam = prior_prec[f]
        lam_mean = lam * prior_mean[f]
        for j in range(n_o):
            y = implicit[j, f]
            prec = lam
            num = lam_mean
            for p in range(o_indptr[j], o_indptr[j + 1]):
                t = o_rows[p]
                c = work[t, 0]
                ca = work[t, 1]
                prec += alpha * c * ca
                num += alpha * c * (work[t, 2] + ca * y)
            state, g = _normal(state)
            y_new = num / prec + g / np.sqrt(prec)
            delta = y_new - y
            implicit[j, f] = y_new
            for p in range(o_indptr[j], o_indptr[j + 1]):
                t = o_rows[p]
                work[t, 2] -= delta * work[t, 1]
                work[t, 3] += delta * work[t, 0]


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def scatter(X, mean):
    """sum_n (X[n] - mean)(X[n] - mean)^T, summed serially over n (BLAS may change
    its summation order with the thread count; this does not)."""
    n, k = X.shape
    out = np.empty((k, k))
    for a in range(k):
        for c in range(a + 1):
            s = 0.0
            for r in range(n):
                s += (X[r, a] - mean[a]) * (X[r, c] - mean[c])
            out[a, c] = s
    for a in range(k):
        for c in range(a + 1, k):
            out[a, c] = out[c, a]
    return out


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def _sample_moments_worker(counter, n_tasks, UF, IF, BU, BI, mu, users, items, mean_out, var_out):  # fmt: skip
    S = BU.shape[1]
    k = UF.shape[1] // S
    while True:
        t = claim(counter, 0)
        if t >= n_tasks:
            break
        u = users[t]
        i = items[t]
        shift = 0.0
        s1 = 0.0
        s2 = 0.0
        for s in range(S):
            dot = 0.0
            for f in range(s * k, (s + 1) * k):
                dot += np.float64(UF[u, f]) * IF[i, f]
            pred = mu + np.float64(BU[u, s]) + np.float64(BI[i, s]) + dot * S
            if s == 0:
                shift = pred
            dev = pred - shift
            s1 += dev
            s2 += dev * dev
        m = s1 / S
        mean_out[t] = shift + m
        var_out[t] = max(s2 / S - m * m, 0.0)


def sample_moments(UF, IF, BU, BI, mu, users, items, mean_out, var_out):
    """Mean and variance over the stored posterior samples of each pair's prediction.

    Sample s of user u is ``UF[u, s*k:(s+1)*k] * sqrt(S)`` (the factors are stored
    scaled by 1/sqrt(S), so that the plain dot product of UF and IF rows is the average
    of the S sample dot products), with bias ``BU[u, s]``; items likewise. The variance
    is accumulated around the first sample's prediction for numerical stability.
    """
    run_workers(
        _sample_moments_worker, users.shape[0], UF, IF, BU, BI, mu, users, items, mean_out,
        var_out,
    )  # fmt: skip


# -- NumPy references (tests check the kernels against them) ------------------------------
def normal_stream_reference(seed, n):
    """Pure-Python splitmix64 + Box-Muller: the same numbers as :func:`normal_stream`."""
    state = int(seed) & _MASK
    out = np.empty(n)

    def next_uniform():
        nonlocal state
        state = (state + _GOLDEN) & _MASK
        z = state
        z = ((z ^ (z >> 30)) * _MIX1) & _MASK
        z = ((z ^ (z >> 27)) * _MIX2) & _MASK
        z ^= z >> 31
        return ((z >> 11) + 0.5) * 2.0**-53

    for t in range(n):
        u1 = next_uniform()
        u2 = next_uniform()
        out[t] = np.sqrt(-2.0 * np.log(u1)) * np.cos(_TWO_PI * u2)
    return out


def sample_rows_reference(
    indptr, cols, ratings, other, other_bias, offset, mu, alpha, prior_prec, prior_h, seeds,
    block_rows,
):  # fmt: skip
    """NumPy reference of :func:`sample_rows`; returns (factors, bias)."""
    n_rows = len(indptr) - 1
    k = other.shape[1]
    factors = np.empty((n_rows, k))
    bias = np.empty(n_rows)
    for b in range(-(-n_rows // block_rows)):
        rows = range(b * block_rows, min((b + 1) * block_rows, n_rows))
        normals = normal_stream_reference(seeds[b], len(rows) * (k + 1)).reshape(-1, k + 1)
        for g, r in zip(normals, rows, strict=True):
            sl = slice(indptr[r], indptr[r + 1])
            W = np.hstack([other[cols[sl]], np.ones((sl.stop - sl.start, 1))])
            target = ratings[sl] - mu - other_bias[cols[sl]] - other[cols[sl]] @ offset[r]
            precision = prior_prec + alpha * W.T @ W
            L = np.linalg.cholesky(precision)
            mean = np.linalg.solve(precision, prior_h + alpha * W.T @ target)
            x = mean + np.linalg.solve(L.T, g)
            factors[r], bias[r] = x[:k], x[k]
    return factors, bias


def implicit_pass_reference(
    t_indptr, t_cols, t_pos, o_indptr, o_rows, norm, other_t, implicit, offset, resid, alpha,
    prior_mean, prior_prec, seed,
):  # fmt: skip
    """Plain reference of :func:`implicit_pass`: each y_jf's conditional recomputed from
    scratch (residuals updated after every draw); updates the arrays in place."""
    other = other_t.T
    n_o = len(o_indptr) - 1
    k = other.shape[1]
    normals = normal_stream_reference(seed, n_o * k)
    for f in range(k):
        for j in range(n_o):
            users = o_rows[o_indptr[j] : o_indptr[j + 1]]
            prec, num = prior_prec[f], prior_prec[f] * prior_mean[f]
            for t in users:
                sl = slice(t_indptr[t], t_indptr[t + 1])
                x = other[t_cols[sl], f]
                e_without = resid[t_pos[sl]] + norm[t] * implicit[j, f] * x
                prec += alpha * norm[t] ** 2 * x @ x
                num += alpha * norm[t] * x @ e_without
            y_new = num / prec + normals[f * n_o + j] / np.sqrt(prec)
            delta = y_new - implicit[j, f]
            implicit[j, f] = y_new
            for t in users:
                sl = slice(t_indptr[t], t_indptr[t + 1])
                offset[t, f] += norm[t] * delta
                resid[t_pos[sl]] -= norm[t] * delta * other[t_cols[sl], f]


def sample_moments_reference(UF, IF, BU, BI, mu, users, items):
    """NumPy reference of :func:`sample_moments`; returns (mean, var)."""
    S = BU.shape[1]
    k = UF.shape[1] // S
    U = UF[users].astype(np.float64).reshape(len(users), S, k)
    V = IF[items].astype(np.float64).reshape(len(items), S, k)
    biases = BU[users].astype(np.float64) + BI[items].astype(np.float64)
    preds = mu + biases + S * np.einsum("nsk,nsk->ns", U, V)
    return preds.mean(axis=1), preds.var(axis=1)
