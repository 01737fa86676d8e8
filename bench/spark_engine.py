"""mfrec on Spark vs Spark MLlib's ALS, side by side in one Spark session (local[2]).

    python bench/spark_engine.py --sizes 1m            # what the README quotes
    python bench/spark_engine.py --sizes 1m,10m --iters 5,5   # the full run (~13 min)
    python bench/spark_engine.py --sizes 50m --iters 3        # quiet machine, 16 GB free

The synthetic data of each size is generated once and written to Parquet under
--data-dir (default $MFREC_BENCH_DATA or /tmp/mfrec-spark-bench); Spark reads it from
there, so the driver never holds the ratings as Python objects. --driver-memory auto
sizes the (local-mode) JVM for the largest size. Before the first size, both engines
fit a tiny data set once, untimed, so that neither pays the JIT / numba-cache / Python
worker start-up inside its timed fit.

Data: synthetic ratings shaped like MovieLens (mfrec.data.synthetic.make_ratings with
the user/item counts of ML-1M / ML-10M, popularity-skewed, rank-10 planted model,
1..5 stars), 90/10 random holdout. Equal settings for both engines: rank, regParam
(weighted-lambda, the same meaning in both), iterations and blocks (numUserBlocks =
numItemBlocks = mfrec's num_blocks). mfrec fits its default biased model; MLlib's has no
biases. Measured per engine: fit seconds (total, and per iteration: mfrec's from its
per-epoch history, MLlib's as total / iterations, i.e. including its set-up), test RMSE
(pairs with both ids known to both, predictions clipped to 1..5), peak memory per engine
(sampled every 0.25 s during its fit and top-N: JVM heap in use -- in local mode the
executor is the driver JVM -- and the summed PSS of its pyspark Python workers), and
the wall time of each size. Top-N for all users: mfrec.spark.recommend_all (exact, seen
items excluded) vs MLlib's recommendForAllUsers(n) as is, and with seen items removed
afterwards -- which needs n + (largest number of items a user rated) candidates per user
to stay exact, then an anti-join and a per-user window (skipped, and recorded as
skipped, when that would explode more than --minus-seen-max-rows candidate rows). Every
output is materialised with the noop writer. Engines alternate within each repeat;
medians are reported with the load average.
Writes bench/results/spark_engine.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from _common import markdown_table, write_result

SHAPES = {  # MovieLens user / item counts at each size
    "100k": (943, 1_682, 100_000),
    "1m": (6_040, 3_706, 1_000_209),
    "10m": (69_878, 10_677, 10_000_054),
    "50m": (162_541, 59_047, 50_000_000),
}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory (VmHWM) of this benchmark's JVM, and the sum over its
    pyspark Python workers still alive (shared pages counted in each)."""
    jvm, workers = 0.0, 0.0
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/status") as f:
                hwm = next((ln for ln in f if ln.startswith("VmHWM")), "VmHWM: 0 kB")
        except OSError:
            continue
        mb = int(hwm.split()[1]) / 1024
        if "org.apache.spark.deploy.SparkSubmit" in cmd:
            jvm = max(jvm, mb)
        elif "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
            workers += mb
    return {"jvm_mb": round(jvm, 1), "python_workers_mb": round(workers, 1)}


def stage_metrics(spark) -> list[dict]:
    """Every finished stage so far: name (call site), tasks, shuffle bytes written and
    read, peak execution memory (Spark's status store; present with the UI off too)."""
    sc = spark.sparkContext
    no_quantiles = sc._gateway.new_array(sc._jvm.double, 0)
    stages = sc._jsc.sc().statusStore().stageList(None, False, False, no_quantiles, None)
    out = []
    for i in range(stages.size()):
        st = stages.apply(i)
        out.append(
            {
                "id": st.stageId(),
                "name": st.name(),
                "tasks": st.numTasks(),
                "shuffle_write": st.shuffleWriteBytes(),
                "shuffle_read": st.shuffleReadBytes(),
                "peak_exec_mem": st.peakExecutionMemory(),
            }
        )
    return sorted(out, key=lambda d: d["id"])


