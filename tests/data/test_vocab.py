"""Vocabulary: exact id round trips, one policy for unknown ids, no id mix-ups."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mfrec.data.vocab import Vocabulary, _encode_dense
from mfrec.exceptions import DataError


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=300))
def test_dense_encoding_equals_hashing(values):
    arr = np.array(values, dtype=np.int64)
    ids, codes = _encode_dense(arr)
    expected_codes, expected_ids = pd.factorize(arr, sort=True)
    assert np.array_equal(ids, expected_ids)
    assert np.array_equal(codes, expected_codes)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=50))
def test_any_int64_ids_round_trip(values):
    vocab, codes = Vocabulary.encode(values, "user")
    assert vocab.kind == "int"
    assert vocab.take(codes).tolist() == values
    assert np.array_equal(vocab.lookup(values), codes)


def test_kinds_and_exact_round_trip():
    cases = {
        "int": [10, -3, 10, 7],
        "uint": [2**64 - 1, 5, 2**63],
        "bigint": [2**70, -(2**65), 3],
        "str": ["b", "a", "007", "7"],
    }
    for kind, values in cases.items():
        vocab, codes = Vocabulary.encode(values, "item")
        assert vocab.kind == kind
        assert vocab.take(codes).tolist() == values
        restored = Vocabulary.from_array(vocab.kind, vocab.to_array(), "item")
        assert restored == vocab
        assert restored.take(codes).tolist() == values


def test_ids_are_sorted_and_codes_contiguous():
    vocab, codes = Vocabulary.encode([30, 10, 20, 10], "user")
    assert vocab.ids.tolist() == [10, 20, 30]
    assert codes.tolist() == [2, 0, 1, 0]
    assert codes.dtype == np.int32


def test_unknown_ids_are_minus_one_in_lookup_and_named_by_index():
    vocab, _ = Vocabulary.encode([1, 2, 3], "user")
    assert vocab.lookup([3, 4, 1]).tolist() == [2, -1, 0]
    with pytest.raises(KeyError, match=r"1 unknown user id.*4"):
        vocab.index([3, 4])
    assert 2 in vocab and 9 not in vocab and "2" not in vocab


def test_kind_mismatch_is_an_error_not_a_miss():
    ints, _ = Vocabulary.encode([196, 186], "user")
    with pytest.raises(DataError, match="user ids are integers but got str '196'"):
        ints.lookup(["196"])
    strs, _ = Vocabulary.encode(["196"], "user")
    with pytest.raises(DataError, match="user ids are strings"):
        strs.lookup([196])


def test_parse_command_line_text():
    ints, _ = Vocabulary.encode([1, 2**70], "user")
    assert ints.parse(["1", str(2**70)]).tolist() == [1, 2**70]
    with pytest.raises(DataError, match="'x1' is not one"):
        ints.parse(["x1"])
    strs, _ = Vocabulary.encode(["007"], "item")
    assert strs.parse(["007"]).tolist() == ["007"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1, "a"], "all ints or all strings; row 0 has int 1 but row 1 has str 'a'"),
        ([1.0, 2.5], "row 1 has the number 2.5"),
        ([1, None], "missing user id at row 1"),
        ([True, False], "booleans"),
        (np.array([1.0, np.nan]), "missing user id at row 1"),
    ],
)
def test_bad_ids(values, message):
    with pytest.raises(DataError, match=message):
        Vocabulary.encode(values, "user")


def test_whole_floats_become_ints():
    vocab, codes = Vocabulary.encode(np.array([3.0, 1.0]), "item")
    assert vocab.kind == "int" and vocab.ids.tolist() == [1, 3] and codes.tolist() == [1, 0]


def test_subset_and_distinctness():
    vocab, _ = Vocabulary.encode(["a", "b", "c"], "item")
    assert vocab.subset(np.array([2, 0])).ids.tolist() == ["c", "a"]
    with pytest.raises(DataError, match="distinct"):
        Vocabulary(["a", "a"], "item")
