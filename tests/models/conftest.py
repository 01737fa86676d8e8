"""Fixtures shared by the model tests."""

from __future__ import annotations

import pytest

from .conformance import planted_problem


@pytest.fixture(scope="module")
def planted():
    """The tiny planted problem of the conformance suite: (SyntheticData, Fold)."""
    return planted_problem()