def predicted_message_bytes(user, item, blocks: int, rank: int, biased: bool = True) -> dict:
    """The cost model's shuffle per iteration: each factor row (rank floats, + 1 bias)
    goes once to each block that rates it, in both half-steps, and each block's own
    factors travel with the messages (to the other side's block of the same number and
    back: 2 (users + items) rows per iteration; docs/scaling.md)."""
    width = 4 * (rank + (1 if biased else 0))
    u = np.asarray(user, dtype=np.int64)
    i = np.asarray(item, dtype=np.int64)
    _, u_idx = np.unique(u, return_inverse=True)
    _, i_idx = np.unique(i, return_inverse=True)
    item_to_user_blocks = len(np.unique(i_idx * blocks + u_idx % blocks))
    user_to_item_blocks = len(np.unique(u_idx * blocks + i_idx % blocks))
    state_rows = 2 * (len(np.unique(u_idx)) + len(np.unique(i_idx)))
    return {
        "factor_rows_sent": item_to_user_blocks + user_to_item_blocks,
        "state_rows": state_rows,
        "payload_bytes": width * (item_to_user_blocks + user_to_item_blocks + state_rows),
    }


def cost_per_iteration(
    ratings: float,
    users: float,
    items: float,
    rank: int,
    blocks: int,
    *,
    biased: bool = True,
    largest_row: float | None = None,
) -> dict[str, float]:
    """The cost model of docs/scaling.md for one ALS iteration (both half-steps).

    Shuffle: every factor row (4 bytes x m, m = rank + 1 with biases) goes once to each
    block that rates it; with B blocks and the rows' degrees large against B that is
    B (users + items) rows, and never more than one per rating; plus each block's own
    factors, which travel with the messages: 2 (users + items) rows. FMAs: R m (m + 3) for
    the Gram matrices and right-hand sides of both sides plus (U + I)(m^3 / 6 + m^2) for
    the Cholesky solves. Memory per task: the cached block (int32 column + float32
    value, a float64 copy of the values while solving), the received factors, the new
    factors and one design matrix of the largest row.
    """
    m = rank + (1 if biased else 0)
    rows_sent = min(ratings, blocks * users) + min(ratings, blocks * items) + 2 * (users + items)
    fma = ratings * m * (m + 3) + (users + items) * (m**3 / 6 + m**2)
    largest = largest_row if largest_row is not None else min(users, ratings / items * 50)
    per_task = (
        16 * ratings / blocks
        + 4 * m * min(items, ratings / blocks)
        + 4 * m * users / blocks
        + 8 * m * largest
    )
    return {
        "shuffle_bytes": 4 * m * rows_sent,
        "flops": 2 * fma,
        "task_memory_bytes": per_task,
        "driver_bytes_factors": 4 * m * (users + items),
        "driver_bytes_seen": 12 * ratings,
    }


def local_kernel_rate(payload: dict) -> float:
    """FLOP/s per core of the local ALS kernels on the benchmark's first data size."""
    from mfrec import Ratings
    from mfrec.models import ALS

    r = payload["results"][0]
    settings = payload["settings"]
    train, _ = make_data(r["size"], 0)
    ratings = Ratings.from_frame(train)
    model = ALS(
        n_factors=settings["rank"], reg=settings["reg"], n_epochs=3, random_state=0, patience=None
    )
    model.fit(ratings)
    seconds = statistics.median(h["seconds"] for h in model.history_)
    cost = cost_per_iteration(len(ratings), ratings.n_users, ratings.n_items, settings["rank"], 1)
    return cost["flops"] / seconds / (os.cpu_count() or 1)


def make_data(size: str, seed: int):
    """(train, test) pandas frames of a size (used for the kernel-rate calibration)."""
    from mfrec.data.synthetic import make_ratings

    n_users, n_items, n = SHAPES[size]
    data = make_ratings(n_users, n_items, n, n_factors=10, random_state=seed)
    frame = data.ratings.to_frame()[["user", "item", "rating"]]
    frame = frame.astype({"user": "int32", "item": "int32", "rating": "float32"})
    test = np.random.default_rng(seed).random(len(frame)) < 0.1
    return frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)


