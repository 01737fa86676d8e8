"""Thread control: the count follows the work, an automatic fit adapts per epoch without
changing the result, and idle OpenMP threads sleep (mfrec._threads, mfrec.kernels)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mfrec import _threads
from mfrec._threads import EpochThreads, resolve_threads
from mfrec.data.synthetic import make_ratings


@pytest.fixture(autouse=True)
def load_from_the_run_queue(monkeypatch):
    """Tests simulate the load through ``other_runnable``: no run-delay counts (as on a
    system without /proc/self/task/*/schedstat), unless a test gives its own."""
    monkeypatch.setattr(_threads, "own_run_delay", lambda: None)


@pytest.fixture
def epoch_threads_seen(monkeypatch) -> list[int]:
    """The thread count of every epoch any fit runs in the test (EpochThreads.next)."""
    seen: list[int] = []
    original = EpochThreads.next

    def spy(self):
        seen.append(original(self))
        return seen[-1]

    monkeypatch.setattr(EpochThreads, "next", spy)
    return seen


def test_resolve_threads_follows_work_unless_given():
    limit = _threads.available_threads()
    assert resolve_threads(None) == limit
    assert resolve_threads(None, work=10) == 1
    assert resolve_threads(None, work=10**12) == limit
    assert resolve_threads(None, work=2 * _threads.MIN_WORK_PER_THREAD) == min(2, limit)
    # A count the user gives is only capped, never reduced by the work.
    assert resolve_threads(limit, work=10) == limit
    assert resolve_threads(10_000) == limit
    assert resolve_threads(0) == 1


def test_one_off_regions_split_only_when_it_pays_on_the_machine_as_it_is(monkeypatch):
    """A region run once (scoring, top-N, SVD++'s implicit sums) uses the quiet rule when
    nothing else wants the cores, and needs far more work per thread when something does
    (a descheduled helper would stall it for a time slice)."""
    from mfrec._threads import region_threads

    quiet_split = 4 * _threads.MIN_WORK_PER_THREAD  # worth 2+ threads on a quiet machine
    busy_split = 2 * _threads.BUSY_MIN_WORK_PER_THREAD  # worth 2 threads on a busy one
    assert quiet_split < _threads.BUSY_MIN_WORK_PER_THREAD
    readings = []

    def reading(value):
        def other_runnable():
            readings.append(value)
            return value

        return other_runnable

    monkeypatch.setattr(_threads, "other_runnable", reading(0))
    assert region_threads(2, quiet_split) == 2
    assert region_threads(2, busy_split) == 2
    monkeypatch.setattr(_threads, "other_runnable", reading(2))
    assert region_threads(2, quiet_split) == 1
    assert region_threads(2, busy_split) == 2
    assert region_threads(1, busy_split) == 1  # never more than the caller allowed
    monkeypatch.setattr(_threads, "other_runnable", reading(None))  # no /proc: quiet rule
    assert region_threads(2, quiet_split) == 2
    # Regions too small to split anyway never read the load.
    readings.clear()
    assert region_threads(2, 10) == 1
    assert readings == []


def test_small_epochs_run_on_one_thread_while_the_machine_is_busy(monkeypatch):
    """An epoch too small to split on a busy machine runs on one thread whenever the
    load probe says busy (without timing it), on all threads when it says quiet; an
    epoch big enough is still measured both ways."""
    small = 4 * _threads.MIN_WORK_PER_THREAD
    load = [3, 3, 0, 0, 2, 0, 1, 1]  # other runnable threads during each epoch
    tuner = EpochThreads(2, work=small)
    monkeypatch.setattr(_threads, "other_runnable", lambda: load[tuner._epoch - 1])
    assert tuner.busy_threads == 1
    seen = run_schedule(tuner, {1: 1.0, 2: 0.1}, 8)
    assert seen == [1, 1, 2, 2, 1, 2, 1, 1]
    assert 1 not in tuner.seconds  # the busy one-thread epochs were not measurements
    # Big epochs on a busy machine: measured both ways, the faster kept.
    monkeypatch.setattr(_threads, "other_runnable", lambda: 3)
    big = EpochThreads(2, work=4 * _threads.BUSY_MIN_WORK_PER_THREAD)
    assert big.busy_threads == 2
    seen = run_schedule(big, {1: 1.0, 2: 0.5}, 12)
    assert 1 in seen and seen[-4:] == [2] * 4
    # Small epochs split only when the run queue agrees that the machine is quiet.
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr(_threads, "_clock", lambda: next(clock))
    monkeypatch.setattr(_threads, "own_run_delay", lambda: 0.0)  # never waited
    snapshot = [0, 0, 2, 0, 1]
    tuner = EpochThreads(2, work=small)
    monkeypatch.setattr(_threads, "other_runnable", lambda: snapshot[tuner._epoch - 1])
    assert run_schedule(tuner, {1: 1.0, 2: 0.1}, 5) == [2, 2, 1, 2, 1]
    # A thread count the user chose is kept, busy or not.
    fixed = EpochThreads(2, adaptive=False, work=small)
    assert run_schedule(fixed, {1: 1.0, 2: 9.0}, 4) == [2] * 4


def test_busy_is_our_threads_waiting_for_a_cpu_during_the_last_epoch(monkeypatch):
    """After the first epoch, busy means this process's threads waited for a CPU more
    than CONTENDED_SHARE of the epoch's wall time; a run-queue snapshot that happens to
    catch another thread does not count."""
    clock = iter(float(t) for t in range(100))  # one second per epoch
    delays = iter([0.0, 0.0, 0.01, 0.01, 0.5, 1.0, 1.0, 1.0])  # cumulative seconds
    monkeypatch.setattr(_threads, "_clock", lambda: next(clock))
    monkeypatch.setattr(_threads, "own_run_delay", lambda: next(delays))
    monkeypatch.setattr(_threads, "other_runnable", lambda: 3)  # the snapshot says busy
    tuner = EpochThreads(2, work=4 * _threads.MIN_WORK_PER_THREAD)
    # epoch 1: snapshot (busy); 2: no wait; 3: 1% waited; 4: none; 5: 49%; 6: 50%;
    # 7, 8: none.
    assert [tuner.busy() for _ in range(8)] == [True, False, False, False, True, True, False, False]


def test_a_moderate_wait_keeps_small_epochs_serial_but_measures_no_big_one(monkeypatch):
    """Waiting 10% of each epoch (between QUIET_SHARE and CONTENDED_SHARE): an epoch too
    small to split on a busy machine stays on one thread, while a big one stays on all
    threads without spending an epoch on one thread to measure it."""
    assert _threads.QUIET_SHARE < 0.1 < _threads.CONTENDED_SHARE
    monkeypatch.setattr(_threads, "other_runnable", lambda: 0)  # the run queue: quiet

    def waiting(share):
        clock, delay = iter(float(t) for t in range(100)), iter(share * t for t in range(100))
        monkeypatch.setattr(_threads, "_clock", lambda: next(clock))
        monkeypatch.setattr(_threads, "own_run_delay", lambda: next(delay))

    waiting(0.1)
    small = EpochThreads(2, work=4 * _threads.MIN_WORK_PER_THREAD)
    assert run_schedule(small, {1: 1.0, 2: 0.1}, 6) == [2, 1, 1, 1, 1, 1]
    waiting(0.1)
    big = EpochThreads(2, work=4 * _threads.BUSY_MIN_WORK_PER_THREAD)
    assert run_schedule(big, {1: 1.0, 2: 0.5}, 6) == [2] * 6
    assert 1 not in big.seconds
    waiting(0.6)  # our threads kept off the cores: now one thread is measured
    big = EpochThreads(2, work=4 * _threads.BUSY_MIN_WORK_PER_THREAD)
    assert 1 in run_schedule(big, {1: 1.0, 2: 0.5}, 6)


def test_sgd_layout_and_epochs_use_the_threads_asked_for(monkeypatch):
    """n_threads=1 runs every parallel region of an SGD fit (the layout's scatter and the
    epochs) on one thread; automatic on a quiet machine, big enough work, on all."""
    import numba

    import mfrec.kernels.sgd as sgd_kernels
    from mfrec.models import BiasedMF

    if _threads.available_threads() < 2:
        pytest.skip("needs 2 numba threads")
    ratings = make_ratings(n_users=120, n_items=80, density=0.2, random_state=1).ratings
    seen = []
    original = sgd_kernels.run_workers

    def spy(worker, n_tasks, *args, threads=None):
        seen.append(numba.get_num_threads() if threads is None else threads)
        return original(worker, n_tasks, *args, threads=threads)

    monkeypatch.setattr(sgd_kernels, "run_workers", spy)
    BiasedMF(n_factors=4, n_epochs=2, patience=None, n_threads=1, random_state=0).fit(ratings)
    assert seen and set(seen) == {1}
    seen.clear()
    monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)
    monkeypatch.setattr("mfrec.models.gd.PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(_threads, "other_runnable", lambda: 0)
    BiasedMF(n_factors=4, n_epochs=2, patience=None, random_state=0).fit(ratings)
    assert seen and min(seen) == 2
    # Busy, and far too little work to split on a busy machine: one thread throughout.
    seen.clear()
    monkeypatch.setattr(_threads, "other_runnable", lambda: 2)
    BiasedMF(n_factors=4, n_epochs=3, patience=None, random_state=0).fit(ratings)
    assert seen and set(seen) == {1}


@pytest.mark.parametrize("name", ["gd-mf", "adam-mf", "nmf"])
def test_full_batch_sweeps_stay_on_one_thread_while_the_machine_is_busy(
    name, monkeypatch, epoch_threads_seen
):
    """The full-batch models' epochs (two row sweeps each) tell EpochThreads their work:
    on a busy machine an epoch too small to split there runs on one thread from the
    first epoch, never on two (bench/contention.py: gd-mf on ML-100K beside two CPU-bound
    processes was 1.25x slower on its default threads than on one, with 2 threads in its
    first epochs and in every probe). On a quiet machine the same fit runs on two."""
    from mfrec.models import get_model_class

    if _threads.available_threads() < 2:
        pytest.skip("needs 2 numba threads")
    ratings = make_ratings(n_users=120, n_items=80, density=0.2, random_state=1).ratings
    monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)  # worth 2 threads when quiet
    monkeypatch.setattr("mfrec.models.gd.PARALLEL_MIN_WORK", 0)
    seen = epoch_threads_seen
    settings = {"n_factors": 6, "n_epochs": 6, "patience": None, "random_state": 0}
    monkeypatch.setattr(_threads, "other_runnable", lambda: 2)  # busy
    get_model_class(name)(**settings).fit(ratings)
    assert seen == [1] * 6
    seen.clear()
    monkeypatch.setattr(_threads, "other_runnable", lambda: 0)  # quiet
    get_model_class(name)(**settings).fit(ratings)
    assert seen == [2] * 6


@pytest.mark.parametrize("name", ["biased-mf", "als", "gd-mf", "svdpp"])
def test_epochs_run_numpy_on_one_blas_thread(name):
    """Inside the epochs NumPy's BLAS runs on one thread (the objective's dot products,
    the validation RMSE): OpenBLAS's helpers spin after a threaded call and took CPU
    from the kernel's own threads (bench/contention.py at 10M). Outside a fit the BLAS
    pool is as it was."""
    from threadpoolctl import threadpool_info

    from mfrec.models import get_model_class

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    before = blas_threads()
    ratings = make_ratings(n_users=120, n_items=80, density=0.2, random_state=1).ratings
    inside = []
    get_model_class(name)(n_epochs=2, patience=None, random_state=0).fit(
        ratings, callback=lambda record: inside.append(blas_threads())
    )
    assert inside == [{1}, {1}]
    assert blas_threads() == before


def run_schedule(tuner: EpochThreads, cost: dict[int, float], epochs: int) -> list[int]:
    seen = []
    for _ in range(epochs):
        threads = tuner.next()
        seen.append(threads)
        tuner.record(threads, cost[threads])
    return seen


def test_epoch_threads_quiet_machine_stays_parallel(monkeypatch):
    monkeypatch.setattr(_threads, "other_runnable", lambda: 0)
    assert run_schedule(EpochThreads(4), {1: 1.0, 4: 0.3}, 20) == [4] * 20


def test_epoch_threads_busy_machine_keeps_the_faster(monkeypatch):
    monkeypatch.setattr(_threads, "other_runnable", lambda: 3)
    # Parallel slower (a busy machine): one thread almost always, probes back off.
    seen = run_schedule(EpochThreads(2), {1: 1.0, 2: 1.5}, 40)
    cost = sum({1: 1.0, 2: 1.5}[t] for t in seen)
    assert seen[-8:] == [1] * 8
    assert cost <= 1.1 * 40
    # Parallel faster even so: it keeps the parallel schedule.
    seen = run_schedule(EpochThreads(2), {1: 1.0, 2: 0.5}, 40)
    assert seen.count(1) <= 5 and seen[-8:] == [2] * 8


def test_epoch_threads_user_choice_is_kept(monkeypatch):
    monkeypatch.setattr(_threads, "other_runnable", lambda: 3)
    assert run_schedule(EpochThreads(2, adaptive=False), {1: 1.0, 2: 9.0}, 10) == [2] * 10
    assert run_schedule(EpochThreads(1), {1: 1.0}, 5) == [1] * 5


@pytest.mark.parametrize("name", ["biased-mf", "als", "gd-mf"])
def test_adaptive_threads_do_not_change_the_result(name, monkeypatch, epoch_threads_seen):
    """An automatic fit on a busy machine switches between 1 and n threads from epoch to
    epoch; the model is bit for bit the one fitted on one thread."""
    from mfrec.models import get_model_class

    if _threads.available_threads() < 2:
        pytest.skip("needs 2 numba threads")
    ratings = make_ratings(n_users=120, n_items=80, density=0.2, random_state=1).ratings
    cls = get_model_class(name)
    settings = {"n_factors": 6, "n_epochs": 9, "random_state": 0}
    one = cls(**settings, n_threads=1).fit(ratings)
    monkeypatch.setattr(_threads, "MIN_WORK_PER_THREAD", 1)  # small data goes parallel
    monkeypatch.setattr(_threads, "BUSY_MIN_WORK_PER_THREAD", 1)  # even on a busy machine
    monkeypatch.setattr("mfrec.models.gd.PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(_threads, "other_runnable", lambda: 3)  # and looks busy
    seen = epoch_threads_seen
    auto = cls(**settings).fit(ratings)
    assert set(seen) == {1, 2}  # both settings ran
    np.testing.assert_array_equal(auto.user_factors_, one.user_factors_)
    np.testing.assert_array_equal(auto.item_factors_, one.item_factors_)


def _wait_policy(env: dict[str, str]) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = "import os, mfrec.kernels; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    return out.stdout.strip()


def test_idle_threads_sleep_unless_the_user_chose():
    assert _wait_policy({}) == "PASSIVE"
    assert _wait_policy({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
    assert _wait_policy({"GOMP_SPINCOUNT": "5000"}) == "None"
