"""What the kernels share: fastmath flags and a small seeded random generator.

splitmix64 (Steele, Lea & Flood 2014) gives every block or row its own reproducible
stream from one 64-bit seed, so shuffles and draws never depend on which thread runs
them (house rule 5).
"""

import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Reassociation (vectorised reductions) and fused multiply-add, but NaN and infinity
# semantics kept: divergence must stay visible.
FAST = {"reassoc", "contract", "nsz", "arcp"}

_MASK = 0xFFFFFFFFFFFFFFFF


@njit(cache=True, nogil=True)
def splitmix64(state):
    """Advance ``state`` (uint64) and return ``(state, 64 random bits)``."""
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(_MASK)
    z = state
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(_MASK)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(_MASK)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def shuffle(values, start, stop, state):
    """Fisher-Yates shuffle of values[start:stop]; returns the advanced state."""
    for t in range(stop - 1, start, -1):
        state, draw = splitmix64(state)
        j = start + np.int64(draw % np.uint64(t - start + 1))
        values[t], values[j] = values[j], values[t]
    return state


@njit(cache=True, nogil=True)
def shuffle_pairs(a, b, start, stop, state):
    """Shuffle a[start:stop] and b[start:stop] with the same permutation; returns the
    advanced state."""
    for t in range(stop - 1, start, -1):
        state, draw = splitmix64(state)
        j = start + np.int64(draw % np.uint64(t - start + 1))
        a[t], a[j] = a[j], a[t]
        b[t], b[j] = b[j], b[t]
    return state


# -- dynamic hand-out of tasks to threads ------------------------------------------------
# numba's OpenMP layer splits a prange statically: thread t gets the t-th equal slice, and
# a thread the OS deschedules (another process wants the core) holds up the whole region.
# Instead, ``for _ in prange(WORKER_LOOPS)`` runs worker loops that claim tasks from a
# shared counter until none is left: each thread's first loop drains the queue with the
# others (its later loops find it empty), and a slow or descheduled thread simply claims
# fewer. (The loop count is a constant, not numba.get_num_threads(): that call compiles
# to a process-specific address, which would stop the kernel from being cached.) Tasks write disjoint memory and per-task results are
# reduced in task order afterwards, so results never depend on who ran what.
#: Worker loops of a dynamic hand-out: at least the number of threads that can help.
WORKER_LOOPS = 256


@intrinsic
def _fetch_add(typingctx, counter, index):
    """Atomically ``counter[index] += 1``; returns the value before (int64 array)."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", ptr, one, "monotonic")

    return types.int64(counter, index), codegen


@njit(cache=True, nogil=True, inline="always")
def claim(counter, index):
    """The next unclaimed task number of ``counter[index]`` (int64 array; start at 0)."""
    return _fetch_add(counter, index)


# -- dense symmetric positive definite solves (small d x d systems, one per row) ---------
# Inlined into their callers, so they compile with the caller's fastmath flags.
@njit(cache=True, nogil=True, inline="always")
def cholesky_lower(A):
    """Overwrite the lower triangle of the symmetric positive definite ``A`` (only that
    triangle is read) with its Cholesky factor L, ``A = L L^T``. Returns False, with
    ``A`` partly overwritten, when ``A`` is not positive definite."""
    m = A.shape[0]
    for j in range(m):
        d = A[j, j]
        for p in range(j):
            d -= A[j, p] * A[j, p]
        if not d > 0.0:
            return False
        d = np.sqrt(d)
        A[j, j] = d
        for i in range(j + 1, m):
            s = A[i, j]
            for p in range(j):
                s -= A[i, p] * A[j, p]
            A[i, j] = s / d
    return True


@njit(cache=True, nogil=True, inline="always")
def solve_lower(L, b, out):
    """out = L^-1 b (forward substitution); ``out`` may be ``b``."""
    for i in range(L.shape[0]):
        s = b[i]
        for p in range(i):
            s -= L[i, p] * out[p]
        out[i] = s / L[i, i]


@njit(cache=True, nogil=True, inline="always")
def solve_lower_t(L, x):
    """x = L^-T x in place (back substitution with the transpose of L)."""
    m = L.shape[0]
    for i in range(m - 1, -1, -1):
        s = x[i]
        for p in range(i + 1, m):
            s -= L[p, i] * x[p]
        x[i] = s / L[i, i]
