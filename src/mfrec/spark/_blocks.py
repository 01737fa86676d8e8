"""What runs inside the executors: building the rating blocks and solving them.

Blocking (MLlib's scheme, Das et al. 2017 / SPARK-3541): ids are contiguous indices,
and index ``x`` of a side lives in block ``x % num_blocks`` at position
``x // num_blocks``. For each block of rows (users, say) an *in-block* holds its
ratings as CSR over local rows, whose columns point into the matrix of the other
side's factors that the block *receives*: the rows it needs, ordered by source block
then position. For each pair (source block j, destination block b) an *out-link* lists
the positions in block j of the factors that b needs, so each factor travels once to
each block that rates it -- never the ratings, which stay cached where they were built.

Everything here is arrays in, arrays out; the solves are mfrec's numba kernels
(:mod:`mfrec.kernels.als`, :mod:`mfrec.kernels.implicit_als`), unchanged.
"""

from __future__ import annotations

import pickle
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

KIND_IN_BLOCK, KIND_OUT_LINK = 0, 1
BUILD_SCHEMA = "kind int, dst int, src int, payload binary"


class InBlock(NamedTuple):
    """The ratings of one block of rows, ready for the kernels."""

    indptr: np.ndarray  # int64, n_rows + 1
    cols: np.ndarray  # int32, index into the received factor matrix
    values: np.ndarray  # float32
    sources: np.ndarray  # int32, the source blocks it receives from, ascending
    n_duplicates: int
    n_nonfinite: int
    min_value: float


