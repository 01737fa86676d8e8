"""Fixtures of the robustness suite: a tiny fitted model and a way to rewrite its file.

The suite is a corpus of bad inputs and faults, each with the exact outcome it must
have: a clear error (exception type and a key phrase of the message, or a CLI exit code
and one-line message) or correct behaviour. ``corpus_counts`` in ``test_corpus_size``
tallies them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mfrec.data.ratings import Ratings
from mfrec.models import BiasedMF
from mfrec.persist import _array_digest, _meta_digest

USERS = [1, 1, 2, 2, 3, 3, 4, 5, 5]
ITEMS = [10, 11, 10, 12, 11, 13, 12, 13, 14]
RATINGS = [5.0, 3.0, 4.0, 2.0, 1.0, 5.0, 3.0, 4.0, 2.5]


@pytest.fixture(scope="session")
def tiny_model() -> BiasedMF:
    """A tiny BiasedMF: 5 users, 5 items, 2 factors (a model file of about 4.5 kB)."""
    ratings = Ratings.from_arrays(USERS, ITEMS, RATINGS)
    return BiasedMF(n_factors=2, n_epochs=2, random_state=0).fit(ratings)


@pytest.fixture(scope="session")
def tiny_bytes(tiny_model, tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("tiny") / "tiny.mfrec"
    tiny_model.save(path)
    return path.read_bytes()


@pytest.fixture
def tiny_file(tiny_bytes, tmp_path) -> Path:
    path = tmp_path / "tiny.mfrec"
    path.write_bytes(tiny_bytes)
    return path


def read_members(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(bytes(arrays.pop("meta")).decode())
    return meta, arrays


def write_members(path: Path, meta: dict, arrays: dict[str, np.ndarray], sign: str) -> None:
    """Write a model file from parts. ``sign``: "keep" leaves the old checksums (an
    edit is then detected), "new" recomputes them (so the structural checks behind the
    checksums are what must catch a bad value), "drop" removes them (a file saved
    before checksums existed)."""
    meta = dict(meta)
    if sign == "new":
        meta = json.loads(json.dumps(meta, allow_nan=True))
        meta["checksums"] = {"meta": _meta_digest(meta)} | {
            k: _array_digest(v) for k, v in arrays.items()
        }
    elif sign == "drop":
        meta.pop("checksums", None)
    raw = np.frombuffer(json.dumps(meta, allow_nan=True).encode(), dtype=np.uint8)
    with open(path, "wb") as handle:  # np.savez(path) would append ".npz"
        np.savez(handle, meta=raw, **arrays)


def known_pairs():
    return np.array(USERS), np.array(ITEMS)
