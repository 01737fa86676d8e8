"""Same seed, same model, bit for bit, whatever the number of threads -- tested with more
threads than this machine has cores.

One child process (``threads_child.py``) starts with ``NUMBA_NUM_THREADS`` set above the
core count, so ``n_threads`` is not silently capped at the cores, and fits every parallel
model with 1 thread and with all of them. It spies on ``numba.set_num_threads``: each
test asserts that the fit really ran its kernels on that many threads (a size threshold
or a cap that quietly chose one thread would make the comparison 1 vs 1), then that
every fitted array is identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfrec._threads import cpu_count

CHILD = Path(__file__).with_name("threads_child.py")
CASES = [
    "biased-mf",
    "funk-svd",
    "als",
    "nmf",
    "gd-mf",
    "adam-mf",
    "bayes-mf",
    "bayes-mf-implicit",
    "implicit-als",
]
THREADS = cpu_count() + 2


@pytest.fixture(scope="module")
def child_report():
    env = {**os.environ, "NUMBA_NUM_THREADS": str(THREADS)}
    done = subprocess.run(
        [sys.executable, str(CHILD), *CASES], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_child_has_more_threads_than_cores(child_report):
    assert child_report["numba_threads"] == THREADS > cpu_count()


@pytest.mark.parametrize("case", CASES)
def test_threads_do_not_change_result(child_report, case):
    report = child_report[case]
    assert report["requested"] == [1, THREADS], (
        f"{case}: asked numba for {report['requested']} threads, expected [1, {THREADS}]"
    )
    assert {"user_factors_", "item_factors_"} <= set(report["compared"])
    assert not report["differ"], f"{case}: {report['differ']} differ between 1 and {THREADS}"
