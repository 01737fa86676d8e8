"""Shared fixtures.

Real-data tests read MovieLens from ``MFREC_DATA_DIR``. On a user's machine without the
data they skip; under ``CI=true`` a missing dataset is a failure, never a skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Kernels compile on their first call (a clean checkout has no numba cache): no
# per-example deadline, or the first example of a property test fails on a slow machine.
settings.register_profile("mfrec", deadline=None)
settings.load_profile("mfrec")

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _dataset_dir(folder: str, marker_file: str) -> Path:
    root = os.environ.get("MFREC_DATA_DIR")
    path = Path(root) / folder if root else None
    if path is None or not (path / marker_file).is_file():
        message = (
            f"{folder} not found: set MFREC_DATA_DIR to a folder holding {folder}/{marker_file} "
            f"(MFREC_DATA_DIR={root!r})"
        )
        if IN_CI:
            pytest.fail(message + " -- real-data tests are required when CI=true")
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The unpacked ML-100K folder (u.data, u.item, ...)."""
    return _dataset_dir("ml-100k", "u.data")


@pytest.fixture(scope="session")
def ml_latest_small_dir() -> Path:
    """The unpacked ml-latest-small folder (ratings.csv, movies.csv)."""
    return _dataset_dir("ml-latest-small", "ratings.csv")