def rows_in_block(n_total: int, block: int, num_blocks: int) -> int:
    """How many of the indices 0..n_total-1 fall in ``block``."""
    return max(0, -(-(n_total - block) // num_blocks))


def dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=5)


def loads(payload: Any) -> Any:
    return pickle.loads(bytes(payload))


def build_blocks(key: tuple, frame: pd.DataFrame, num_blocks: int, n_rows: int) -> pd.DataFrame:
    """applyInPandas over the ratings of one destination block (columns ``row``,
    ``col``, ``r``: indices and values): its in-block and its out-links."""
    block = int(key[0])
    rows = frame["row"].to_numpy(np.int64)
    cols = frame["col"].to_numpy(np.int64)
    values = frame["r"].to_numpy(np.float32)
    local = rows // num_blocks
    n_local = rows_in_block(n_rows, block, num_blocks)
    # A fixed order within each row (by column), whatever order Spark delivered.
    order = np.lexsort((cols, local))
    local, cols, values = local[order], cols[order], values[order]
    same = (local[1:] == local[:-1]) & (cols[1:] == cols[:-1])
    source, position = cols % num_blocks, cols // num_blocks
    stride = int(cols.max()) // num_blocks + 1
    received, inverse = np.unique(source * stride + position, return_inverse=True)
    received_source = received // stride
    received_position = received % stride
    indptr = np.zeros(n_local + 1, dtype=np.int64)
    np.cumsum(np.bincount(local, minlength=n_local), out=indptr[1:])
    sources = np.unique(received_source).astype(np.int32)
    finite = np.isfinite(values)
    in_block = InBlock(
        indptr,
        inverse.astype(np.int32),
        values,
        sources,
        int(same.sum()),
        int((~finite).sum()),
        float(values[finite].min()) if finite.any() else 0.0,
    )
    out = [(KIND_IN_BLOCK, block, -1, dumps(in_block))]
    bounds = np.searchsorted(received_source, sources, side="left")
    ends = np.searchsorted(received_source, sources, side="right")
    for j, start, stop in zip(sources, bounds, ends, strict=True):
        positions = received_position[start:stop].astype(np.int64)
        out.append((KIND_OUT_LINK, block, int(j), dumps(positions)))
    return pd.DataFrame(out, columns=["kind", "dst", "src", "payload"])


def _threads() -> int:
    """Cores this task may use (``spark.task.cpus``), for numba's parallel loops."""
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        return max(1, int(context.cpus())) if context is not None else 1
    except Exception:  # an older pyspark without TaskContext.cpus
        return 1


def send_factors(element: tuple, with_bias: bool) -> list:
    """From one source block ``((j, (factors, bias, stats)), (j, links))``: the
    factors each destination needs, as ``(b, (j, factors[pos], bias[pos]))``."""
    (j, (factors, bias, _)), (_, links) = element
    out = []
    for b, positions in links:
        sub_bias = bias[positions] if with_bias else None
        out.append((b, (j, np.ascontiguousarray(factors[positions]), sub_bias)))
    return out


def gather(index: int, messages: Any) -> list:
    """All messages of one destination partition, in source-block order."""
    received = sorted((m[1] for m in messages), key=lambda m: m[0])
    return [(index, received)]


def _received(in_block: InBlock, messages: list, k: int, with_bias: bool):
    sources = np.array([m[0] for m in messages], dtype=np.int32)
    if not np.array_equal(sources, in_block.sources):
        raise RuntimeError(
            f"block received factors from {sources.tolist()}, expected "
            f"{in_block.sources.tolist()}: the blocks are out of step"
        )
    factors = np.concatenate([m[1] for m in messages]) if messages else np.zeros((0, k), np.float32)
    bias = np.concatenate([m[2] for m in messages]) if with_bias and messages else None
    return np.ascontiguousarray(factors), bias


class StatsParam:
    """Accumulator of ``(block, stats)`` pairs (pyspark's AccumulatorParam protocol)."""

    def zero(self, value: list) -> list:
        return []

    def addInPlace(self, value1: list, value2: list) -> list:  # pyspark's name
        value1.extend(value2)
        return value1


def solve_and_report(element: tuple, solve: Any, settings: dict, report: Any) -> tuple:
    """``solve`` one block and add its ``(block, stats)`` to the ``report`` accumulator."""
    block, (factors, bias, stats) = solve(element, settings)
    report.add([(block, stats)])
    return block, (factors, bias, stats)


def solve_explicit(element: tuple, settings: dict) -> tuple:
    """One block's half-step of biased / unbiased ALS (:func:`als_solve_rows`), plus
    its share of the objective: the penalty of its rows and, with ``sse``, the squared
    error of its ratings under the new factors."""
    from mfrec._threads import numba_threads
    from mfrec.kernels.als import als_solve_rows, row_sse

    (block, in_block), (_, messages) = element
    k, use_bias = settings["k"], settings["use_bias"]
    dtype = np.dtype(settings["dtype"])
    other, other_bias = _received(in_block, messages, k, use_bias)
    n_local = len(in_block.indptr) - 1
    factors = np.zeros((n_local, k), dtype=dtype)
    bias = np.zeros(n_local, dtype=dtype) if use_bias else np.zeros(0, dtype=dtype)
    empty = np.zeros(0, dtype=dtype)
    values = in_block.values.astype(np.float64)
    with numba_threads(_threads()):
        failed = als_solve_rows(
            in_block.indptr, in_block.cols, values, other,
            other_bias if use_bias else empty, settings["offset"], factors, bias,
            settings["reg"], settings["reg_bias"], use_bias, settings["reg_row"],
            settings["reg_bias_row"],
        )  # fmt: skip
        sse = 0.0
        if settings["sse"]:
            sse = float(
                row_sse(
                    in_block.indptr, in_block.cols, values, factors, other,
                    bias if use_bias else empty, other_bias if use_bias else empty,
                    settings["offset"], use_bias,
                )
            )  # fmt: skip
    counts = np.diff(in_block.indptr).astype(np.float64)
    squares = np.einsum("ij,ij->i", factors, factors, dtype=np.float64)
    penalty = settings["reg"] * float(counts @ squares) + settings["reg_row"] * float(squares.sum())
    if use_bias:
        b64 = bias.astype(np.float64)
        penalty += settings["reg_bias"] * float(counts @ (b64 * b64))
        penalty += settings["reg_bias_row"] * float(b64 @ b64)
    stats = {"failed": int(failed), "sse": sse, "penalty": penalty}
    return block, (factors, bias if use_bias else None, stats)


def solve_implicit(element: tuple, settings: dict) -> tuple:
    """One block's half-step of implicit ALS (:func:`cg_half_step`, warm-started from
    the block's previous factors), plus its Gram matrix X^T X and, with ``loss``, the
    observed part of the objective."""
    from mfrec._threads import numba_threads
    from mfrec.kernels.implicit_als import (
        cg_half_step,
        confidence_terms,
        gram,
        observed_loss_partials,
    )

    ((block, in_block), (_, messages)), (_, (previous, _, _)) = element
    k = settings["k"]
    other, _ = _received(in_block, messages, k, False)
    factors = previous.copy()
    extra, target = confidence_terms(in_block.values, settings["alpha"])
    with numba_threads(_threads()):
        cg_half_step(
            in_block.indptr, in_block.cols, extra, target, factors, other, settings["G"],
            settings["cg_steps"],
        )  # fmt: skip
        observed = 0.0
        if settings["loss"]:
            partials = np.empty(max(1, -(-len(factors) // 128)), dtype=np.float64)
            observed_loss_partials(
                in_block.indptr, in_block.cols, extra, target, factors, other, partials
            )
            observed = float(partials.sum())
        block_gram = gram(factors)
    return block, (factors, None, {"failed": 0, "gram": block_gram, "observed": observed})


def block_gram(element: tuple) -> np.ndarray:
    """X^T X of one factor block (float64)."""
    from mfrec.kernels.implicit_als import gram

    return gram(element[1][0])
