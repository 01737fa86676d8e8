"""ALS vs Spark MLlib's ALS (pyspark, local[2]), ML-100K u1..u5, side by side.

    python bench/spark_als.py                          # the full run (u1..u5, 3 repeats)
    python bench/spark_als.py --folds u1 --repeats 1   # a quick smoke run

Equal settings: rank 10, regParam 0.1, maxIter 10 (Spark's defaults), explicit
feedback, both with the weighted-lambda regularisation (reg x the row's rating count).
Spark's model has no biases: ``p_u . q_i``. The rows of the table:

- ``mfrec ALS (no biases)`` -- ``ALS(biased=False)``: Spark's model and objective;
- ``mfrec ALS (biased)`` -- ``ALS()``: the same rank, reg and epochs plus the global
  mean and user/item biases, mfrec's default form.

Scored pairs: Spark runs with ``coldStartStrategy="nan"``; test pairs whose user or item
has no training rating are excluded *for both* (the count is reported), so both score
exactly the same pairs. Predictions are clipped to 1..5 for both.

Timing: each fold is fitted ``--repeats`` times per model with shared seeds, interleaved;
fit seconds are medians, RMSE the mean. Spark's time is ``ALS.fit`` alone, on a cached
DataFrame, after one warm-up fit (JIT, broadcast set-up); the session start-up is
reported separately. Spark uses local[2] with 2 user and 2 item blocks and 2 shuffle
partitions (one per core, its fastest setting here); mfrec uses 2 numba threads.
Writes bench/results/spark_als.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

from _common import markdown_table, ml100k_folds, rmse_mae, timed, warm_up, write_result
from mfrec.models import ALS

RANK, REG, ITERS = 10, 0.1, 10
VARIANTS = {
    # Weighted-lambda only, as Spark (mfrec's default adds a fixed per-row part).
    # Every epoch, as Spark (no early stopping, mfrec's default since 2026-12-01).
    "mfrec ALS (no biases)": {"biased": False, "reg_row": 0.0, "patience": None},
    "mfrec ALS (biased)": {"biased": True, "reg_row": 0.0, "reg_bias_row": 0.0, "patience": None},
}
SPARK = "Spark ALS"


def start_spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("mfrec-bench-als")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def spark_frame(spark, ratings):
    frame = ratings.to_frame()[["user", "item", "rating"]]
    frame = frame.astype({"user": "int64", "item": "int64", "rating": "float64"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyspark's notice about pandas >= 3
        df = spark.createDataFrame(frame)
    df = df.cache()
    df.count()  # materialise: the timed fit starts from cached data
    return df


def spark_als(seed: int):
    from pyspark.ml.recommendation import ALS as SparkALS

    return SparkALS(
        rank=RANK,
        maxIter=ITERS,
        regParam=REG,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        coldStartStrategy="nan",
        numUserBlocks=2,
        numItemBlocks=2,
        seed=seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default="u1,u2,u3,u4,u5", help="comma-separated folds")
    parser.add_argument("--repeats", type=int, default=3, help="fits per fold and model")
    args = parser.parse_args()

    _, folds = ml100k_folds(tuple(args.folds.split(",")))
    compile_seconds = warm_up(lambda: ALS(n_factors=4, n_epochs=1))
    spark, startup_seconds = timed(start_spark)
    rows = []
    try:
        for k, fold in enumerate(folds):
            train_df = spark_frame(spark, fold.train)
            test_df = spark_frame(spark, fold.test)
            if k == 0:
                _, spark_warmup = timed(lambda: spark_als(0).fit(train_df))  # noqa: B023
            seconds = {name: [] for name in [*VARIANTS, SPARK]}
            errors = {name: [] for name in seconds}
            n_scored = None
            for rep in range(args.repeats):
                seed = 100 * k + rep
                for name, extra in VARIANTS.items():
                    model = ALS(n_factors=RANK, n_epochs=ITERS, reg=REG, random_state=seed, **extra)
                    seconds[name].append(timed(lambda: model.fit(fold.train))[1])  # noqa: B023
                    test = model._translate(fold.test)
                    known = (test.user_index >= 0) & (test.item_index >= 0)
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # unknown ids: excluded just above
                        predicted = model.predict_ratings(fold.test, clip=True)[known]
                    errors[name].append(rmse_mae(fold.test.rating[known], predicted))
                    n_scored = int(known.sum())
                fitted, spark_s = timed(lambda: spark_als(seed).fit(train_df))  # noqa: B023
                seconds[SPARK].append(spark_s)
                scored = fitted.transform(test_df).select("rating", "prediction").toPandas()
                scored = scored.dropna()
                if len(scored) != n_scored:
                    raise RuntimeError(
                        f"{fold.name}: Spark scored {len(scored)} pairs, mfrec {n_scored}"
                    )
                errors[SPARK].append(
                    rmse_mae(
                        scored["rating"].to_numpy(), np.clip(scored["prediction"].to_numpy(), 1, 5)
                    )
                )
            row = {"fold": fold.name, "n_scored": n_scored, "n_excluded": len(fold.test) - n_scored}
            for name in seconds:
                rmse, mae = np.mean(errors[name], axis=0)
                row[name] = {
                    "rmse": float(rmse),
                    "mae": float(mae),
                    "fit_s": float(np.median(seconds[name])),
                }
            rows.append(row)
            print(
                f"{fold.name}: "
                + " | ".join(
                    f"{name} RMSE {row[name]['rmse']:.4f} fit {row[name]['fit_s']:.3f}s"
                    for name in seconds
                ),
                flush=True,
            )
            train_df.unpersist()
            test_df.unpersist()
    finally:
        spark.stop()

    names = [*VARIANTS, SPARK]
    mean = {
        name: {
            key: float(np.mean([r[name][key] for r in rows])) for key in ("rmse", "mae", "fit_s")
        }
        for name in names
    }
    headers = ["fold", *[f"{n} RMSE" for n in names], *[f"{n} fit s" for n in names]]
    body = [
        [
            r["fold"],
            *[r[n]["rmse"] for n in names],
            *[f"{r[n]['fit_s']:.3f}" for n in names],
        ]
        for r in [*rows, {"fold": "mean", **mean}]
    ]
    table = markdown_table(headers, body)
    equal = mean["mfrec ALS (no biases)"]
    speedup = mean[SPARK]["fit_s"] / equal["fit_s"]
    excluded = sum(r["n_excluded"] for r in rows)
    summary = (
        f"Equal settings: rank {RANK}, reg {REG} x rating count, {ITERS} iterations, explicit. "
        f'"no biases" is Spark\'s model (p_u . q_i); "biased" adds mu + b_u + b_i at the '
        f"same settings. At equal settings mfrec fits {speedup:.0f}x faster "
        f"(mean {equal['fit_s']:.3f}s vs {mean[SPARK]['fit_s']:.2f}s) with RMSE "
        f"{equal['rmse']:.4f} vs {mean[SPARK]['rmse']:.4f}. Same pairs scored by all "
        f"({excluded} test pairs over {len(rows)} fold(s) with an id unseen in training "
        f"excluded), predictions clipped to 1..5; {args.repeats} seeded fit(s) per fold and "
        f"model (RMSE mean, seconds median). Spark: local[2], fit only, after a warm-up fit "
        f"({spark_warmup:.1f}s); session start-up {startup_seconds:.1f}s not included. numba "
        f"compile/load before the first fit: {compile_seconds:.2f}s, not included."
    )
    print(table)
    print(summary)
    write_result(
        "spark_als",
        {
            "markdown": table + "\n\n" + summary,
            "settings": {"rank": RANK, "reg": REG, "iterations": ITERS},
            "repeats": args.repeats,
            "folds": rows,
            "mean": mean,
            "speedup_equal_settings": speedup,
            "spark_startup_seconds": startup_seconds,
            "spark_warmup_seconds": spark_warmup,
            "compile_seconds": compile_seconds,
        },
    )


if __name__ == "__main__":
    main()
