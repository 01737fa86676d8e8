"""mfrec on Spark: blocked ALS whose row solves are mfrec's kernels, recommendations
for every user, evaluation -- all returning or reading ordinary mfrec models.

Needs the ``spark`` extra (``pip install "mfrec[spark]"``) and Java 17+. pyspark is
imported when a function is called, never by ``import mfrec``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate", "fit_als", "recommend_all", "start_session"]


def __getattr__(name: str) -> Any:
    if name == "fit_als":
        from mfrec.spark.als import fit_als

        return fit_als
    if name == "recommend_all":
        from mfrec.spark.recommend import recommend_all

        return recommend_all
    if name == "evaluate":
        from mfrec.spark.metrics import evaluate

        return evaluate
    if name == "start_session":
        from mfrec.spark._session import start_session

        return start_session
    raise AttributeError(f"module 'mfrec.spark' has no attribute {name!r}")
