"""The ingest kernels: the byte scan that lets the CSV reader parse ids as ints, the dense
id encoder and the duplicate check."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from mfrec.data.readers import stream_has_noncanonical_int_field
from mfrec.kernels.ingest import (
    dense_codes,
    has_duplicate_pairs,
    has_noncanonical_int_field,
    has_noncanonical_int_field_reference,
)

FIELD = st.sampled_from(
    [
        "1",
        "12",
        "0",
        "007",
        "0x1F",
        "+5",
        "-5",
        "-0",
        "0.5",
        "4.5",
        " 3",
        "3 ",
        '"7"',
        '"07"',
        "a",
        "",
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    rows=st.lists(st.lists(FIELD, min_size=1, max_size=4), min_size=1, max_size=6),
    sep=st.sampled_from([",", "\t", ":"]),
    chunk=st.integers(1, 40),
)
def test_scan_matches_its_reference_in_any_chunking(rows, sep, chunk):
    text = "\n".join(sep.join(r) for r in rows).encode() + b"\n"
    buf = np.frombuffer(text, dtype=np.uint8)
    s = ord(sep)
    whole = has_noncanonical_int_field(buf, s, True)
    assert whole == has_noncanonical_int_field_reference(text, s, True)
    # The reader scans in chunks cut at line ends: any chunk size gives the same answer,
    # or (a line longer than a chunk) the safe one, True.
    chunked = stream_has_noncanonical_int_field(io.BytesIO(text), s, chunk_bytes=chunk)
    longest = max(len(line) + 1 for line in text.split(b"\n"))
    assert chunked == (whole or longest > chunk)


@given(st.lists(st.integers(0, 3000), min_size=1, max_size=400))
def test_dense_codes_equal_sorted_factorize(values):
    arr = np.array(values, dtype=np.int32)
    ids, codes = dense_codes(arr, int(arr.max()))
    expected_codes, expected_ids = pd.factorize(arr, sort=True)
    assert np.array_equal(ids, expected_ids) and np.array_equal(codes, expected_codes)


def test_a_field_split_across_chunks_is_still_seen():
    # "1,007" cut after "1,0" looked canonical in halves: lines are now carried whole.
    text = b"5,1\n1,007,3\n2,2,4\n"
    for chunk in range(len("1,007,3\n"), len(text) + 1):
        assert stream_has_noncanonical_int_field(io.BytesIO(text), ord(","), chunk_bytes=chunk)
    assert not stream_has_noncanonical_int_field(io.BytesIO(b"5,1\n1,7,3\n"), ord(","), 8)


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 9)), min_size=1, max_size=60))
def test_duplicate_check_equals_a_set(pairs):
    u, i = (np.array(col, dtype=np.int32) for col in zip(*pairs, strict=True))
    expected = len(set(pairs)) < len(pairs)
    assert has_duplicate_pairs(u, i, int(u.max()) + 1, int(i.max()) + 1) == expected
