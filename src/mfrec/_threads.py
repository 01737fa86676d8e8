"""Thread control: numba's worker threads and the BLAS pool, never oversubscribed."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

logger = logging.getLogger(__name__)


def available_threads() -> int:
    """Threads numba may use here (``NUMBA_NUM_THREADS``, else the usable cores)."""
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def resolve_threads(n_threads: int | None) -> int:
    """``None`` -> every available thread; an int is capped at what numba has."""
    limit = available_threads()
    if n_threads is None:
        return limit
    return max(1, min(int(n_threads), limit))


@contextlib.contextmanager
def numba_threads(n_threads: int | None) -> Iterator[int]:
    """Run numba parallel kernels on ``n_threads`` threads inside the block."""
    import numba

    n = resolve_threads(n_threads)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)


_blas_started = False


def _start_blas() -> None:
    # OpenBLAS starts its thread pool lazily, on its first call, and that start resets
    # an earlier thread limit: make one tiny call first so the limit below sticks.
    global _blas_started
    if not _blas_started:
        import numpy as np
        import scipy.linalg

        a = np.eye(2)
        a @ a  # numpy's OpenBLAS
        scipy.linalg.svd(a)  # scipy ships its own
        _blas_started = True


@contextlib.contextmanager
def blas_threads(n_threads: int) -> Iterator[None]:
    """Limit BLAS/OpenMP pools to ``n_threads`` inside the block (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    _start_blas()
    with threadpool_limits(limits=n_threads):
        yield


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