def data_dir(root: str, size: str, seed: int) -> Path:
    return Path(root) / f"{size}-seed{seed}"


def ensure_parquet(root: str, size: str, seed: int) -> tuple[Path, float]:
    """Write the size's train / test split to Parquet once; (folder, seconds spent)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = data_dir(root, size, seed)
    if (folder / "done").exists():
        return folder, 0.0
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    train, test = make_data(size, seed)
    for name, frame in (("train", train), ("test", test)):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, folder / f"{name}.parquet", row_group_size=1 << 20)
    del train, test
    (folder / "done").write_text("ok\n")
    return folder, time.perf_counter() - started


def read_columns(path: Path, columns: list[str]) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=columns)
    return {c: table.column(c).to_numpy() for c in columns}


class MemorySampler:
    """Peak memory per phase, sampled every ``interval`` s in a thread: the JVM's heap in
    use (MemoryMXBean; the local-mode executor is the driver JVM) and the summed PSS of
    this benchmark's pyspark Python workers (/proc)."""

    def __init__(self, spark, interval: float = 0.25) -> None:
        import threading

        self._bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory
        self._bean = self._bean.getMemoryMXBean()
        self.phase: str | None = None
        self.peaks: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            phase = self.phase
            if phase is None:
                continue
            try:
                heap = self._bean.getHeapMemoryUsage().getUsed() / 2**20
            except Exception:
                continue
            workers = python_workers_rss_mb()
            peak = self.peaks.setdefault(phase, {"jvm_heap_mb": 0.0, "python_workers_mb": 0.0})
            peak["jvm_heap_mb"] = max(peak["jvm_heap_mb"], round(heap, 1))
            peak["python_workers_mb"] = max(peak["python_workers_mb"], round(workers, 1))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _descendants(root: int) -> list[int]:
    """Processes below ``root`` (this benchmark: its JVM, the JVM's Python daemon and
    workers), so that other users' Spark processes on the machine are not counted."""
    children: dict[int, list[int]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(pid))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def python_workers_rss_mb() -> float:
    """Summed proportional set size (PSS: shared pages split between the processes that
    share them) of this benchmark's pyspark Python daemon and workers. They outlive a
    phase (workers are reused), so MLlib's phase -- which runs no Python -- shows the
    idle workers mfrec left."""
    total = 0.0
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
            if b"pyspark.worker" not in cmd or b"java" in cmd:  # not the JVM
                continue
            with open(f"/proc/{pid}/smaps_rollup") as f:
                pss = next((ln for ln in f if ln.startswith("Pss:")), "Pss: 0 kB")
        except OSError:
            continue
        total += int(pss.split()[1]) / 1024
    return total


def driver_memory(sizes: list[str]) -> str:
    """Enough JVM memory for the largest size (both engines cache their blocks)."""
    need = {"100k": 2, "1m": 3, "10m": 6, "50m": 12}
    return f"{max(need.get(size, 12) for size in sizes)}g"


def warm_up(spark, settings: dict) -> float:
    """Both engines once on a tiny data set, untimed (JIT, numba caches, workers)."""
    from mfrec.data.synthetic import make_ratings

    started = time.perf_counter()
    data = make_ratings(300, 200, 6_000, n_factors=10, random_state=1)
    frame = data.ratings.to_frame()[["user", "item", "rating"]]
    frame = frame.astype({"user": "int32", "item": "int32", "rating": "float32"})
    tiny = spark.createDataFrame(frame)
    small = {**settings, "iters": 2}
    model, _ = run_mfrec(spark, tiny, frame.head(100), small, 2, 0)
    topn_mfrec(spark, model, 10)
    model, _ = run_mllib(spark, tiny, spark.createDataFrame(frame.head(100)), frame.head(100),
                         small, 2, 0)  # fmt: skip
    topn_mllib(spark, model, tiny, 10, 0, False)
    return time.perf_counter() - started


