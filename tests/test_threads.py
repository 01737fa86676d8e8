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
def test_adaptive_threads_do_not_change_the_result(name, monkeypatch):
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
    monkeypatch.setattr("mfrec.models.gd.PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(_threads, "other_runnable", lambda: 3)  # and looks busy
    seen = []
    original = EpochThreads.next

    def spy(self):
        seen.append(original(self))
        return seen[-1]

    monkeypatch.setattr(EpochThreads, "next", spy)
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
