"""Thread control: numba's worker threads and the BLAS pool, never oversubscribed.

Threads are a resource shared with other processes (house rule 11). Three rules keep a
parallel fit from ever being much slower than a serial one:

- **Work decides.** ``resolve_threads(None, work=...)`` gives a parallel region one
  thread per :data:`MIN_WORK_PER_THREAD` units of work (about one multiply-add each),
  so small problems run on one thread: waking a second thread costs more than it saves.
- **Measure, then keep the faster.** An iterative fit left at the default thread count
  times its epochs with all threads and with one (:class:`EpochThreads`) and keeps the
  faster, probing the other now and then: on a busy machine it falls back to one thread
  by itself. Results never depend on the thread count, so switching is free.
- **Waiting threads sleep** (``OMP_WAIT_POLICY=PASSIVE``, see :mod:`mfrec.kernels`) and
  the schedules hand out blocks and rows dynamically, so a descheduled thread delays only
  the block it holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)

#: Units of work (about one multiply-add each) a parallel region needs per thread before
#: another thread pays for itself; below 2x this, one thread runs it (bench/contention.py).
MIN_WORK_PER_THREAD = 1_000_000

#: The same on a busy machine (another thread runnable), for regions that run once
#: (scoring, top-N, SVD++'s implicit sums) rather than epoch after epoch (those measure,
#: :class:`EpochThreads`). A region waits for its slowest thread, and on a busy machine a
#: helper is often descheduled for a whole time slice (a few ms) while it holds a task:
#: measured on 2 cores with 2 CPU-bound processes, a 0.4 ms region took 0.7 ms at the
#: median on 2 threads but 7 ms at the 90th percentile (0.6 / 1.5 ms on one thread). A
#: region is split only when each thread's share (tens of ms) dwarfs that tail.
BUSY_MIN_WORK_PER_THREAD = 50_000_000


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


def resolve_threads(n_threads: int | None, work: float | None = None, busy: bool = False) -> int:
    """The thread count to run with.

    ``None`` -> every available thread, capped by ``MFREC_THREADS`` when it is set, and,
    given the ``work`` of one parallel region (about one multiply-add per unit), by one
    thread per :data:`MIN_WORK_PER_THREAD` of it (per :data:`BUSY_MIN_WORK_PER_THREAD`
    when ``busy``; at least one); an int is capped at what numba has and never reduced
    by ``work``.
    """
    limit = available_threads()
    if n_threads is None:
        cap = env_threads()
        n = limit if cap is None else min(cap, limit)
        if work is None:
            return n
        per_thread = BUSY_MIN_WORK_PER_THREAD if busy else MIN_WORK_PER_THREAD
        return max(1, min(n, int(work // per_thread)))
    return max(1, min(int(n_threads), limit))


def is_automatic(n_threads: int | None) -> bool:
    """Whether the thread count was left to mfrec (so it may adapt it while fitting)."""
    return n_threads is None and not os.environ.get(ENV_THREADS, "").strip()


@contextlib.contextmanager
def numba_threads(n_threads: int | None, work: float | None = None) -> Iterator[int]:
    """Run numba parallel kernels on ``resolve_threads(n_threads, work)`` threads
    inside the block."""
    import numba

    import mfrec.kernels  # noqa: F401  (sets the OpenMP wait policy before threads start)

    n = resolve_threads(n_threads, work)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)


def region_threads(allowed: int, work: float) -> int:
    """Threads for one parallel region of ``work`` units run once (not epoch after
    epoch): at most ``allowed``, one per :data:`MIN_WORK_PER_THREAD` of work, and one per
    :data:`BUSY_MIN_WORK_PER_THREAD` when another thread is runnable
    (:func:`other_runnable`, read only when the work would be split at all)."""
    n = min(allowed, resolve_threads(None, work))
    if n > 1 and machine_busy():
        n = min(n, resolve_threads(None, work, busy=True))
    return n


def machine_busy() -> bool:
    """Whether a thread of another process (or another thread of this one) is ready to
    run right now: the cores are not all ours."""
    others = other_runnable()
    return others is not None and others > 0


@contextlib.contextmanager
def threads_for_work(work: float) -> Iterator[int]:
    """Inside the block, numba runs on no more threads than a region of ``work`` merits
    on the machine as it is now (:func:`region_threads`) nor than the caller allowed (an
    enclosing :func:`numba_threads`, or an adaptive fit that chose one thread)."""
    import numba

    import mfrec.kernels  # noqa: F401  (the OpenMP wait policy, before threads start)

    previous = numba.get_num_threads()
    n = region_threads(previous, work)
    numba.set_num_threads(n)
    try:
        yield n
    finally:
        numba.set_num_threads(previous)


def other_runnable() -> int | None:
    """Threads of other processes ready to run right now (``/proc/loadavg``; this
    process's main thread excluded, its sleeping workers not counted), or None where
    the system does not say."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - 1)


def own_run_delay() -> float | None:
    """Seconds this process's threads have spent ready to run but waiting for a CPU,
    summed over its live threads (``/proc/self/task/*/schedstat``), or None where the
    system does not say. Unlike a snapshot of the run queue, it measures exactly what a
    parallel schedule suffers from: our own threads kept off the cores."""
    total = 0
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


#: An epoch during which this process's threads waited for a CPU longer than this share
#: of its wall time ran on a busy machine: worth measuring an epoch on one thread
#: (:class:`EpochThreads`). Measured on 2 cores (BiasedMF on ML-100K, 1M and 10M
#: ratings): quiet epochs wait 0-3% (at most 15%, an epoch beside a daemon's burst),
#: epochs on two threads beside one or two CPU-bound processes 49-100%. A thread kept
#: off its core a quarter of the time still does more than one thread alone.
CONTENDED_SHARE = 0.25

#: An epoch too small to split on a busy machine is split only after an epoch that
#: waited less than this share (and with nobody in the run queue): there a wrong parallel
#: guess costs a stall of a time slice, a wrong serial one little.
QUIET_SHARE = 0.05

_clock = time.perf_counter


def _over(share: float | None, threshold: float) -> bool:
    """Whether a waited share (:meth:`EpochThreads.waited`) exceeds ``threshold``; with no
    measurement, whether the run queue holds another thread now."""
    return machine_busy() if share is None else share > threshold


class EpochThreads:
    """Picks the thread count of each epoch of an iterative fit: ``n`` threads or one,
    whichever measured faster per epoch (a measured parallel efficiency).

    Given the ``work`` of one epoch's parallel region, an epoch too small to split on a
    busy machine (fewer threads by :data:`BUSY_MIN_WORK_PER_THREAD` than ``n``) runs on
    those fewer threads, unmeasured, whenever this process's threads waited for a CPU
    more than :data:`QUIET_SHARE` of the last epoch or another thread is runnable now,
    and on ``n`` when both look quiet.

    Busy or quiet is judged from the epoch before: busy when this process's threads
    waited for a CPU more than :data:`CONTENDED_SHARE` of its wall time
    (:func:`own_run_delay`; a snapshot of the run queue, :func:`other_runnable`, before
    the first epoch or where the system keeps no such count). A process that runs for a
    millisecond now and then beside the fit does not make it busy; two CPU-bound ones do.

    While the machine looks quiet and no measurement says
    otherwise, every epoch runs on ``n`` threads. Once it is busy, the epochs measure
    one thread and ``n`` threads (each epoch's time, compiles excluded; the first epoch's
    first-call costs are not used) and then run the faster, probing the other again
    after 4, 8, 16, ... up to 32 epochs (back to 4 when a probe changes the answer):
    the load changes while a fit runs. With ``adaptive=False`` (a thread count the user
    chose) or ``n == 1`` it always answers ``n``. Results never depend on the thread
    count, so only speed changes.
    """

    def __init__(
        self, n: int, adaptive: bool = True, max_interval: int = 32, work: float | None = None
    ) -> None:
        self.n = max(1, int(n))
        self.adaptive = adaptive and self.n > 1
        self.max_interval = max_interval
        #: Threads an epoch of ``work`` merits on a busy machine: when that is fewer
        #: than ``n``, a busy epoch runs on them without measuring (see :meth:`next`).
        self.busy_threads = (
            self.n if work is None else min(self.n, resolve_threads(None, work, busy=True))
        )
        self.seconds: dict[int, float] = {}
        self._epoch = 0
        self._interval = 4
        self._next_probe = 0
        self._probe_of: int | None = None  # the best before the probe running now
        self._unmeasured = False
        self._sample: tuple[float, float | None] | None = None  # (clock, run delay)

    def waited(self) -> float | None:
        """The share of the wall time since the last call that this process's threads
        waited for a CPU, or None on the first call (or where the system does not say)."""
        now, delay = _clock(), own_run_delay()
        last, self._sample = self._sample, (now, delay)
        if last is None or delay is None or last[1] is None or now <= last[0]:
            return None
        return (delay - last[1]) / (now - last[0])

    def busy(self) -> bool:
        """Whether the machine was busy for this process since the last call (it waited
        more than :data:`CONTENDED_SHARE`); the first call reads the run queue."""
        return _over(self.waited(), CONTENDED_SHARE)

    def next(self) -> int:
        """The thread count for the next epoch."""
        self._epoch += 1
        self._probe_of = None
        self._unmeasured = False
        if not self.adaptive:
            return self.n
        share = self.waited()
        busy = _over(share, CONTENDED_SHARE)
        if self.busy_threads < self.n and (_over(share, QUIET_SHARE) or machine_busy()):
            # Too little work per epoch to split on a busy machine (a descheduled
            # thread stalls the others for a time slice): no parallel epoch to measure.
            # Split only when both the last epoch and the run queue now look quiet: a
            # wrong serial guess costs little here, a wrong parallel one a stall.
            self._unmeasured = True
            return self.busy_threads
        if not self.adaptive or self._epoch == 1:
            return self.n
        best = self.best()
        if best == self.n and 1 not in self.seconds and not busy:
            return self.n  # quiet: nothing to learn from a one-thread epoch
        for threads in (1, self.n):
            if threads not in self.seconds:
                return threads
        if self._epoch >= self._next_probe:
            self._probe_of = best
            return 1 if best == self.n else self.n
        return best

    def best(self) -> int:
        """The faster of ``n`` and one thread by the latest measurements (``n`` until
        both are measured)."""
        if 1 in self.seconds and self.n in self.seconds:
            return 1 if self.seconds[1] < self.seconds[self.n] else self.n
        return self.n

    def record(self, threads: int, seconds: float) -> None:
        """The time of the epoch just run on ``threads`` threads (compiles excluded)."""
        if not self.adaptive or self._epoch == 1 or self._unmeasured:
            return
        self.seconds[threads] = seconds
        if self._probe_of is not None:
            changed = self.best() != self._probe_of
            self._interval = 4 if changed else min(2 * self._interval, self.max_interval)
        measured = 1 in self.seconds and self.n in self.seconds
        if measured and (self._probe_of is not None or self._next_probe == 0):
            self._next_probe = self._epoch + self._interval


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