def rmse_on(pred, test) -> float:
    d = np.clip(pred, 1, 5) - test["rating"].to_numpy(np.float64)
    return float(np.sqrt(np.mean(d * d)))


def run_mfrec(spark, train_df, test, settings, blocks, seed):
    from mfrec.spark import fit_als

    started = time.perf_counter()
    model = fit_als(
        train_df, n_factors=settings["rank"], reg=settings["reg"], n_epochs=settings["iters"],
        num_blocks=blocks, random_state=seed,
    )  # fmt: skip
    total = time.perf_counter() - started
    known = model.users_.lookup(test["user"].to_numpy()) >= 0
    known &= model.items_.lookup(test["item"].to_numpy()) >= 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = model.predict(test["user"].to_numpy(), test["item"].to_numpy())
    per_iter = statistics.median(h["seconds"] for h in model.history_)
    return model, {"fit_s": total, "s_per_iter": per_iter, "known": known, "pred": pred}


def run_mllib(spark, train_df, test_df, test, settings, blocks, seed):
    from pyspark.ml.recommendation import ALS as SparkALS

    als = SparkALS(
        rank=settings["rank"], maxIter=settings["iters"], regParam=settings["reg"],
        numUserBlocks=blocks, numItemBlocks=blocks, userCol="user", itemCol="item",
        ratingCol="rating", coldStartStrategy="nan", seed=seed,
    )  # fmt: skip
    started = time.perf_counter()
    model = als.fit(train_df)
    total = time.perf_counter() - started
    scored = model.transform(test_df).toPandas()
    merged = test.merge(scored[["user", "item", "prediction"]], on=["user", "item"], how="left")
    return model, {
        "fit_s": total,
        "s_per_iter": total / settings["iters"],
        "pred": merged["prediction"].to_numpy(np.float64),
    }


def topn_mfrec(spark, model, n):
    from mfrec.spark import recommend_all

    started = time.perf_counter()
    recommend_all(model, spark, n).write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


def topn_mllib(spark, model, train_df, n, max_seen, remove_seen):
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    started = time.perf_counter()
    if not remove_seen:
        model.recommendForAllUsers(n).write.format("noop").mode("overwrite").save()
        return time.perf_counter() - started
    recs = model.recommendForAllUsers(n + max_seen)
    flat = recs.select("user", F.explode("recommendations").alias("r")).select(
        "user", F.col("r.item").alias("item"), F.col("r.rating").alias("score")
    )
    unseen = flat.join(train_df.select("user", "item"), ["user", "item"], "left_anti")
    rank = F.row_number().over(Window.partitionBy("user").orderBy(F.desc("score"), "item"))
    top = unseen.withColumn("rank", rank).filter(F.col("rank") <= n)
    top.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - started


#: Spark stages per ALS iteration of mfrec.spark: one per half-step (solve, then send
#: the messages) and the JVM-only count that ends the epoch's job.
STAGES_PER_ITER = 3


def measured_messages(stages: list[dict], iters: int) -> float:
    """Shuffle bytes per iteration of the factor messages (and the blocks' own factors
    that travel with them): the stages named after the half-step's partitionBy in
    mfrec.spark.als._Engine._step (the last two per iteration)."""
    names = [st["name"] for st in stages if st["shuffle_write"] and "als.py" in st["name"]]
    message_site = names[-1] if names else ""
    per_stage = [st["shuffle_write"] for st in stages if st["name"] == message_site]
    return sum(per_stage[-2 * iters :]) / iters if per_stage else float("nan")


