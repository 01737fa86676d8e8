"""Shared plumbing for the benchmarks: data, folds, timing, result files, tables.

Benchmarks are not tests: they compare mfrec with its peers side by side, in one run, on
the same folds, and write JSON to ``bench/results/``. ``bench/report.py`` turns those files
into the README's tables, so every number in the docs comes from here.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = RESULTS.parents[1]
#: Load average (1, 5, 15 min) when the benchmark started (this module is imported first).
LOAD_AT_START = os.getloadavg()


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import numba

    import mfrec

    return {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "mfrec": mfrec.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
    }


def timed(func: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = func()
    return value, time.perf_counter() - started


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ml100k_folds(names=("u1", "u2", "u3", "u4", "u5")):
    import mfrec
    from mfrec.data.split import ml100k_official

    ratings = mfrec.load_dataset("ml-100k", download=False)
    return ratings, [ml100k_official(ratings, name) for name in names]


def kfold_folds(dataset: str, k: int = 5, seed: int = 0):
    import mfrec
    from mfrec.data.split import kfold

    ratings = mfrec.load_dataset(dataset, download=False)
    return ratings, kfold(ratings, k, random_state=seed)


def rmse_mae(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    d = np.asarray(predicted, dtype=np.float64) - truth
    return float(np.sqrt(np.mean(d * d))), float(np.mean(np.abs(d)))


def code_version() -> dict[str, Any]:
    """The code a result describes: the commit checked out and what differed from it.

    ``dirty_files`` lists every path ``git status`` reports as changed or untracked when
    the result was written; ``bench/report.py`` refuses a result measured with changes to
    ``src/mfrec`` or to its own script (the numbers would describe code no commit holds).
    Outside a git checkout ``sha`` is None, and the result can never be pasted.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout

    try:
        sha = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=all")
    except (OSError, subprocess.CalledProcessError):
        return {"sha": None, "dirty": None, "dirty_files": []}
    dirty = sorted(line[3:].split(" -> ")[-1] for line in status.splitlines() if line.strip())
    return {"sha": sha, "dirty": bool(dirty), "dirty_files": dirty}


def _code_during_run() -> dict[str, Any]:
    """The code at the start of the run, with every file that differed from that commit
    at its start or its end: files dirty then or now, and files a commit made during the
    run changed (the run imported the old ones; the stamp must not claim the new SHA)."""
    start, end = CODE_AT_START, code_version()
    if start["sha"] is None or end["sha"] is None:
        return {"sha": None, "dirty": None, "dirty_files": []}
    dirty = set(start["dirty_files"]) | set(end["dirty_files"])
    if end["sha"] != start["sha"]:
        moved = subprocess.run(
            ["git", "diff", "--name-only", start["sha"], end["sha"]],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.split()
        dirty |= set(moved)
    return {"sha": start["sha"], "dirty": bool(dirty), "dirty_files": sorted(dirty)}


def imported_sources() -> list[str]:
    """The repository files whose code this process imported: every loaded module under
    ``src/mfrec`` or ``bench/``, as paths relative to the checkout. Stamped on a result
    as ``sources`` so that ``report.py`` can tell which code changes make it stale (a
    subset of ``src/mfrec``: a change to the Spark engine does not stale the SGD bench).
    It is a superset of the code the run executed in this process; code run only in a
    child process is not in it, which is why ``report.py`` ignores it for scripts that
    start processes."""
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        try:
            rel = Path(path).resolve().relative_to(ROOT)
        except ValueError:
            continue
        if rel.parts[:2] == ("src", "mfrec") or rel.parts[:1] == ("bench",):
            files.add(rel.as_posix())
    return sorted(files)


#: The code when the benchmark started (see :func:`_code_during_run`).
CODE_AT_START = code_version()


def write_result(name: str, payload: dict[str, Any], folder: Path = RESULTS) -> Path:
    """Write ``bench/results/<name>.json`` (atomically) and return its path. Records that
    are not README tables (the rounds of a search) go to a subfolder via ``folder``.

    Every result is stamped with the code it describes (:func:`code_version`: the git SHA,
    a dirty flag and the dirty files), the script that made it, and the load average at
    the start and at the end of the run -- this machine is shared, and a timing measured
    under load says so.
    """
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "script": f"bench/{Path(sys.argv[0]).name}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        "code": _code_during_run(),
        "sources": imported_sources(),
        "load_average": {"start": list(LOAD_AT_START), "end": list(os.getloadavg())},
        "machine": machine(),
        **payload,
    }
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)
    return path


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def surprise_data(fold, scale=(1, 5)):
    """A Surprise trainset and testset built from an mfrec fold (same ratings)."""
    from surprise import Dataset, Reader

    train = fold.train.to_frame()[["user", "item", "rating"]]
    data = Dataset.load_from_df(train, Reader(rating_scale=scale))
    trainset = data.build_full_trainset()
    test = fold.test.to_frame()
    testset = list(zip(test["user"], test["item"], test["rating"].astype(float), strict=True))
    return trainset, testset


def warm_up(model_factory: Callable[[], Any]) -> float:
    """Fit once on a tiny planted problem so numba compiles (or loads its cache);
    returns those seconds, reported apart from training time."""
    from mfrec.data.synthetic import make_ratings

    tiny = make_ratings(n_users=50, n_items=40, density=0.3, random_state=0).ratings
    _, seconds = timed(lambda: model_factory().fit(tiny).recommend(tiny.users.ids[:2], n=3))
    return seconds
