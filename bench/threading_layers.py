"""numba's threading layers side by side: does omp, workqueue or tbb change mfrec's fits?

    python bench/threading_layers.py                 # 3 repeats, quiet and 2 hogs
    python bench/threading_layers.py --repeats 5 --hogs 0,1,2

mfrec's parallel kernels do not run on numba's threading layer: they are plain compiled
workers on mfrec's own small thread pool (docs/performance.md), and the layer is only
started when mfrec sets the thread count (``numba.set_num_threads``). This bench checks
that the layer's choice makes no difference to a fit: for each layer a fresh process
(``NUMBA_THREADING_LAYER``; tbb from the ``tbb`` wheel, found through LD_LIBRARY_PATH)
fits BiasedMF and ALS at their defaults on ML-100K u1.base and on 1M synthetic ratings,
after a warm-up fit, with the default threads; layers alternate inside each repeat, with
0 and 2 CPU-bound processes beside them. Reports the median fit seconds per layer and
their ratio to omp's. A layer that cannot start here is reported as unavailable.
Writes bench/results/searches/threading_layers.json (an investigation, not a README table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import RESULTS, markdown_table, write_result
from contention import start_hogs, stop_hogs

LAYERS = ("omp", "workqueue", "tbb")

CHILD = r"""
import json
import numba
from contention import load
from mfrec.models import ALS, BiasedMF

out = {}
for size in ("ml-100k", "1M"):
    ratings = load(size)
    for cls in (BiasedMF, ALS):
        cls(random_state=0).fit(ratings)  # warm-up: kernels loaded, pool started
        out[f"{size} {cls.name}"] = cls(random_state=0).fit(ratings).fit_seconds_
out["layer"] = numba.threading_layer()
print(json.dumps(out))
"""


def child(layer: str) -> dict | None:
    env = {**os.environ, "NUMBA_THREADING_LAYER": layer}
    lib = str(Path(sys.prefix) / "lib")
    env["LD_LIBRARY_PATH"] = lib + os.pathsep + env.get("LD_LIBRARY_PATH", "")
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
        cwd=Path(__file__).resolve().parent,
    )  # fmt: skip
    if done.returncode != 0:
        print(f"{layer}: unavailable ({done.stderr.strip().splitlines()[-1:]})", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hogs", default="0,2")
    args = parser.parse_args()
    raw, rows = [], []
    for n_hogs in (int(h) for h in args.hogs.split(",")):
        hogs = start_hogs(n_hogs)
        try:
            time.sleep(1.0 if n_hogs else 0.0)
            for rep in range(args.repeats):
                order = LAYERS if rep % 2 == 0 else LAYERS[::-1]
                for layer in order:
                    result = child(layer)
                    if result is not None:
                        raw.append({"hogs": n_hogs, "repeat": rep, "requested": layer,
                                    "load1": os.getloadavg()[0], **result})  # fmt: skip
        finally:
            stop_hogs(hogs)
    fits = [k for k in (raw[0] if raw else {}) if " " in k]
    for n_hogs in sorted({r["hogs"] for r in raw}):
        for fit in fits:
            medians = {
                layer: float(np.median([r[fit] for r in raw
                                        if r["hogs"] == n_hogs and r["requested"] == layer]))
                for layer in LAYERS
                if any(r["requested"] == layer for r in raw)
            }  # fmt: skip
            base = medians.get("omp")
            for layer, seconds in medians.items():
                rows.append([fit, n_hogs, layer, seconds, seconds / base if base else ""])
    table = markdown_table(["fit", "hogs", "layer", "median fit s", "/ omp"], rows)
    path = write_result(
        "threading_layers",
        {"repeats": args.repeats, "raw": raw, "markdown": table},
        folder=RESULTS / "searches",
    )
    print(table)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
