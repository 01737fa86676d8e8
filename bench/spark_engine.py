"""mfrec on Spark vs Spark MLlib's ALS, side by side in one Spark session (local[2]).

    python bench/spark_engine.py --sizes 1m            # what the README quotes
    python bench/spark_engine.py --sizes 1m,10m --iters 10

Data: synthetic ratings shaped like MovieLens (mfrec.data.synthetic.make_ratings with
the user/item counts of ML-1M / ML-10M, popularity-skewed, rank-10 planted model,
1..5 stars), 90/10 random holdout. Equal settings for both engines: rank, regParam
(weighted-lambda, the same meaning in both), iterations and blocks (numUserBlocks =
numItemBlocks = mfrec's num_blocks). mfrec fits its default biased model; MLlib's has no
biases. Measured per engine: fit seconds (total, and per iteration: mfrec's from its
per-epoch history, MLlib's as total / iterations, i.e. including its set-up), test RMSE
(pairs with both ids known to both, predictions clipped to 1..5), peak RSS of the JVM
and of the Python workers (VmHWM from /proc; in local mode the executor is the driver
JVM). Top-N for all users: mfrec.spark.recommend_all (exact, seen items excluded) vs
MLlib's recommendForAllUsers(n) as is, and with seen items removed afterwards -- which
needs n + (largest number of items a user rated) candidates per user to stay exact,
then an anti-join and a per-user window. Every output is materialised with the noop
writer. Engines alternate within each repeat; medians are reported with the load average.
Writes bench/results/spark_engine.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

from _common import markdown_table, write_result

SHAPES = {  # MovieLens user / item counts at each size
    "1m": (6_040, 3_706, 1_000_209),
    "10m": (69_878, 10_677, 10_000_054),
    "50m": (162_541, 59_047, 50_000_000),
}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory (VmHWM) of the JVM and the sum over pyspark's Python workers."""
    jvm, workers = 0.0, 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/status") as f:
                hwm = next((ln for ln in f if ln.startswith("VmHWM")), "VmHWM: 0 kB")
        except OSError:
            continue
        mb = int(hwm.split()[1]) / 1024
        if "org.apache.spark.deploy.SparkSubmit" in cmd and "mfrec-bench-engine" in cmd:
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