def scaling_report(payload: dict, kernel_rate: float) -> str:
    """Measured vs predicted shuffle, and the extrapolation to 1B / 10B ratings."""
    settings = payload["settings"]
    results = payload["results"]

    def iters_of(r: dict) -> int:
        return int(r.get("iters") or settings["iters"])

    def costs(r: dict) -> dict:
        return cost_per_iteration(
            r["n_train"], r["n_users"], r["n_items"], settings["rank"], settings["blocks"]
        )

    # Time model: flops / (cores x kernel rate) + STAGES x t_stage, with t_stage fitted
    # on the smallest size alone; the other sizes are out-of-sample checks.
    cores = 2
    first = results[0]
    compute0 = costs(first)["flops"] / (cores * kernel_rate)
    t_stage = max(0.0, (first["fit"]["mfrec"]["s_per_iter"] - compute0) / STAGES_PER_ITER)
    measured_rows = []
    for r in results:
        predicted = r["predicted_messages"]["payload_bytes"]
        measured = measured_messages(r["mfrec_stages"], iters_of(r))
        cost = costs(r)
        seconds = r["fit"]["mfrec"]["s_per_iter"]
        modelled = cost["flops"] / (cores * kernel_rate) + STAGES_PER_ITER * t_stage
        load_avg = max(x for pair in r["load"] for x in pair)
        measured_rows.append(
            [r["size"], settings["blocks"], predicted / 1e6, measured / 1e6,
             f"{measured / predicted - 1:+.1%}", f"{cost['flops']:.3g}", seconds, modelled,
             "fitted" if r is first else f"{modelled / seconds - 1:+.0%}", load_avg]
        )  # fmt: skip
    headers = ["size", "blocks", "predicted MB / iter", "measured MB / iter", "error"]
    headers += ["flops / iter", "s / iter (measured)", "s / iter (model)", "time error"]
    headers += ["max load"]
    lines = [markdown_table(headers, measured_rows), ""]
    lines.append(
        f"t_stage fitted on {first['size']}: {t_stage:.2f} s per stage, "
        f"{STAGES_PER_ITER} stages per iteration.\n"
    )
    rows = []
    for ratings in (1e9, 1e10):
        users, items = ratings / 100, ratings / 1000
        for rank in (10, 50):
            for executors in (10, 100):
                cores = 4 * executors
                blocks = cores
                c = cost_per_iteration(ratings, users, items, rank, blocks, largest_row=0.3 * users)
                compute = c["flops"] / (cores * kernel_rate)
                network = c["shuffle_bytes"] / (executors * 100e6)
                rows.append(
                    [f"{ratings:.0e}", rank, executors, blocks, c["shuffle_bytes"] / 1e9,
                     c["task_memory_bytes"] / 1e9, c["driver_bytes_factors"] / 1e9,
                     compute + network]
                )  # fmt: skip
    lines.append(
        markdown_table(
            [
                "ratings",
                "rank",
                "executors (4 cores)",
                "blocks",
                "shuffle GB / iter",
                "task memory GB",
                "driver factors GB",
                "s / iter (model)",
            ],
            rows,
        )
    )
    lines.append(
        f"\nKernel rate used: {kernel_rate / 1e9:.2f} GFLOP/s per core (local ALS on the "
        "same 1M data, this machine); network: 100 MB/s per executor; users = R/100, "
        "items = R/1000, largest row = 0.3 x users."
    )
    return "\n".join(lines)


def _rows(r: dict) -> list[list]:
    fit, top = r["fit"], r["topn_seconds"]
    return [
        [r["size"], "mfrec.spark", fit["mfrec"]["fit_s"], fit["mfrec"]["s_per_iter"],
         r["rmse"]["mfrec"], top["mfrec"], top["mfrec"]],
        [r["size"], "MLlib ALS", fit["mllib"]["fit_s"], fit["mllib"]["s_per_iter"],
         r["rmse"]["mllib"], top["mllib"],
         "skipped" if top["mllib_minus_seen"] is None else top["mllib_minus_seen"]],
    ]  # fmt: skip


def iterations_per_size(value: str, sizes: list[str]) -> dict[str, int]:
    parts = [int(v) for v in value.split(",")]
    if len(parts) == 1:
        parts = parts * len(sizes)
    if len(parts) != len(sizes):
        raise SystemExit(f"--iters: give one value or one per size ({len(sizes)}), got {value}")
    return dict(zip(sizes, parts, strict=True))


