"""What the kernels share: fastmath flags, a small seeded random generator, the dynamic
hand-out of tasks to threads and small dense solves.

splitmix64 (Steele, Lea & Flood 2014) gives every block or row its own reproducible
stream from one 64-bit seed, so shuffles and draws never depend on which thread runs
them (house rule 5).
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Reassociation (vectorised reductions) and fused multiply-add, but NaN and infinity
# semantics kept: divergence must stay visible.
FAST = {"reassoc", "contract", "nsz", "arcp"}

_MASK = 0xFFFFFFFFFFFFFFFF

# Compile options. numba builds, for every compiled function, a C-callable wrapper and a
# CPython wrapper (which unboxes each argument): together about a fifth of a cold
# compile. No kernel's C address is ever taken, so every kernel has
# ``no_cfunc_wrapper=True``; helpers that only other kernels call (their names start
# with ``_`` and are not workers) have ``no_cpython_wrapper=True`` too. Such a helper
# must never be called from Python: without its wrapper, the call crashes the process.


#: The decorator of a hot-loop helper that only other kernels call: inlined into its
#: caller (compiled with the caller, no call of its own) and without wrappers.
inline_helper = njit(
    cache=True,
    nogil=True,
    fastmath=FAST,
    inline="always",
    no_cfunc_wrapper=True,
    no_cpython_wrapper=True,
)


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def splitmix64(state):
    """Advance ``state`` (uint64) and return ``(state, 64 random bits)``."""
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(_MASK)
    z = state
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(_MASK)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(_MASK)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
def shuffle(values, start, stop, state):
    """Fisher-Yates shuffle of values[start:stop]; returns the advanced state."""
    for t in range(stop - 1, start, -1):
        state, draw = splitmix64(state)
        j = start + np.int64(draw % np.uint64(t - start + 1))
        values[t], values[j] = values[j], values[t]
    return state


@njit(cache=True, nogil=True, no_cfunc_wrapper=True)
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
# A parallel kernel is a plain ``@njit(nogil=True)`` *worker* that claims task numbers
# from a shared counter until none is left (``while True: t = claim(counter, 0); if t >=
# n_tasks: break; ...``), and :func:`run_workers` runs it on the calling thread and on
# ``numba.get_num_threads() - 1`` threads of a small Python pool at once (the compiled
# worker releases the GIL). A slow or descheduled thread simply claims fewer tasks, and
# threads that have nothing to do wait on a lock (they never spin). Tasks write disjoint
# memory and per-task results are reduced in task order afterwards, so results never
# depend on who ran what. Why not numba's ``parallel=True``/``prange``: a parfor kernel
# costs several times the compile of the same loop in a plain function (the parfor
# passes, then LLVM on the outlined gufunc), and the first run paid it for every kernel
# (docs/performance.md, "The first run").
_pool = None
_pool_lock = threading.Lock()


def _reset_pool():  # a forked child has none of its parent's threads
    global _pool
    _pool = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_pool)


def _executor():
    """The shared pool: one helper per thread numba may use beyond the caller's
    (``NUMBA_NUM_THREADS - 1``; its threads start on demand). Never replaced while the
    process lives, so concurrent callers always submit to a live pool; a call that asks
    for more helpers than it has just queues the extra ones (they find no task left)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            size = max(1, int(numba.config.NUMBA_NUM_THREADS) - 1)
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="mfrec-kernel")
        return _pool


def run_threads(work, n_tasks, threads=None, prepare=None):
    """Call ``work()`` on ``min(threads, n_tasks)`` threads at once (the calling one
    included; ``threads`` defaults to ``numba.get_num_threads()``) and return when all
    calls have returned. ``work`` claims its tasks itself (a shared counter) until none
    is left, so the calls may start late or not at all: helpers that had not started
    when the calling thread's ``work()`` returned are cancelled, and the calling thread
    works too, so every task is done even when the pool's threads are busy elsewhere.

    ``prepare()``, when given, runs on the calling thread before any helper starts: it
    compiles (or loads) the kernels ``work`` calls, so that a first run compiles on the
    thread that :func:`mfrec._compile.watch_compiles` watches, not on a helper."""
    if threads is None:
        threads = numba.get_num_threads()
    helpers = min(int(threads), int(n_tasks)) - 1
    if helpers <= 0:
        work()
        return
    if prepare is not None:
        prepare()
    pool = _executor()
    futures = [pool.submit(work) for _ in range(helpers)]
    try:
        work()
    finally:
        for future in futures:
            future.cancel()
        for future in futures:
            if not future.cancelled():
                future.result()


