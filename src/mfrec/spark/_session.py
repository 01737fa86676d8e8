"""pyspark, imported lazily, with errors that say how to install what is missing."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from mfrec.exceptions import ParameterError

INSTALL_HINT = 'install it with: pip install "mfrec[spark]"'


def require_pyspark() -> Any:
    """The ``pyspark`` module, or an ImportError saying how to install it."""
    try:
        import pyspark
    except ImportError:
        raise ImportError(
            f"mfrec.spark needs pyspark, which is not installed; {INSTALL_HINT}"
        ) from None
    return pyspark


def java_problem() -> str | None:
    """Why Spark cannot start a JVM here (None if a ``java`` is found)."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return None
    if shutil.which("java"):
        return None
    return (
        "Spark needs Java 17 or newer, and no `java` was found (JAVA_HOME is "
        f"{'unset' if not home else repr(home)}). Install a JDK, e.g. `apt-get install "
        "openjdk-17-jre-headless`, or set JAVA_HOME to one."
    )


def start_session(
    master: str = "local[2]",
    app_name: str = "mfrec",
    config: dict[str, str] | None = None,
) -> Any:
    """A SparkSession for ``master`` whose Python workers run this interpreter."""
    require_pyspark()
    problem = java_problem()
    if problem is not None and not master.startswith(("yarn", "k8s", "spark://")):
        raise RuntimeError(problem)
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    settings.update(config or {})
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def check_columns(df: Any, columns: dict[str, str]) -> None:
    """A clear error when the DataFrame lacks a named column (``{role: name}``)."""
    missing = {role: name for role, name in columns.items() if name not in df.columns}
    if missing:
        wanted = ", ".join(f"{role}={name!r}" for role, name in missing.items())
        raise ParameterError(
            f"the DataFrame has no column(s) {wanted}; it has {df.columns}. Name the right "
            "ones with user=, item=, rating= (or --columns on the command line)."
        )
