"""Speed and scale on one machine: BiasedMF on synthetic MovieLens-like data.

    python bench/scale.py                 # 1M, 10M and 50M ratings (about 10 minutes)
    python bench/scale.py --sizes 1e6     # a quick look

Every measurement runs in a fresh subprocess, so its peak RSS is its own:

- loading: a 25M-row ML-25M-shaped CSV and the same data as Parquet, via read_ratings;
- fit: BiasedMF, 64 factors, 20 epochs, on 1M / 10M / 50M ratings (users and items
  scaled like ML-25M: 162,541 users and 59,047 items per 25M ratings, popularity skew),
  with 1 thread and with all threads: seconds per epoch, rating updates per second,
  speed-up, peak RSS and peak bytes per rating (the process reads the Parquet file,
  builds Ratings and fits: what a user does);
- top-N for all users of a 100,000-user x 50,000-item model with 64 factors (n=10,
  seen items excluded, streamed to Parquet): seconds and peak RSS;
- numba: first-call compile time with an empty cache, and cache-load time;
- ML-100K u1..u5 side by side with Surprise's SVD at its defaults, and mfrec's serial
  kernel (one stratum, one thread) beside the parallel one (bench/surprise_svd.py);
- start-up: `import mfrec` and `mfrec --help`.

Synthetic data files are cached under $MFREC_BENCH_DIR (default ~/.cache/mfrec/bench).
Writes bench/results/scale.json.
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

import numpy as np

from _common import markdown_table, write_result

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("MFREC_BENCH_DIR", Path.home() / ".cache" / "mfrec" / "bench"))
ML25M = {"ratings": 25_000_000, "users": 162_541, "items": 59_047}
FIT = {
    "n_factors": 64,
    "n_epochs": 20,
    "lr": 0.005,
    "reg": 0.02,
    "init_std": 0.1,
    "optimizer": "sgd",
    "patience": None,
    "reg_row": 0.0,
    "reg_bias_row": 0.0,
}  # fmt: skip  (the settings the scale figures were measured with)


# -- worker side (runs in a child process) ----------------------------------------------
def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def job_generate(n: int, path: str, csv: bool = False) -> dict:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from mfrec.data.synthetic import make_ratings

    scale = n / ML25M["ratings"]
    data = make_ratings(
        n_users=max(100, int(ML25M["users"] * scale)),
        n_items=max(100, int(ML25M["items"] * scale)),
        n_ratings=n,
        scale=(0.5, 5),
        round_to=0.5,
        random_state=0,
    )
    r = data.ratings
    columns = {
        "userId": r.users.take(r.user_index).astype(np.int32),
        "movieId": r.items.take(r.item_index).astype(np.int32),
        "rating": r.rating,
    }
    if csv:
        columns["timestamp"] = r.timestamp
    table = pa.table(columns)
    tmp = path + ".tmp"
    if csv:
        pacsv.write_csv(table, tmp)
    else:
        pq.write_table(table, tmp)
    os.replace(tmp, path)
    return {"n_users": r.n_users, "n_items": r.n_items}


def job_load(path: str) -> dict:
    import mfrec

    started = time.perf_counter()
    ratings = mfrec.read_ratings(path)
    seconds = time.perf_counter() - started
    return {"rows": len(ratings), "seconds": seconds, "rows_per_s": len(ratings) / seconds,
            "peak_mb": _peak_mb()}  # fmt: skip


def job_fit(path: str, threads: int) -> dict:
    import mfrec
    from mfrec.models import BiasedMF

    started = time.perf_counter()
    ratings = mfrec.read_ratings(path, scale=(0.5, 5))
    load_s = time.perf_counter() - started
    BiasedMF(n_factors=2, n_epochs=1).fit(ratings.subset(np.arange(1000)))  # kernels loaded
    model = BiasedMF(**FIT, n_threads=threads, random_state=0)
    started = time.perf_counter()
    model.fit(ratings)
    fit_s = time.perf_counter() - started
    epochs = [rec["seconds"] for rec in model.history_]
    return {
        "rows": len(ratings),
        "n_users": ratings.n_users,
        "n_items": ratings.n_items,
        "threads": threads,
        "load_s": load_s,
        "fit_s": fit_s,
        "epoch_s": float(np.median(epochs)),
        "setup_s": fit_s - float(np.sum(epochs)),
        "updates_per_s": len(ratings) / float(np.median(epochs)),
        "train_rmse": model.history_[-1]["train_rmse"],
        "peak_mb": _peak_mb(),
    }


def job_topn_prepare(path: str, model_path: str) -> dict:
    from mfrec.data.synthetic import make_ratings
    from mfrec.models import BiasedMF

    ratings = make_ratings(
        n_users=100_000, n_items=50_000, n_ratings=5_000_000, random_state=1
    ).ratings
    BiasedMF(n_factors=64, n_epochs=2, random_state=0).fit(ratings).save(model_path)
    return {"n_users": ratings.n_users, "n_items": ratings.n_items, "rows": len(ratings)}


def job_topn(model_path: str, out: str) -> dict:
    import mfrec
    from mfrec.export import write_recommendations

    model = mfrec.load(model_path)
    model.recommend(model.users_.ids[:8], n=10)  # kernels loaded
    started = time.perf_counter()
    rows = write_recommendations(model, out, n=10)
    seconds = time.perf_counter() - started
    return {"users": len(model.users_), "items": len(model.items_), "rows": rows,
            "seconds": seconds, "peak_mb": _peak_mb()}  # fmt: skip


def job_compile() -> dict:
    from mfrec.data.synthetic import make_ratings
    from mfrec.models import BiasedMF

    tiny = make_ratings(n_users=50, n_items=40, density=0.3, random_state=0).ratings
    started = time.perf_counter()
    BiasedMF(n_factors=4, n_epochs=1).fit(tiny).recommend(tiny.users.ids[:2], n=3)
    return {"seconds": time.perf_counter() - started}


JOBS = {
    f.__name__[4:]: f
    for f in (job_generate, job_load, job_fit, job_topn_prepare, job_topn, job_compile)
}


# -- driver side -------------------------------------------------------------------------
def run_job(name: str, *args, env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--job", name, "--args", json.dumps(args)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"job {name}{args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def dataset(n: int, csv: bool = False) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"synthetic-{n}.{'csv' if csv else 'parquet'}"
    if not path.exists():
        print(f"generating {path} ...", flush=True)
        run_job("generate", n, str(path), csv)
    return path


def wall(cmd: list[str], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1e6,10e6,50e6")
    parser.add_argument("--job")
    parser.add_argument("--args")
    opts = parser.parse_args()
    if opts.job:
        print(json.dumps(JOBS[opts.job](*json.loads(opts.args))))
        return

    sizes = [int(float(s)) for s in opts.sizes.split(",")]
    threads_all = os.cpu_count() or 1
    result: dict = {"fit_settings": FIT, "threads_all": threads_all}

    # Start-up and compile.
    mfrec_cli = str(Path(sys.executable).with_name("mfrec"))
    result["startup"] = {
        "import_s": wall([sys.executable, "-c", "import mfrec"]),
        "help_s": wall([mfrec_cli, "--help"]),
        "python_s": wall([sys.executable, "-c", "pass"]),
    }
    with tempfile.TemporaryDirectory() as empty:
        cold = run_job("compile", env={"NUMBA_CACHE_DIR": empty})
    run_job("compile")  # make sure the normal cache is warm
    warm = run_job("compile")
    result["compile"] = {"cold_s": cold["seconds"], "cached_s": warm["seconds"]}
    print(json.dumps(result["startup"]), json.dumps(result["compile"]), flush=True)

    # Loading 25M rows.
    loads = {}
    if max(sizes) >= 10_000_000:
        for fmt, csv in (("csv", True), ("parquet", False)):
            loads[fmt] = run_job("load", str(dataset(ML25M["ratings"], csv=csv)))
            print("load", fmt, json.dumps(loads[fmt]), flush=True)
    result["load"] = loads

    # Fitting.
    fits = []
    for n in sizes:
        path = str(dataset(n))
        for threads in (1, threads_all) if n <= 10_000_000 else (threads_all,):
            rec = run_job("fit", path, threads)
            fits.append(rec)
            print("fit", json.dumps(rec), flush=True)
    result["fit"] = fits

    # Top-N for all users of a 100k x 50k model.
    CACHE.mkdir(parents=True, exist_ok=True)
    model_path = CACHE / "topn-100k-50k-64.mfrec"
    if not model_path.exists():
        run_job("topn_prepare", "", str(model_path))
    with tempfile.TemporaryDirectory() as tmp:
        result["topn"] = run_job("topn", str(model_path), str(Path(tmp) / "recs.parquet"))
    print("topn", json.dumps(result["topn"]), flush=True)

    # ML-100K u1..u5 side by side with Surprise SVD at its defaults (bench/surprise_svd.py).
    from _common import warm_up
    from mfrec.models import BiasedMF
    from surprise_svd import measure

    warm_up(lambda: BiasedMF(n_factors=4, n_epochs=1))
    result["ml100k"] = measure(verbose=False)[1]
    print("ml100k", json.dumps(result["ml100k"]), flush=True)

    result["markdown"] = render(result)
    print(result["markdown"])
    write_result("scale", result)


def render(result: dict) -> str:
    rows = []
    by_size: dict[int, dict[int, dict]] = {}
    for rec in result["fit"]:
        by_size.setdefault(rec["rows"], {})[rec["threads"]] = rec
    for n, recs in sorted(by_size.items()):
        best = recs[max(recs)]
        one = recs.get(1)
        speedup = f"{one['epoch_s'] / best['epoch_s']:.2f}x" if one and max(recs) > 1 else "-"
        rows.append([
            f"{n / 1e6:g}M", f"{best['n_users']:,} x {best['n_items']:,}", best["threads"],
            f"{best['fit_s']:.1f}", f"{best['epoch_s']:.2f}", f"{best['updates_per_s'] / 1e6:.1f}M",
            speedup, f"{best['peak_mb']:,.0f}", f"{best['peak_mb'] * 2**20 / n:.0f}",
        ])  # fmt: skip
    fit_table = markdown_table(
        [
            "ratings",
            "users x items",
            "threads",
            "fit s (20 epochs)",
            "s / epoch",
            "updates / s",
            "speed-up 1->all",
            "peak RSS MB",
            "peak bytes / rating",
        ],
        rows,
    )
    lines = [fit_table, ""]
    for fmt, rec in result["load"].items():
        lines.append(
            f"- Loading 25M rows from {fmt.upper()}: {rec['seconds']:.1f}s "
            f"({rec['rows_per_s'] / 1e6:.1f}M rows/s), peak {rec['peak_mb']:,.0f} MB."
        )
    t = result["topn"]
    lines.append(
        f"- Top-10 for all {t['users']:,} users x {t['items']:,} items (64 factors, seen items "
        f"excluded, streamed to Parquet): {t['seconds']:.1f}s, peak {t['peak_mb']:,.0f} MB."
    )
    m = result["ml100k"]
    lines.append(
        f"- ML-100K u1..u5 at Surprise SVD's defaults (100 factors, 20 epochs): BiasedMF "
        f"{m['mfrec_fit_s']:.3f}s vs Surprise SVD {m['surprise_fit_s']:.2f}s per fit "
        f"({m['speedup']:.1f}x), RMSE {m['mfrec_rmse']:.4f} vs {m['surprise_rmse']:.4f}; "
        f"the serial kernel (one stratum, one thread): RMSE {m['serial_rmse']:.4f}, "
        f"{m['serial_fit_s']:.3f}s."
    )
    c, s = result["compile"], result["startup"]
    lines.append(
        f"- numba first call: {c['cold_s']:.1f}s compiling with an empty cache, "
        f"{c['cached_s']:.2f}s loading the on-disk cache (never inside fit times)."
    )
    lines.append(
        f"- Start-up: `import mfrec` {s['import_s']:.2f}s, `mfrec --help` {s['help_s']:.2f}s "
        f"(bare Python {s['python_s']:.2f}s)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