def run_size(spark, args, size: str, iters: int, sampler: MemorySampler) -> dict:
    """Both engines on one size (engines alternate within each repeat)."""
    wall = time.perf_counter()
    folder, gen_s = ensure_parquet(args.data_dir, size, 0)
    settings = {"rank": args.rank, "reg": args.reg, "iters": iters}
    train_df = spark.read.parquet(str(folder / "train.parquet")).cache()
    test_df = spark.read.parquet(str(folder / "test.parquet")).cache()
    n_train, _ = train_df.count(), test_df.count()
    cols = read_columns(folder / "train.parquet", ["user", "item"])
    users_u, per_user = np.unique(cols["user"], return_counts=True)
    max_seen = int(per_user.max())
    n_items = len(np.unique(cols["item"]))
    predicted = predicted_message_bytes(cols["user"], cols["item"], args.blocks, args.rank)
    del cols, per_user
    test = read_columns(folder / "test.parquet", ["user", "item", "rating"])
    import pandas as pd

    test = pd.DataFrame(test)
    candidates = len(users_u) * (args.n + max_seen)
    do_minus_seen = candidates <= args.minus_seen_max_rows
    rows: dict[str, list] = {k: [] for k in ("mfrec", "mllib")}
    tops: dict[str, list] = {"mfrec": [], "mllib": [], "mllib_minus_seen": []}
    known = None
    for repeat in range(args.repeats):
        order = ("mfrec", "mllib") if repeat % 2 == 0 else ("mllib", "mfrec")
        for engine in order:
            before = load()
            sampler.phase = f"{size}/{engine}"
            if engine == "mfrec":
                first_stage = max((st["id"] for st in stage_metrics(spark)), default=-1)
                model, r = run_mfrec(spark, train_df, test, settings, args.blocks, repeat)
                r["stages"] = [st for st in stage_metrics(spark) if st["id"] > first_stage]
                known = r.pop("known")
                top = {"mfrec": topn_mfrec(spark, model, args.n)}
            else:
                model, r = run_mllib(spark, train_df, test_df, test, settings, args.blocks, repeat)
                top = {"mllib": topn_mllib(spark, model, train_df, args.n, max_seen, False)}
                if do_minus_seen:
                    top["mllib_minus_seen"] = topn_mllib(
                        spark, model, train_df, args.n, max_seen, True
                    )
            sampler.phase = None
            del model
            r["pred_" + engine] = r.pop("pred")
            r["load"] = [before, load()]
            rows[engine].append(r)
            for key, value in top.items():
                tops[key].append(value)
            shown = {k: v for k, v in r.items() if not k.startswith("pred") and k != "stages"}
            print(engine, size, shown, top, flush=True)
    mask = known & np.isfinite(rows["mllib"][-1]["pred_mllib"])
    rmse = {
        "mfrec": rmse_on(rows["mfrec"][-1]["pred_mfrec"][mask], test[mask]),
        "mllib": rmse_on(rows["mllib"][-1]["pred_mllib"][mask], test[mask]),
    }
    med = {
        e: {k: statistics.median(r[k] for r in rows[e]) for k in ("fit_s", "s_per_iter")}
        for e in rows
    }
    top_med = {k: statistics.median(v) if v else None for k, v in tops.items()}
    train_df.unpersist(), test_df.unpersist()
    minus_seen = top_med["mllib_minus_seen"]
    return {
        "size": size,
        "iters": iters,
        "n_train": int(n_train),
        "n_test_scored": int(mask.sum()),
        "n_users": len(users_u),
        "n_items": n_items,
        "max_seen": max_seen,
        "predicted_messages": predicted,
        "mfrec_stages": rows["mfrec"][-1]["stages"],
        "fit": med,
        "rmse": rmse,
        "topn_seconds": top_med,
        "topn_speedup_vs_mllib": top_med["mllib"] / top_med["mfrec"],
        "topn_speedup_vs_mllib_minus_seen": (
            minus_seen / top_med["mfrec"] if minus_seen is not None else None
        ),
        "minus_seen_skipped": None
        if do_minus_seen
        else f"needs {candidates:.3g} candidate rows (> --minus-seen-max-rows)",
        "load": [r["load"] for e in rows for r in rows[e]],
        "peak_memory": {e: sampler.peaks.get(f"{size}/{e}") for e in rows},
        "data_generation_s": gen_s,
        "wall_s": time.perf_counter() - wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1m")
    parser.add_argument("--iters", default="10", help="One value, or one per size: 5,5,3")
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--reg", type=float, default=0.1)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--driver-memory", default="auto")
    parser.add_argument(
        "--data-dir", default=os.environ.get("MFREC_BENCH_DATA", "/tmp/mfrec-spark-bench")
    )
    parser.add_argument("--minus-seen-max-rows", type=float, default=1e8)
    parser.add_argument("--no-warm-up", action="store_true")
    parser.add_argument(
        "--report-only", action="store_true", help="Print docs/scaling.md's tables from the JSON."
    )
    args = parser.parse_args()
    if args.report_only:
        import json

        from _common import RESULTS

        payload = json.loads((RESULTS / "spark_engine.json").read_text())
        print(scaling_report(payload, local_kernel_rate(payload)))
        return
    sizes = args.sizes.split(",")
    iters = iterations_per_size(args.iters, sizes)
    memory = driver_memory(sizes) if args.driver_memory == "auto" else args.driver_memory
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warnings.filterwarnings("ignore")
    from mfrec.spark import start_session

    total = time.perf_counter()
    load_before = os.getloadavg()
    for size in sizes:  # generate what is missing before Spark takes its memory
        folder, seconds = ensure_parquet(args.data_dir, size, 0)
        if seconds:
            print(f"generated {size} in {seconds:.1f} s -> {folder}", flush=True)
    start_s = time.perf_counter()
    spark = start_session(
        "local[2]", "mfrec-bench-engine",
        {"spark.sql.shuffle.partitions": str(args.blocks),
         "spark.default.parallelism": str(args.blocks),
         "spark.driver.memory": memory},
    )  # fmt: skip
    start_s = time.perf_counter() - start_s
    base = {"rank": args.rank, "reg": args.reg, "iters": iters[sizes[0]]}
    warm_s = None if args.no_warm_up else warm_up(spark, base)
    print(f"session {start_s:.1f} s, warm-up {warm_s} s", flush=True)
    sampler = MemorySampler(spark)
    results = []
    for size in sizes:
        results.append(run_size(spark, args, size, iters[size], sampler))
        print(f"{size}: {results[-1]['wall_s']:.0f} s wall", flush=True)
    sampler.stop()
    table = markdown_table(
        ["size", "engine", "fit s", "s / iteration", "RMSE", "top-N s", "top-N minus seen s"],
        [row for r in results for row in _rows(r)],
    )
    notes = "; ".join(
        f"{r['size']}: {r['n_train']:,} training ratings, {r['iters']} iterations, top-N "
        f"{r['topn_speedup_vs_mllib']:.1f}x faster than recommendForAllUsers, load "
        f"{min(x for p in r['load'] for x in p):.1f}-{max(x for p in r['load'] for x in p):.1f}"
        for r in results
    )
    markdown = (
        f"{table}\n\nlocal[2], rank {args.rank}, reg {args.reg}, {args.blocks} blocks per side, "
        f"n = {args.n}. {notes}. mfrec's s / iteration: median epoch; MLlib's: fit / "
        "iterations (it reports no epochs)."
    )
    print(markdown)
    path = write_result(
        "spark_engine",
        {
            "settings": {
                "rank": args.rank,
                "reg": args.reg,
                "iters": iters,
                "blocks": args.blocks,
                "n": args.n,
                "repeats": args.repeats,
                "driver_memory": memory,
            },
            "session_start_s": start_s,
            "warm_up_s": warm_s,
            "total_wall_s": time.perf_counter() - total,
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "results": results,
            "peak_rss_whole_run": peak_rss_mb(),
            "table": table,
            "markdown": markdown,
        },
    )
    print(f"wrote {path}")
    spark.stop()


if __name__ == "__main__":
    main()
