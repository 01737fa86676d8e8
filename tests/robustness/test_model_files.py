"""Damaged, edited, foreign and inconsistent model files: each is refused with a
ModelFileError naming the member and the fix -- or, for harmless differences, loads and
predicts exactly what the original does. Every single-byte flip of a small model file
is one or the other."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mfrec
from mfrec.exceptions import ModelFileError
from mfrec.models import MODELS
from mfrec.persist import _load_from

from .conftest import known_pairs, read_members, write_members

#: The registry ``mfrec.load`` hands the file reader.
CLASSES = {cls.__name__: cls for cls in MODELS.values()}


def _set(path, key, value):
    def change(meta, arrays):
        if key.startswith("meta."):
            target = meta
            parts = key[5:].split(".")
            for part in parts[:-1]:
                target = target[part]
            target[parts[-1]] = value
        else:
            arrays[key] = value(arrays[key]) if callable(value) else value

    return change


def _drop(key):
    def change(meta, arrays):
        if key.startswith("meta."):
            meta.pop(key[5:])
        else:
            arrays.pop(key)

    return change


def _relabel(meta, arrays):
    meta["model_class"] = "FunkSVD"


def _drop_biases(meta, arrays):
    meta["arrays"]["user_bias_"] = meta["arrays"]["item_bias_"] = None
    arrays.pop("a.user_bias_")
    arrays.pop("a.item_bias_")


def _nan_at(a, where=(0, 0)):
    a = a.copy()
    a[where] = np.nan
    return a


def _unsort_first_row(meta, arrays):
    indices = arrays["seen_indices"].copy()
    indices[[0, 1]] = indices[[1, 0]]
    arrays["seen_indices"] = indices


def _extra_member(meta, arrays):
    arrays["payload"] = np.arange(3)


def _str_users(meta, arrays):
    arrays["users"] = arrays["users"].astype(str)


def _bigint_garbage(meta, arrays):
    meta["users_kind"] = "bigint"
    arrays["users"] = np.array(["1", "2", "x", "4", "5"])


def _relabel_with_params(meta, arrays):
    meta["model_class"] = "FunkSVD"
    del meta["params"]["lr_bias"], meta["params"]["reg_bias"]


# (id, change, sign, phrase): "keep" = edited without new checksums, "new" = re-signed
# so that the structural check must catch it, "drop" = an old file without checksums.
REFUSED = [
    ("edited-param", _set(None, "meta.params.lr", 0.5), "keep", "(member 'meta') does not match"),
    (
        "edited-bias",
        _set(None, "a.user_bias_", lambda a: a + 1),
        "keep",
        "member 'a.user_bias_' does not match its checksum",
    ),
    ("extra-member-unsigned", _extra_member, "keep", "member 'payload' has no checksum"),
    ("missing-member", _drop("a.item_bias_"), "keep", "member 'a.item_bias_' is missing"),
    ("relabelled-funksvd", _relabel, "new", "is the model class right"),
    ("relabelled-funksvd-old", _relabel, "drop", "is the model class right"),
    ("relabelled-funksvd-params-fixed", _relabel_with_params, "new", "is the model class right"),
    ("biases-dropped", _drop_biases, "new", "lacks it"),
    ("nan-factor", _set(None, "a.user_factors_", _nan_at), "new", "NaN or infinite"),
    ("nan-factor-old", _set(None, "a.user_factors_", _nan_at), "drop", "NaN or infinite"),
    ("inf-bias", _set(None, "a.item_bias_", lambda a: a * np.inf), "new", "NaN or infinite"),
    (
        "half-width",
        _set(None, "a.item_factors_", lambda a: a[:, :1].copy()),
        "new",
        "'a.item_factors_' has shape (5, 1), expected (5, 2)",
    ),
    (
        "float16-factors",
        _set(None, "a.user_factors_", lambda a: a.astype(np.float16)),
        "new",
        "dtype float16",
    ),
    (
        "int-factors",
        _set(None, "a.user_factors_", lambda a: a.astype(np.int64)),
        "new",
        "dtype int64",
    ),
    (
        "float64-in-float32-model",
        _set(None, "a.user_factors_", lambda a: a.astype(np.float64)),
        "new",
        "model's dtype is float32",
    ),
    ("short-bias", _set(None, "a.user_bias_", lambda a: a[:-1].copy()), "new", "has shape (4,)"),
    ("2d-bias", _set(None, "a.user_bias_", lambda a: a[:, None].copy()), "new", "has shape"),
    (
        "string-global-mean",
        _set(None, "meta.scalars.global_mean_", "3.5"),
        "new",
        "meta.scalars.global_mean_",
    ),
    (
        "nan-global-mean",
        _set(None, "meta.scalars.global_mean_", float("nan")),
        "new",
        "meta.scalars.global_mean_",
    ),
    (
        "bool-global-mean",
        _set(None, "meta.scalars.global_mean_", True),
        "new",
        "meta.scalars.global_mean_",
    ),
    ("no-global-mean", _drop("meta.scalars"), "new", "meta.scalars"),
    ("negative-fit-seconds", _set(None, "meta.scalars.fit_seconds_", -1.0), "new", "fit_seconds_"),
    ("float-best-epoch", _set(None, "meta.scalars.best_epoch_", 1.5), "new", "best_epoch_"),
    (
        "unknown-scalar",
        _set(None, "meta.scalars.magic_", 1.0),
        "new",
        "is not a learned value of BiasedMF",
    ),
    (
        "duplicate-user-id",
        _set(None, "users", lambda a: np.r_[a[:-1], a[0]]),
        "new",
        "more than once",
    ),
    ("empty-users", _set(None, "users", lambda a: a[:0].copy()), "new", "is empty"),
    ("string-users-int-kind", _str_users, "new", "for int ids"),
    ("unknown-kind", _set(None, "meta.users_kind", "float"), "new", "meta.users_kind"),
    ("bigint-garbage", _bigint_garbage, "new", "cannot be read as bigint ids"),
    ("seen-index-too-big", _set(None, "seen_indices", lambda a: a + 100), "new", "outside 0..4"),
    ("seen-index-negative", _set(None, "seen_indices", lambda a: a - 100), "new", "outside"),
    (
        "seen-indptr-not-monotone",
        _set(None, "seen_indptr", lambda a: a[::-1].copy()),
        "new",
        "monotone",
    ),
    (
        "seen-indptr-short",
        _set(None, "seen_indptr", lambda a: a[:-1].copy()),
        "new",
        "entries for 5 users",
    ),
    (
        "seen-indptr-float",
        _set(None, "seen_indptr", lambda a: a.astype(float)),
        "new",
        "'seen_indptr' is float64",
    ),
    ("seen-unsorted", _unsort_first_row, "new", "sorted and distinct"),
    (
        "seen-data-nan",
        _set(None, "seen_data", lambda a: np.r_[np.float32(np.nan), a[1:]].astype(a.dtype)),
        "new",
        "NaN",
    ),
    ("seen-data-short", _set(None, "seen_data", lambda a: a[:-1].copy()), "new", "has shape"),
    (
        "titles-wrong-length",
        _set(None, "item_titles", np.array(["a", "b"])),
        "new",
        "expected 5 strings",
    ),
    (
        "bad-hyperparameter",
        _set(None, "meta.params.n_factors", -3),
        "new",
        "stored hyperparameters (meta.params) are invalid",
    ),
    ("unknown-hyperparameter", _set(None, "meta.params.warp", 9), "new", "stored hyperparameters"),
    ("params-not-dict", _set(None, "meta.params", [1, 2]), "new", "meta.params"),
    ("scale-reversed", _set(None, "meta.rating_scale", [5, 1]), "new", "meta.rating_scale"),
    ("scale-text", _set(None, "meta.rating_scale", "1-5"), "new", "meta.rating_scale"),
    ("history-not-list", _set(None, "meta.history", {"a": 1}), "new", "meta.history"),
    (
        "array-renamed",
        _set(None, "meta.arrays.user_bias_", "a.item_bias_"),
        "new",
        "names member 'a.item_bias_'",
    ),
    ("array-list-short", _drop("meta.arrays"), "new", "meta.arrays"),
    ("checksums-not-dict", _set(None, "meta.checksums", [1]), "keep", "meta.checksums"),
    ("version-text", _set(None, "meta.format_version", "1"), "new", "not a positive int"),
    ("version-future", _set(None, "meta.format_version", 99), "new", "upgrade mfrec"),
    ("unknown-class", _set(None, "meta.model_class", "TimeMachine"), "new", "unknown class"),
    ("class-not-text", _set(None, "meta.model_class", 7), "new", "unknown class"),
    ("foreign-format", _set(None, "meta.format", "other"), "new", "not an mfrec model file"),
    ("unexpected-member-old", _extra_member, "drop", "'payload' does not belong"),
]


@pytest.mark.parametrize(
    ("change", "sign", "phrase"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_refused_model_file(tiny_file, change, sign, phrase):
    meta, arrays = read_members(tiny_file)
    change(meta, arrays)
    write_members(tiny_file, meta, arrays, sign)
    with pytest.raises(ModelFileError) as caught:
        mfrec.load(tiny_file)
    message = str(caught.value)
    assert phrase in message
    assert str(tiny_file) in message


def test_deeply_nested_metadata(tiny_file):
    meta, arrays = read_members(tiny_file)
    text = json.dumps(meta).replace('"history": []', '"history": ' + "[" * 5000 + "]" * 5000)
    text = text.replace('"history": [', '"history": ' + "[" * 5000 + "]" * 5000 + ", [", 1)
    raw = np.frombuffer(text.encode(), dtype=np.uint8)
    with open(tiny_file, "wb") as handle:
        np.savez(handle, meta=raw, **arrays)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        mfrec.load(tiny_file)


def test_compressed_members_are_refused(tiny_file):
    """A compressed member could expand without bound (a zip bomb): refused unread."""
    meta, arrays = read_members(tiny_file)
    raw = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(tiny_file, "wb") as handle:
        np.savez_compressed(handle, meta=raw, **arrays)
    with pytest.raises(ModelFileError, match="is compressed"):
        mfrec.load(tiny_file)


def _big_endian(meta, arrays):
    for key in list(arrays):
        if arrays[key].dtype.kind in "fi":
            arrays[key] = arrays[key].astype(arrays[key].dtype.newbyteorder(">"))


def _fortran(meta, arrays):
    arrays["a.user_factors_"] = np.asfortranarray(arrays["a.user_factors_"])
    arrays["a.item_factors_"] = np.asfortranarray(arrays["a.item_factors_"])


def _int32_indptr(meta, arrays):
    arrays["seen_indptr"] = arrays["seen_indptr"].astype(np.int64)


# Harmless differences: the file loads and predicts exactly what the original does.
ACCEPTED = [
    ("old-file-without-checksums", lambda m, a: None, "drop"),
    ("resigned-unchanged", lambda m, a: None, "new"),
    ("big-endian-arrays", _big_endian, "new"),
    ("fortran-order-factors", _fortran, "new"),
    ("int64-indptr", _int32_indptr, "new"),
    ("history-dropped", _drop("meta.history"), "new"),
]


@pytest.mark.parametrize(
    ("change", "sign"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED]
)
def test_accepted_model_file(tiny_model, tiny_file, change, sign):
    meta, arrays = read_members(tiny_file)
    change(meta, arrays)
    write_members(tiny_file, meta, arrays, sign)
    loaded = mfrec.load(tiny_file)
    users, items = known_pairs()
    np.testing.assert_array_equal(loaded.predict(users, items), tiny_model.predict(users, items))
    a, b = loaded.recommend([1, 2, 5], n=3), tiny_model.recommend([1, 2, 5], n=3)
    np.testing.assert_array_equal(a.item_ids, b.item_ids)


def test_old_file_is_logged_not_refused(tiny_file, caplog):
    meta, arrays = read_members(tiny_file)
    write_members(tiny_file, meta, arrays, "drop")
    with caplog.at_level("INFO", logger="mfrec.persist"):
        mfrec.load(tiny_file)
    assert "no checksums" in caplog.text


def _path_cases(tmp_path, tiny_bytes):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    empty = tmp_path / "empty.mfrec"
    empty.write_bytes(b"")
    half = tmp_path / "half.mfrec"
    half.write_bytes(tiny_bytes[: len(tiny_bytes) // 2])
    npy = tmp_path / "bare.npy"
    np.save(npy, np.arange(3))
    npz = tmp_path / "other.npz"
    np.savez(npz, x=np.arange(3))
    folder = tmp_path / "folder.mfrec"
    folder.mkdir()
    fifo = tmp_path / "pipe.mfrec"
    os.mkfifo(fifo)
    return [
        (text, "not a zip archive"),
        (empty, "not a zip archive"),
        (half, "not a readable mfrec model file"),
        (npy, "not a zip archive"),
        (npz, "member 'meta' is missing"),
        (folder, "is a folder"),
        (fifo, "not a regular file"),
        ("/dev/null", "not a regular file"),
    ]


PATH_CASES = 8


@pytest.mark.parametrize("case", range(PATH_CASES))
def test_foreign_paths(tmp_path, tiny_bytes, case):
    path, phrase = _path_cases(tmp_path, tiny_bytes)[case]
    with pytest.raises(ModelFileError, match=phrase):
        mfrec.load(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        mfrec.load(tmp_path / "absent.mfrec")


def test_every_single_byte_flip(tiny_model, tiny_bytes):
    """Each byte of the file XOR 0xFF: ModelFileError, or identical predictions."""
    users, items = known_pairs()
    expected = tiny_model.predict(users, items)
    buffer = bytearray(tiny_bytes)
    refused = accepted = 0
    for position in range(len(buffer)):
        buffer[position] ^= 0xFF
        try:
            model = _load_from(io.BytesIO(bytes(buffer)), "flipped.mfrec", CLASSES)
        except ModelFileError:
            refused += 1
        else:
            np.testing.assert_array_equal(
                model.predict(users, items), expected, err_msg=f"byte {position}"
            )
            accepted += 1
        buffer[position] ^= 0xFF
    assert refused + accepted == len(tiny_bytes)
    assert refused > accepted  # most bytes matter; the others are zip bookkeeping


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
META_KEYS = [
    "format_version", "model_class", "params", "params.n_factors", "params.lr", "params.dtype",
    "scalars", "scalars.global_mean_", "scalars.best_epoch_", "arrays", "arrays.user_bias_",
    "users_kind", "items_kind", "rating_scale", "history", "created",
]  # fmt: skip


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(META_KEYS), value=json_values)
def test_fuzzed_metadata_never_crashes(tiny_bytes, tmp_path, key, value):
    """Any JSON value at any metadata key, re-signed: a ModelFileError, or a model that
    predicts finite numbers and recommends."""
    path = tmp_path / "fuzz.mfrec"
    path.write_bytes(tiny_bytes)
    meta, arrays = read_members(path)
    _set(None, f"meta.{key}", value)(meta, arrays)
    write_members(path, meta, arrays, "new")
    try:
        model = mfrec.load(path)
    except ModelFileError as exc:
        error = str(exc)
    else:
        error = None
    if error is not None:
        assert str(path) in error
        return
    users, items = known_pairs()
    assert np.isfinite(model.predict(users, items)).all()
    assert len(model.recommend(1, n=2).item_ids) == 2
