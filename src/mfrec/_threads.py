"""Thread control: numba's worker threads and the BLAS pool, never oversubscribed."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)


def available_threads() -> int:
    """Threads numba may use here (``NUMBA_NUM_THREADS``, else the usable cores)."""
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


ENV_THREADS = "MFREC_THREADS"


def env_threads() -> int | None:
    """The ``MFREC_THREADS`` cap (a positive int), or None when it is unset or empty."""
    text = os.environ.get(ENV_THREADS, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        from mfrec.exceptions import ParameterError

        raise ParameterError(
            f"{ENV_THREADS} must be a positive whole number of threads, got {text!r}; "
            f"set it to e.g. 1 or 2, or unset it to use every core"
        )
    return value


def resolve_threads(n_threads: int | None) -> int:
    """``None`` -> every available thread, capped by ``MFREC_THREADS`` when it is set;
    an int is capped at what numba has."""
    limit = available_threads()
    if n_threads is None:
        cap = env_threads()
        return limit if cap is None else min(cap, limit)
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


_blas_controller: Any = None


def _controller() -> Any:
    """The BLAS libraries' thread controls, found once. OpenBLAS starts its thread
    pool lazily, on its first call, and that start resets an earlier thread limit: one
    tiny call to numpy's and to scipy's BLAS first makes both load and start, so the
    limits stick. Finding the libraries reads /proc/self/maps (milliseconds): doing it
    once keeps a single recommend_for_ratings call at a fraction of a millisecond.
    A BLAS loaded later by other code is not controlled."""
    global _blas_controller
    if _blas_controller is None:
        import numpy as np
        import scipy.linalg
        from threadpoolctl import ThreadpoolController

        a = np.eye(2)
        a @ a  # numpy's OpenBLAS
        scipy.linalg.svd(a)  # scipy ships its own
        _blas_controller = ThreadpoolController().select(user_api="blas")
    return _blas_controller


@contextlib.contextmanager
def blas_threads(n_threads: int) -> Iterator[None]:
    """Limit the BLAS thread pools to ``n_threads`` inside the block (threadpoolctl)."""
    with _controller().limit(limits=n_threads):
        yield


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
