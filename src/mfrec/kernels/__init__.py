"""numba kernels: arrays in, arrays out. Private; nothing here imports mfrec.

Each kernel keeps a short NumPy/Python reference beside it (``*_reference``) and the
tests check that they agree. Kernels compile with ``cache=True`` so the cost is paid
once per machine; they are imported lazily, only by the code that needs them.

Parallel kernels are plain compiled workers (``nogil=True``) run on a small Python
thread pool (:func:`mfrec.kernels._common.run_workers`), not numba parfors: a parfor
costs several times the compile of the same loop, and the first run paid it for every
kernel. The pool's idle threads wait on a lock; they never spin.

numba's own threading layer is still started when mfrec sets the thread count
(``numba.set_num_threads``). It is usually GNU OpenMP, whose idle workers spin for up to
~300,000 iterations (milliseconds) before they sleep, taking the cores from other
processes; libgomp reads its wait policy once, when it loads, so ``OMP_WAIT_POLICY`` is
set to ``PASSIVE`` here, before any kernel module is imported; a value the user has set
(or ``GOMP_SPINCOUNT``) is kept.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


# -- first-run compile notes ------------------------------------------------------------
# Every kernel module imports this package first, so this listener sees every compile of
# a kernel, in any code path (fit, predict, top-N, reading a file). It only logs, on the
# "mfrec.compile" logger: the first compile of the process announces itself, then each
# kernel by name (the CLI prints these on a terminal). mfrec._compile sets
# ``HINT_SECONDS`` from the model being fitted, for the estimate.
import logging as _logging
import threading as _threading

from numba.core import event as _event

# A first compile outside any fit is a first top-N or prediction: its selection and
# scoring kernels take about 1 s of CPU (bench/coldstart.py, compile_cpu_s - fit's).
HINT_SECONDS = 1.0
_log = _logging.getLogger("mfrec.compile")
_depth = _threading.local()
_announced = _threading.Event()


class _Announcer(_event.Listener):
    def on_start(self, ev):
        func = getattr((ev.data or {}).get("dispatcher"), "py_func", None)
        if not getattr(func, "__module__", "").startswith(__name__ + "."):
            return  # not an mfrec kernel (the user's own numba code)
        depth = getattr(_depth, "n", 0)
        _depth.n = depth + 1
        if depth:
            return
        if not _announced.is_set():
            _announced.set()
            _log.info(
                "compiling kernels once (about %.0f s); later runs load them from the cache",
                HINT_SECONDS,
            )
        _log.info("compiling %s.%s ...", func.__module__.rsplit(".", 1)[-1], func.__name__)

    def on_end(self, ev):
        func = getattr((ev.data or {}).get("dispatcher"), "py_func", None)
        if getattr(func, "__module__", "").startswith(__name__ + "."):
            _depth.n = max(0, getattr(_depth, "n", 0) - 1)


_event.register("numba:compile", _Announcer())