def predicted_message_bytes(train, blocks: int, rank: int, biased: bool = True) -> dict:
    """The cost model's shuffle per iteration: each factor row (rank floats, + 1 bias)
    goes once to each block that rates it, in both half-steps (docs/scaling.md)."""
    width = 4 * (rank + (1 if biased else 0))
    u = train["user"].to_numpy(np.int64)
    i = train["item"].to_numpy(np.int64)
    _, u_idx = np.unique(u, return_inverse=True)
    _, i_idx = np.unique(i, return_inverse=True)
    item_to_user_blocks = len(np.unique(i_idx * blocks + u_idx % blocks))
    user_to_item_blocks = len(np.unique(u_idx * blocks + i_idx % blocks))
    return {
        "factor_rows_sent": item_to_user_blocks + user_to_item_blocks,
        "payload_bytes": width * (item_to_user_blocks + user_to_item_blocks),
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
    B (users + items) rows, and never more than one per rating. FMAs: R m (m + 3) for
    the Gram matrices and right-hand sides of both sides plus (U + I)(m^3 / 6 + m^2) for
    the Cholesky solves. Memory per task: the cached block (int32 column + float32
    value, a float64 copy of the values while solving), the received factors, the new
    factors and one design matrix of the largest row.
    """
    m = rank + (1 if biased else 0)
    rows_sent = min(ratings, blocks * users) + min(ratings, blocks * items)
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
    model = ALS(n_factors=settings["rank"], reg=settings["reg"], n_epochs=3, random_state=0)
    model.fit(ratings)
    seconds = statistics.median(h["seconds"] for h in model.history_)
    cost = cost_per_iteration(len(ratings), ratings.n_users, ratings.n_items, settings["rank"], 1)
    return cost["flops"] / seconds / (os.cpu_count() or 1)


def make_data(size: str, seed: int):
    from mfrec.data.synthetic import make_ratings

    n_users, n_items, n = SHAPES[size]
    data = make_ratings(n_users, n_items, n, n_factors=10, random_state=seed)
    frame = data.ratings.to_frame()[["user", "item", "rating"]]
    frame = frame.astype({"user": "int32", "item": "int32", "rating": "float32"})
    test = np.random.default_rng(seed).random(len(frame)) < 0.1
    return frame[~test].reset_index(drop=True), frame[test].reset_index(drop=True)


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


def measured_messages(stages: list[dict], iters: int) -> float:
    """Shuffle bytes per iteration of the factor messages: the stages named after the
    message partitionBy in mfrec.spark.als._half_step (the last two per iteration)."""
    names = [st["name"] for st in stages if st["shuffle_write"] and "als.py" in st["name"]]
    message_site = names[-1] if names else ""
    per_stage = [st["shuffle_write"] for st in stages if st["name"] == message_site]
    return sum(per_stage[-2 * iters :]) / iters if per_stage else float("nan")


def scaling_report(payload: dict, kernel_rate: float) -> str:
    """Measured vs predicted shuffle, and the extrapolation to 1B / 10B ratings."""
    settings = payload["settings"]
    measured_rows = []
    for r in payload["results"]:
        predicted = r["predicted_messages"]["payload_bytes"]
        measured = measured_messages(r["mfrec_stages"], settings["iters"])
        cost = cost_per_iteration(
            r["n_train"], r["n_users"], r["n_items"], settings["rank"], settings["blocks"]
        )
        measured_rows.append(
            [r["size"], settings["blocks"], predicted / 1e6, measured / 1e6,
             f"{measured / predicted - 1:+.1%}", r["fit"]["mfrec"]["s_per_iter"],
             f"{cost['flops']:.3g}"]
        )  # fmt: skip
    headers = ["size", "blocks", "predicted MB / iter", "measured MB / iter", "error"]
    headers += ["s / iter (measured)", "flops / iter"]
    lines = [markdown_table(headers, measured_rows), ""]
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
         r["rmse"]["mllib"], top["mllib"], top["mllib_minus_seen"]],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1m")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--reg", type=float, default=0.1)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--driver-memory", default="3g")
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
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warnings.filterwarnings("ignore")
    from mfrec.spark import start_session

    load_before = os.getloadavg()
    spark, start_s = None, time.perf_counter()
    spark = start_session(
        "local[2]", "mfrec-bench-engine",
        {"spark.sql.shuffle.partitions": str(args.blocks),
         "spark.default.parallelism": str(args.blocks),
         "spark.driver.memory": args.driver_memory},
    )  # fmt: skip
    start_s = time.perf_counter() - start_s
    settings = {"rank": args.rank, "reg": args.reg, "iters": args.iters}
    results = []
    for size in args.sizes.split(","):
        train, test = make_data(size, 0)
        train_df = spark.createDataFrame(train).cache()
        test_df = spark.createDataFrame(test).cache()
        train_df.count(), test_df.count()
        max_seen = int(train.groupby("user").size().max())
        rows: dict[str, list] = {k: [] for k in ("mfrec", "mllib")}
        tops: dict[str, list] = {"mfrec": [], "mllib": [], "mllib_minus_seen": []}
        for repeat in range(args.repeats):
            order = ("mfrec", "mllib") if repeat % 2 == 0 else ("mllib", "mfrec")
            for engine in order:
                before = load()
                if engine == "mfrec":
                    first_stage = max((st["id"] for st in stage_metrics(spark)), default=-1)
                    model, r = run_mfrec(spark, train_df, test, settings, args.blocks, repeat)
                    r["stages"] = [st for st in stage_metrics(spark) if st["id"] > first_stage]
                    known = r.pop("known")
                    top = {"mfrec": topn_mfrec(spark, model, args.n)}
                else:
                    model, r = run_mllib(
                        spark, train_df, test_df, test, settings, args.blocks, repeat
                    )
                    top = {
                        "mllib": topn_mllib(spark, model, train_df, args.n, max_seen, False),
                        "mllib_minus_seen": topn_mllib(
                            spark, model, train_df, args.n, max_seen, True
                        ),
                    }
                r["pred_" + engine] = r.pop("pred")
                r["load"] = [before, load()]
                rows[engine].append(r)
                for key, value in top.items():
                    tops[key].append(value)
                print(
                    engine,
                    size,
                    {k: v for k, v in r.items() if not k.startswith("pred")},
                    top,
                    flush=True,
                )
        mask = known & np.isfinite(rows["mllib"][-1]["pred_mllib"])
        rmse = {
            "mfrec": rmse_on(rows["mfrec"][-1]["pred_mfrec"][mask], test[mask]),
            "mllib": rmse_on(rows["mllib"][-1]["pred_mllib"][mask], test[mask]),
        }
        med = {
            e: {k: statistics.median(r[k] for r in rows[e]) for k in ("fit_s", "s_per_iter")}
            for e in rows
        }
        top_med = {k: statistics.median(v) for k, v in tops.items()}
        results.append(
            {
                "size": size,
                "n_train": len(train),
                "n_test_scored": int(mask.sum()),
                "n_users": int(train["user"].nunique()),
                "n_items": int(train["item"].nunique()),
                "max_seen": max_seen,
                "predicted_messages": predicted_message_bytes(train, args.blocks, args.rank),
                "mfrec_stages": rows["mfrec"][-1]["stages"],
                "fit": med,
                "rmse": rmse,
                "topn_seconds": top_med,
                "topn_speedup_vs_mllib": top_med["mllib"] / top_med["mfrec"],
                "topn_speedup_vs_mllib_minus_seen": top_med["mllib_minus_seen"] / top_med["mfrec"],
                "load": [r["load"] for e in rows for r in rows[e]],
                "peak_memory": peak_rss_mb(),
            }
        )
        train_df.unpersist(), test_df.unpersist()
    table = markdown_table(
        ["size", "engine", "fit s", "s / iteration", "RMSE", "top-N s", "top-N minus seen s"],
        [row for r in results for row in _rows(r)],
    )
    print(table)
    path = write_result(
        "spark_engine",
        {
            "settings": {**settings, "blocks": args.blocks, "n": args.n, "repeats": args.repeats},
            "session_start_s": start_s,
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "results": results,
            "table": table,
            "markdown": table,
        },
    )
    print(f"wrote {path}")
    spark.stop()


if __name__ == "__main__":
    main()
