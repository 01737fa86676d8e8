"""First run after an install: each model's cold kernel compile, and the first `mfrec demo`.

    python bench/coldstart.py                    # every model, then `mfrec demo`
    python bench/coldstart.py --models biased-mf,als --no-demo

Each measurement runs in a fresh process with an empty numba cache (NUMBA_CACHE_DIR set
to a new temporary folder), as after `pip install`: the process fits the model on a
small synthetic data set (so compiling dominates) and recommends for one user. Recorded:
wall seconds of the fit and of the first recommend, the model's ``compile_seconds_``
(compile wall time, kept out of ``fit_seconds_``), the process's CPU seconds (load
barely changes them: compiling is one thread), the kernels compiled, and the same fit
run again in a second process with the now-warm cache. `mfrec demo` is timed cold and
warm the same way (ML-100K u1 from $MFREC_DATA_DIR when present). The load average is
recorded with every row. Targets (issue 11): a model's cold compile <= 5 s; the cold
`mfrec demo` <= 10 s wall on a quiet 2-core machine.
Writes bench/results/coldstart.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import markdown_table, write_result

ROOT = Path(__file__).resolve().parents[1]
MODELS = [
    "biased-mf",
    "funk-svd",
    "svdpp",
    "als",
    "implicit-als",
    "bayes-mf",
    "svd",
    "nmf",
    "gd-mf",
    "adam-mf",
    "bias",
]
#: Few epochs: the fit itself is milliseconds, the compile is what is measured.
SMALL = {"n_epochs": 2, "n_samples": 2, "burn_in": 1}

CHILD = r"""
import json, sys, time
started, cpu0 = time.perf_counter(), time.process_time()
from mfrec.data.synthetic import make_ratings
from mfrec.models import get_model_class
name, small = sys.argv[1], json.loads(sys.argv[2])
cls = get_model_class(name)
ratings = make_ratings(n_users=300, n_items=200, density=0.1, random_state=0).ratings
settings = {k: v for k, v in small.items() if k in cls._param_names()}
t0 = time.perf_counter()
model = cls(**settings, random_state=0).fit(ratings)
t1 = time.perf_counter()
model.recommend(ratings.users.to_array()[:1], n=10)
t2 = time.perf_counter()
print(json.dumps({
    "fit_wall_s": t1 - t0, "recommend_wall_s": t2 - t1, "process_wall_s": t2 - started,
    "process_cpu_s": time.process_time() - cpu0,
    "compile_s": getattr(model, "compile_seconds_", None), "fit_seconds_": model.fit_seconds_,
}))
"""


def child(args: list[str], cache: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def demo(cache: str, out_dir: str) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache}
    started = time.perf_counter()
    cpu0 = os.times()
    subprocess.run(
        [sys.executable, "-m", "mfrec.cli", "demo", "--out-dir", out_dir],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    cpu1 = os.times()
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    return {"wall_s": time.perf_counter() - started, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix="mfrec-coldstart-") as cache:
            load_before = os.getloadavg()[0]
            cold = child([name, json.dumps(SMALL)], cache)
            warm = child([name, json.dumps(SMALL)], cache)
        row = {"what": name, "load1": (load_before + os.getloadavg()[0]) / 2,
               "cold": cold, "warm": warm}  # fmt: skip
        rows.append(row)
        print(
            f"{name:<13} cold fit {cold['fit_wall_s']:6.2f}s (compile {cold['compile_s']:.2f}s) "
            f"recommend {cold['recommend_wall_s']:5.2f}s cpu {cold['process_cpu_s']:6.2f}s | "
            f"warm fit {warm['fit_wall_s']:.3f}s | load {row['load1']:.1f}",
            flush=True,
        )
    if not args.no_demo:
        with tempfile.TemporaryDirectory(prefix="mfrec-coldstart-") as cache:
            out_dir = str(Path(cache) / "demo-out")
            load_before = os.getloadavg()[0]
            cold = demo(cache, out_dir)
            warm = demo(cache, out_dir)
        row = {"what": "mfrec demo", "load1": (load_before + os.getloadavg()[0]) / 2,
               "cold": cold, "warm": warm}  # fmt: skip
        rows.append(row)
        print(
            f"mfrec demo    cold {cold['wall_s']:.2f}s wall ({cold['cpu_s']:.2f}s cpu), "
            f"warm {warm['wall_s']:.2f}s wall ({warm['cpu_s']:.2f}s cpu) | load {row['load1']:.1f}"
        )
    table = markdown_table(
        ["what", "cold wall s", "of which compile s", "cold CPU s", "warm wall s", "load"],
        [
            [r["what"],
             r["cold"].get("fit_wall_s", 0) + r["cold"].get("recommend_wall_s", 0)
             if "fit_wall_s" in r["cold"] else r["cold"]["wall_s"],
             r["cold"].get("compile_s") or "",
             r["cold"].get("process_cpu_s", r["cold"].get("cpu_s")),
             r["warm"].get("fit_wall_s", r["warm"].get("wall_s")),
             f"{r['load1']:.1f}"]
            for r in rows
        ],
    )  # fmt: skip
    path = write_result(
        "coldstart",
        {"target": "a model's cold compile <= 5 s; cold `mfrec demo` <= 10 s wall (quiet)",
         "rows": rows, "markdown": table},
    )  # fmt: skip
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
