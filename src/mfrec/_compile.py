"""Kernel compilation, seen and accounted for.

mfrec's kernels are compiled by numba on their first call and cached on disk
(``cache=True``), so the first run after an install pays a one-off compile -- seconds
per kernel -- and later runs load the machine code in milliseconds. This module makes
that one-off cost visible and keeps it out of timings:

- :func:`watch_compiles` listens to numba's compile events on the calling thread and
  adds up the wall time spent compiling (cache loads are not compiles). ``fit`` runs
  inside it and reports ``fit_seconds_`` without that time, and ``compile_seconds_``
  beside it; each epoch's ``seconds`` leaves it out too.
- The first compile of a process logs ``compiling kernels once (about N s)`` on the
  ``mfrec.compile`` logger, then one line per kernel compiled (a listener in
  :mod:`mfrec.kernels`, so every code path is covered); a watch sets N from the model
  being fitted. The CLI prints these lines on a terminal; the library never prints.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("mfrec.compile")

#: Typical cold compile of a model's fit kernels, in seconds, on a 2-core x86-64 machine:
#: ``fit_compile_cpu_s`` of ``python bench/coldstart.py`` (CPU seconds inside numba's
#: compile events during the fit, which load barely changes; a quiet machine's wall time
#: is about the same, a busy one's longer), rounded to whole seconds, at least 1. Measured
#: at commit 4c379bf (load 11-16); biased-mf and funk-svd again after their epoch worker
#: was compiled per step rule (2.7 and 2.4 s at load 5.8, main 4.8 and 4.4 s beside them);
#: als again after its row solve became one function (2.4 s, main 3.2 s beside it).
#: Used only for the "about N s" of the first-run message; models that compile nothing
#: to fit (svd, bias, global-mean) are not listed.
TYPICAL_SECONDS: dict[str, float] = {
    "biased-mf": 3.0,
    "funk-svd": 2.0,
    "svdpp": 2.0,
    "als": 2.0,
    "implicit-als": 2.0,
    "bayes-mf": 2.0,
    "nmf": 1.0,
    "gd-mf": 1.0,
    "adam-mf": 1.0,
}
#: For a model not listed above (a user's subclass): the most any listed model takes.
_DEFAULT_SECONDS = 3.0


@dataclass
class CompileWatch:
    """What was compiled inside one :func:`watch_compiles` block."""

    label: str
    seconds: float = 0.0  # wall seconds of top-level compiles (nested ones included once)
    kernels: list[str] = field(default_factory=list)
    _depth: int = 0
    _started: float = 0.0


_local = threading.local()


def current_seconds() -> float:
    """Compile seconds so far in the innermost active watch on this thread (0 if none)."""
    watch = getattr(_local, "watch", None)
    return watch.seconds if watch is not None else 0.0


def _kernel_name(data: Any) -> str:
    dispatcher = (data or {}).get("dispatcher")
    func = getattr(dispatcher, "py_func", None)
    if func is None:
        return "kernel"
    module = getattr(func, "__module__", "") or ""
    return f"{module.rsplit('.', 1)[-1]}.{func.__name__}"


def _make_listener(watch: CompileWatch, thread_id: int) -> Any:
    from numba.core import event

    class _Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            if threading.get_ident() != thread_id:
                return
            watch._depth += 1
            if watch._depth > 1:
                return
            watch._started = time.perf_counter()

        def on_end(self, ev: Any) -> None:
            if threading.get_ident() != thread_id or watch._depth == 0:
                return
            watch._depth -= 1
            if watch._depth == 0:
                spent = time.perf_counter() - watch._started
                watch.seconds += spent
                watch.kernels.append(_kernel_name(ev.data))
                logger.debug("compiled %s in %.2f s", watch.kernels[-1], spent)

    return _Listener()


@contextlib.contextmanager
def watch_compiles(label: str = "") -> Iterator[CompileWatch]:
    """Count (and announce) the numba compiles made by this thread inside the block.

    ``label`` names what runs (a model's ``name``) for the first-run estimate. Cheap when
    nothing compiles: numba calls the listener only on a cache miss.
    """
    from numba.core import event

    import mfrec.kernels as kernels  # its listener announces compiles; we count them

    watch = CompileWatch(label)
    outer = getattr(_local, "watch", None)
    hint = kernels.HINT_SECONDS
    if label:
        kernels.HINT_SECONDS = TYPICAL_SECONDS.get(label, _DEFAULT_SECONDS)

    listener = _make_listener(watch, threading.get_ident())
    _local.watch = watch
    try:
        with event.install_listener("numba:compile", listener):
            yield watch
    finally:
        _local.watch = outer
        kernels.HINT_SECONDS = hint
        if watch.kernels:
            logger.info(
                "compiled %d kernel(s) in %.1f s (cached for later runs)",
                len(watch.kernels),
                watch.seconds,
            )
