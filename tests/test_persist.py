"""The .mfrec file: exact round trips, atomic writes, clear errors on bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import mfrec
from mfrec.data.ratings import Ratings
from mfrec.exceptions import ModelFileError
from mfrec.models import BiasedMF
from mfrec.persist import FORMAT_VERSION


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 40, 600)
    items = rng.integers(0, 30, 600)
    frame_ratings = Ratings.from_arrays(
        users, items, rng.integers(1, 6, 600), duplicates="last", scale=(1, 5)
    )
    # Every epoch: on these random ratings early stopping would keep epoch 0, the biases.
    return BiasedMF(n_factors=4, n_epochs=5, patience=None, random_state=0).fit(frame_ratings)


def test_round_trip_string_and_big_ids(tmp_path):
    big = 2**70
    ratings = Ratings.from_arrays(["ann", "bob", "ann", "cy"], [big, 5, 5, big + 1], [4, 2, 5, 3])
    model = BiasedMF(n_factors=2, n_epochs=3, random_state=1).fit(ratings)
    model.save(tmp_path / "m.mfrec")
    loaded = mfrec.load(tmp_path / "m.mfrec")
    assert loaded.users_ == model.users_ and loaded.items_ == model.items_
    assert loaded.items_.ids.tolist() == [5, big, big + 1]
    assert np.array_equal(
        loaded.predict(["ann", "cy"], [big, 5]), model.predict(["ann", "cy"], [big, 5])
    )


def test_titles_are_kept(tmp_path):
    import pandas as pd

    info = pd.DataFrame({"title": ["Alpha (1990)", "Beta (2001)"]}, index=pd.Index([10, 20]))
    ratings = Ratings.from_arrays([1, 1, 2], [10, 20, 20], [3, 4, 5], item_info=info)
    model = BiasedMF(n_factors=2, n_epochs=2, random_state=0).fit(ratings)
    model.save(tmp_path / "t.mfrec")
    assert mfrec.load(tmp_path / "t.mfrec").item_titles_.tolist() == ["Alpha (1990)", "Beta (2001)"]


def test_file_has_no_pickle_and_documented_members(model, tmp_path):
    path = tmp_path / "m.mfrec"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert {"meta.npy", "users.npy", "items.npy", "seen_indptr.npy", "a.user_factors_.npy"} <= names
    with np.load(path, allow_pickle=False) as data:  # would raise on any object array
        meta = json.loads(bytes(data["meta"]).decode())
        for key in data.files:
            assert data[key].dtype != object
    assert meta["format"] == "mfrec-model" and meta["model_class"] == "BiasedMF"
    assert meta["params"]["n_factors"] == 4 and len(meta["history"]) == 5


def test_failed_write_leaves_previous_file_intact(model, tmp_path, monkeypatch):
    path = tmp_path / "m.mfrec"
    model.save(path)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.mfrec"], "no temporary file left behind"


def test_truncated_file(model, tmp_path):
    path = tmp_path / "m.mfrec"
    model.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"truncated|corrupted|incomplete"):
        mfrec.load(path)


def test_corrupted_bytes(model, tmp_path):
    path = tmp_path / "m.mfrec"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("a.item_factors_.npy")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 200] ^= 0xFF  # inside the stored array bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="corrupted"):
        mfrec.load(path)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not an mfrec model file"):
        mfrec.load(text)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.arange(3))
    with pytest.raises(ModelFileError, match="missing"):
        mfrec.load(other)
    with pytest.raises(FileNotFoundError):
        mfrec.load(tmp_path / "absent.mfrec")


def _rewrite_meta(path, change):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(bytes(arrays["meta"]).decode())
    change(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def test_newer_format_version_and_unknown_class(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    _rewrite_meta(path, lambda m: m.update(format_version=FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match="upgrade mfrec"):
        mfrec.load(path)
    model.save(path)
    _rewrite_meta(path, lambda m: m.update(model_class="TimeMachine"))
    with pytest.raises(ModelFileError, match="unknown class 'TimeMachine'"):
        mfrec.load(path)


def test_a_file_older_than_a_parameter_loads_with_the_old_behaviour(model, tmp_path):
    """Files written before the count-aware penalty existed hold no reg_row /
    reg_bias_row: they load with 0 (the objective they were trained with, which fold-in
    solves), not with today's defaults; files that hold them keep theirs."""
    path = tmp_path / "old.npz"
    model.save(path)
    assert mfrec.load(path).reg_row == model.reg_row == 2.0
    from mfrec.persist import _meta_digest

    def as_before(meta):  # what the mfrec of that time wrote: no such keys, valid checksum
        for key in ("reg_row", "reg_bias_row"):
            meta["params"].pop(key)
        meta["checksums"]["meta"] = _meta_digest(meta)

    _rewrite_meta(path, as_before)
    old = mfrec.load(path)
    assert old.reg_row == 0.0 and old.reg_bias_row == 0.0
    base, _ = old._fold_in_penalty()
    assert not base.any(), "fold-in solves the per-rating objective alone"


def test_inconsistent_shapes(model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["a.user_bias_"] = arrays["a.user_bias_"][:-1]
    np.savez(path, **arrays)
    with pytest.raises(ModelFileError, match="user_bias_"):
        mfrec.load(path)
