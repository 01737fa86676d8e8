"""First-run compiles: seen, announced, and kept out of fit_seconds_ (mfrec._compile)."""

from __future__ import annotations

import logging
import threading
import time
import types

import numpy as np
import pytest

from mfrec._compile import current_seconds, watch_compiles
from mfrec.data.synthetic import make_ratings
from mfrec.models import GlobalMean


def fresh_kernel():
    from numba import njit

    @njit
    def add_one(x):  # defined per call: never compiled before
        return x + 1

    return add_one


def test_watch_counts_and_announces_a_compile(caplog):
    kernel = fresh_kernel()
    with watch_compiles("biased-mf") as outer:
        with watch_compiles() as inner:
            assert kernel(np.arange(3)).tolist() == [1, 2, 3]
            assert current_seconds() == inner.seconds > 0
        kernel(np.arange(3))  # compiled already: nothing more
    assert inner.kernels == ["test_compile.add_one"]
    assert outer.seconds == pytest.approx(inner.seconds, rel=1e-3)
    assert outer.kernels == inner.kernels
    assert current_seconds() == 0.0


def test_the_first_kernel_compile_is_announced(caplog, monkeypatch):
    import mfrec.kernels as kernels

    monkeypatch.setattr(kernels, "_announced", threading.Event())
    monkeypatch.setattr(kernels, "HINT_SECONDS", 7.0)
    announcer = kernels._Announcer()

    def event(module):
        func = types.SimpleNamespace(__module__=module, __name__="sgd_epoch")
        return types.SimpleNamespace(data={"dispatcher": types.SimpleNamespace(py_func=func)})

    with caplog.at_level(logging.INFO, logger="mfrec.compile"):
        announcer.on_start(event("users_own_module"))  # not an mfrec kernel: silent
        for _ in range(2):
            announcer.on_start(event("mfrec.kernels.sgd"))
            announcer.on_end(event("mfrec.kernels.sgd"))
    assert [r.getMessage() for r in caplog.records] == [
        "compiling kernels once (about 7 s); later runs load them from the cache",
        "compiling sgd.sgd_epoch ...",
        "compiling sgd.sgd_epoch ...",
    ]


class CompilingMean(GlobalMean):
    """GlobalMean whose fit compiles a fresh kernel, as a first run does."""

    def _fit(self, train, validation, callback):
        super()._fit(train, validation, callback)
        fresh_kernel()(np.arange(3))


def test_fit_seconds_leave_the_compile_out():
    ratings = make_ratings(n_users=30, n_items=20, density=0.3, random_state=0).ratings
    started = time.perf_counter()
    model = CompilingMean().fit(ratings)
    wall = time.perf_counter() - started
    assert model.compile_seconds_ > 0.01
    assert model.fit_seconds_ < model.compile_seconds_  # the fit itself is microseconds
    assert model.fit_seconds_ + model.compile_seconds_ <= wall
    assert GlobalMean().fit(ratings).compile_seconds_ == 0.0


def test_a_parallel_kernel_compiles_on_the_watched_thread():
    """run_workers compiles a worker on the calling thread before its helpers start, so a
    first parallel run's compile is counted (and kept out of fit_seconds_); every task
    runs exactly once, on more threads than there are cores too."""
    from numba import njit

    from mfrec.kernels._common import claim, run_workers

    @njit(nogil=True)
    def worker(counter, n_tasks, out):  # defined per call: never compiled before
        while True:
            t = claim(counter, 0)
            if t >= n_tasks:
                break
            out[t] += 2 * t + 1

    out = np.zeros(500)
    with watch_compiles() as watch:
        run_workers(worker, len(out), out, threads=4)
    assert watch.kernels == ["test_compile.worker"]
    assert out.tolist() == [2 * t + 1 for t in range(len(out))]


def test_typical_compile_seconds_name_registered_models():
    """The first-run estimate is looked up by model name: a renamed model must not
    silently fall back to the default."""
    from mfrec._compile import TYPICAL_SECONDS
    from mfrec.models import get_model_class

    assert TYPICAL_SECONDS
    for name, seconds in TYPICAL_SECONDS.items():
        assert get_model_class(name).name == name
        assert seconds >= 1
