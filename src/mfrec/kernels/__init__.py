"""numba kernels: arrays in, arrays out. Private; nothing here imports mfrec.

Each kernel keeps a short NumPy/Python reference beside it (``*_reference``) and the
tests check that they agree. Kernels compile with ``cache=True`` so the cost is paid
once per machine; they are imported lazily, only by the code that needs them.

Waiting threads sleep instead of spinning. numba's threading layer here is usually GNU
OpenMP, whose idle workers spin for up to ~300,000 iterations (milliseconds) after every
parallel region before they sleep. On a quiet machine that saves a wake-up; on a busy
one the spinning threads take the cores from the thread that has work left -- and from
the other processes -- and mfrec's parallel fits ran 5-20x slower than one thread
(docs/performance.md). Measured under load, the passive policy beat a short spin
(GOMP_SPINCOUNT=1000 or 10000) too; on a quiet machine a wake-up costs microseconds per
parallel region, which the work-size rule in ``mfrec._threads`` keeps negligible. libgomp reads these variables once, when it loads (on numba's first parallel
launch), so they are set here, before any kernel module is imported; a value the user
has set is kept.
"""

import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
