"""First run after an install: each model's cold kernel compile, and the first `mfrec demo`.

    python bench/coldstart.py                    # every model, then `mfrec demo`
    python bench/coldstart.py --models biased-mf,als --no-demo
    python bench/coldstart.py --baseline main    # and the same on main's code, side by side

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

The compile is measured in CPU seconds too (``compile_cpu_s``: the process's CPU time
inside numba's top-level compile events; compiling runs on one thread, so a loaded
machine stretches its wall time but barely its CPU time). With ``--baseline REF`` every
measurement also runs on the code of git revision REF (exported with ``git archive``
into a temporary folder and put first on ``PYTHONPATH``), interleaved with the current
code's, so the two are compared under the same load.
Writes bench/results/coldstart.json; a subset or ``--baseline`` run writes
bench/results/partial/coldstart_partial.json instead and leaves the README's result alone.
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

from _common import RESULTS, markdown_table, write_result

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
import json, sys, threading, time
started, cpu0 = time.perf_counter(), time.process_time()
from numba.core import event
compile_cpu, depth, main = [0.0, 0.0], [0], threading.get_ident()
class Listener(event.Listener):  # CPU seconds inside top-level compiles of this thread
    def on_start(self, ev):
        if threading.get_ident() == main:
            depth[0] += 1
            if depth[0] == 1:
                compile_cpu[1] = time.process_time()
    def on_end(self, ev):
        if threading.get_ident() == main:
            depth[0] -= 1
            if depth[0] == 0:
                compile_cpu[0] += time.process_time() - compile_cpu[1]
event.register("numba:compile", Listener())
from mfrec.data.synthetic import make_ratings
from mfrec.models import get_model_class
name, small = sys.argv[1], json.loads(sys.argv[2])
cls = get_model_class(name)
ratings = make_ratings(n_users=300, n_items=200, density=0.1, random_state=0).ratings
settings = {k: v for k, v in {**small, "random_state": 0}.items() if k in cls._param_names()}
t0 = time.perf_counter()
model = cls(**settings).fit(ratings)
t1 = time.perf_counter()
fit_compile_cpu = compile_cpu[0]
model.recommend(ratings.users.to_array()[:1], n=10)
t2 = time.perf_counter()
print(json.dumps({
    "fit_wall_s": t1 - t0, "recommend_wall_s": t2 - t1, "process_wall_s": t2 - started,
    "process_cpu_s": time.process_time() - cpu0, "compile_cpu_s": compile_cpu[0],
    "fit_compile_cpu_s": fit_compile_cpu,
    "compile_s": getattr(model, "compile_seconds_", None), "fit_seconds_": model.fit_seconds_,
}))
"""


def environment(cache: str, src: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": path}


def child(args: list[str], cache: str, src: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args], env=environment(cache, src), capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def demo(cache: str, out_dir: str, src: Path) -> dict:
    env = environment(cache, src)
    started = time.perf_counter()
    cpu0 = os.times()
    subprocess.run(
        [sys.executable, "-m", "mfrec.cli", "demo", "--out-dir", out_dir],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    cpu1 = os.times()
    cpu = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system - cpu0.children_system)
    return {"wall_s": time.perf_counter() - started, "cpu_s": cpu}


def measure_model(name: str, src: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="mfrec-coldstart-") as cache:
        load_before = os.getloadavg()[0]
        cold = child([name, json.dumps(SMALL)], cache, src)
        warm = child([name, json.dumps(SMALL)], cache, src)
    return {"load1": (load_before + os.getloadavg()[0]) / 2, "cold": cold, "warm": warm}


def measure_demo(src: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="mfrec-coldstart-") as cache:
        out_dir = str(Path(cache) / "demo-out")
        load_before = os.getloadavg()[0]
        cold = demo(cache, out_dir, src)
        warm = demo(cache, out_dir, src)
    return {"load1": (load_before + os.getloadavg()[0]) / 2, "cold": cold, "warm": warm}


def export(ref: str, into: str) -> Path:
    """The source tree of git revision ``ref``, exported into ``into``; returns its src."""
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return Path(into) / "src"


def cold_total(row: dict) -> float:
    cold = row["cold"]
    return cold["fit_wall_s"] + cold["recommend_wall_s"] if "fit_wall_s" in cold else cold["wall_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument(
        "--baseline", default=None, help="git revision to measure side by side (e.g. main)"
    )
    args = parser.parse_args()
    trees = {"current": ROOT / "src"}
    with tempfile.TemporaryDirectory(prefix="mfrec-baseline-") as base_dir:
        if args.baseline:
            trees[args.baseline] = export(args.baseline, base_dir)
        rows = []
        jobs = [(name, measure_model) for name in args.models.split(",")]
        if not args.no_demo:
            jobs.append(("mfrec demo", lambda _, src: measure_demo(src)))
        for n, (name, measure) in enumerate(jobs):
            # Alternate which code goes first, so neither always meets the same load.
            order = list(trees.items()) if n % 2 == 0 else list(trees.items())[::-1]
            for code, src in order:
                row = {"what": name, "code": code, **measure(name, src)}
                rows.append(row)
                cold, warm = row["cold"], row["warm"]
                if "fit_wall_s" in cold:
                    print(
                        f"{name:<13} {code:<8} cold fit {cold['fit_wall_s']:6.2f}s recommend "
                        f"{cold['recommend_wall_s']:5.2f}s, compile {cold['compile_s']:.2f}s "
                        f"wall {cold['compile_cpu_s']:.2f}s cpu | warm fit "
                        f"{warm['fit_wall_s']:.3f}s | load {row['load1']:.1f}",
                        flush=True,
                    )
                else:
                    print(
                        f"mfrec demo    {code:<8} cold {cold['wall_s']:.2f}s wall "
                        f"({cold['cpu_s']:.2f}s cpu), warm {warm['wall_s']:.2f}s wall "
                        f"({warm['cpu_s']:.2f}s cpu) | load {row['load1']:.1f}",
                        flush=True,
                    )
    table = markdown_table(
        ["what", "code", "cold wall s", "compile CPU s", "cold CPU s", "warm wall s", "load"],
        [
            [r["what"], r["code"], cold_total(r), r["cold"].get("compile_cpu_s", ""),
             r["cold"].get("process_cpu_s", r["cold"].get("cpu_s")),
             r["warm"].get("fit_wall_s", r["warm"].get("wall_s")), f"{r['load1']:.1f}"]
            for r in rows
        ],
    )  # fmt: skip
    payload = {
        "target": "a model's cold compile <= 5 s; cold `mfrec demo` <= 10 s wall (quiet)",
        "baseline": args.baseline, "rows": rows, "markdown": table,
    }  # fmt: skip
    # A subset (fewer models, no demo) or a side-by-side run is not the README's table.
    partial = args.models != ",".join(MODELS) or args.no_demo or args.baseline is not None
    if partial:
        path = write_result("coldstart_partial", payload, folder=RESULTS / "partial")
    else:
        path = write_result("coldstart", payload)
    print(table)
    print(f"wrote {path}")
    if partial:
        print("partial run (--models/--no-demo/--baseline): not the README result")


if __name__ == "__main__":
    main()
