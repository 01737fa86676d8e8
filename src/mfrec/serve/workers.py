"""What ``mfrec serve --workers N`` shares between its worker processes.

``mfrec serve`` makes one run folder per server (:func:`make_run_dir`) and hands it to
every worker. It holds:

* ``metrics/``: the ``PROMETHEUS_MULTIPROC_DIR`` of prometheus_client's multiprocess
  mode, so that ``/metrics`` answered by any worker adds up every worker's counters and
  histograms;
* ``model.json``: which model file is served, and a generation number. A worker that
  reloads (``POST /admin/reload``, or SIGHUP sent to that worker) writes the file it now
  serves there; every other worker checks the file twice a second and loads the same
  model, and a worker that (re)starts serves the file named there.

The store needs nothing: every worker opens it, and each request reads the user's
feedback version from it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

logger = logging.getLogger("mfrec.serve")

METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def make_run_dir() -> Path:
    """A fresh run folder (removed by :func:`remove_run_dir`)."""
    run = Path(tempfile.mkdtemp(prefix="mfrec-serve-"))
    (run / "metrics").mkdir()
    return run


def remove_run_dir(run: Path) -> None:
    shutil.rmtree(run, ignore_errors=True)


class ModelControl:
    """The shared ``model.json`` of a run folder: ``{"generation": g, "path": p}``."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.path = Path(run_dir) / "model.json"
        self.lock_path = Path(run_dir) / "model.lock"

    def read(self) -> tuple[int, str | None]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return int(data["generation"]), str(data["path"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0, None

    def publish(self, model_path: str) -> int:
        """Name ``model_path`` as the served file; returns the new generation."""
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            generation = self.read()[0] + 1
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"generation": generation, "path": model_path}))
            os.replace(tmp, self.path)
            return generation


def forget_dead_workers(metrics_dir: str) -> None:
    """Drop the live-gauge files of worker processes that are gone (uvicorn's
    supervisor does not tell prometheus_client when it replaces a worker)."""
    from prometheus_client import multiprocess

    for name in os.listdir(metrics_dir):
        if not name.startswith("gauge_live"):
            continue
        try:
            pid = int(name.rsplit("_", 1)[1].split(".")[0])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, metrics_dir)
        except PermissionError:
            pass
