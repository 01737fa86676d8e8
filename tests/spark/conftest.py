"""One SparkSession for the whole Spark part of the suite (local[2], UI off, few
shuffle partitions, a small driver): the JVM starts once.

Under ``CI=true`` a missing pyspark or Java is a failure; elsewhere these tests skip.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return 'pyspark is not installed (pip install "mfrec[spark]")'
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "no Java found (Spark needs Java 17+)"
    return None


@pytest.fixture(scope="session")
def spark():
    reason = _unavailable()
    if reason:
        if IN_CI:
            pytest.fail(reason + " -- the Spark tests are required when CI=true")
        pytest.skip(reason)
    from mfrec.spark import start_session

    os.environ["PYSPARK_PYTHON"] = sys.executable
    warnings.filterwarnings("ignore", message=".*pandas >= 3.*")
    session = start_session(
        "local[2]",
        "mfrec-tests",
        {
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.driver.memory": "1g",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
        },
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def to_spark(spark):
    """Turn mfrec Ratings into a Spark DataFrame (user, item, rating)."""
    return lambda ratings: _frame_of(spark, ratings)


def _frame_of(spark, ratings):
    import pandas as pd

    pdf = pd.DataFrame(
        {
            "user": ratings.users.take(ratings.user_index),
            "item": ratings.items.take(ratings.item_index),
            "rating": ratings.rating.astype("float64"),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return spark.createDataFrame(pdf)