def run_workers(worker, n_tasks, *args, threads=None):
    """Run ``worker(counter, n_tasks, *args)`` on ``min(threads, n_tasks)`` threads (the
    calling one included; ``threads`` defaults to ``numba.get_num_threads()``, which
    :mod:`mfrec._threads` sets). ``counter`` is a fresh int64 array of one zero that the
    workers claim tasks from (:func:`claim`); returns when every task is done
    (:func:`run_threads`). A compiled worker with ``nogil=True`` runs truly in parallel.
    """
    counter = np.zeros(1, dtype=np.int64)
    done = np.full(1, n_tasks, dtype=np.int64)  # a call with it claims nothing: it compiles
    run_threads(
        lambda: worker(counter, n_tasks, *args), n_tasks, threads,
        prepare=lambda: worker(done, n_tasks, *args),
    )  # fmt: skip


def _item_pointer(context, builder, signature, args):
    """Pointer to ``args[0][args[1]]`` (an int64 array and an index) in a codegen."""
    array_type = signature.args[0]
    array = context.make_array(array_type)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])


@intrinsic
def _fetch_add(typingctx, counter, index):
    """Atomically ``counter[index] += 1``; returns the value before (int64 array)."""

    def codegen(context, builder, signature, args):
        ptr = _item_pointer(context, builder, signature, args)
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", ptr, one, "monotonic")

    return types.int64(counter, index), codegen


@njit(cache=True, nogil=True, inline="always", no_cfunc_wrapper=True)
def chunk_bounds(chunk, n_chunks, n):
    """``(start, stop)`` of ``chunk`` when ``n`` items are cut into ``n_chunks``
    contiguous chunks of equal length (the last one shorter)."""
    size = (n + n_chunks - 1) // n_chunks
    return chunk * size, min(n, (chunk + 1) * size)


@njit(cache=True, nogil=True, inline="always", no_cfunc_wrapper=True)
def claim(counter, index):
    """The next unclaimed task number of ``counter[index]`` (int64 array; start at 0)."""
    return _fetch_add(counter, index)


# -- waiting for another task (dataflow schedules) ---------------------------------------
# A worker may wait until counter[index] has reached a value that other threads raise
# when they finish a task (:func:`publish`): the release/acquire pair makes everything
# the finished task wrote visible to the waiter. The wait spins briefly, then yields the
# core (sched_yield) on every check: on a busy machine the thread being waited for may
# be descheduled, and a spinning waiter would take the core it needs.
@intrinsic
def _publish(typingctx, counter, index):
    """Atomically ``counter[index] += 1`` with release ordering (int64 array)."""

    def codegen(context, builder, signature, args):
        ptr = _item_pointer(context, builder, signature, args)
        builder.atomic_rmw("add", ptr, context.get_constant(types.int64, 1), "release")
        return context.get_dummy_value()

    return types.none(counter, index), codegen


@intrinsic
def _load_acquire(typingctx, counter, index):
    """``counter[index]`` read atomically with acquire ordering (int64 array)."""

    def codegen(context, builder, signature, args):
        ptr = _item_pointer(context, builder, signature, args)
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(counter, index), codegen


@intrinsic
def _sched_yield(typingctx):
    """Give the core to another runnable thread (POSIX ``sched_yield``)."""

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.none(), codegen


@njit(cache=True, nogil=True, inline="always", no_cfunc_wrapper=True)
def publish(counter, index):
    """Announce one more finished task on ``counter[index]`` (see :func:`wait_for`)."""
    _publish(counter, index)


@njit(cache=True, nogil=True, inline="always", no_cfunc_wrapper=True)
def wait_for(counter, index, value):
    """Return once ``counter[index] >= value`` (raised by :func:`publish` elsewhere);
    what the publishing threads wrote before is then visible here."""
    spins = 0
    while _load_acquire(counter, index) < value:
        spins += 1
        if spins > 64:
            _sched_yield()


# -- dense symmetric positive definite solves (small d x d systems, one per row) ---------
# Inlined into their callers, so they compile with the caller's fastmath flags.
@njit(cache=True, nogil=True, inline="always", no_cfunc_wrapper=True)
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


@njit(cache=True, nogil=True, inline="always", no_cfunc_wrapper=True)
def solve_lower(L, b, out):
    """out = L^-1 b (forward substitution); ``out`` may be ``b``."""
    for i in range(L.shape[0]):
        s = b[i]
        for p in range(i):
            s -= L[i, p] * out[p]
        out[i] = s / L[i, i]


@njit(cache=True, nogil=True, inline="always", no_cfunc_wrapper=True)
def solve_lower_t(L, x):
    """x = L^-T x in place (back substitution with the transpose of L)."""
    m = L.shape[0]
    for i in range(m - 1, -1, -1):
        s = x[i]
        for p in range(i + 1, m):
            s -= L[p, i] * x[p]
        x[i] = s / L[i, i]
