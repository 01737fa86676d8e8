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


@contextlib.contextmanager
def blas_threads(n_threads: int) -> Iterator[None]:
    """Limit BLAS/OpenMP pools to ``n_threads`` inside the block (threadpoolctl)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_threads):
        yield


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
