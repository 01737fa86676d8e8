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
BUILD_SCHEMA = "kind int, dst int, src int, payload binary, duplicates long"


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


def _unique_inverse(keys: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_inverse=True)`` for keys in ``[0, bound)``: with a
    presence table when ``bound`` is small against the keys (no sort), else np.unique."""
    if bound > 4 * len(keys):
        return np.unique(keys, return_inverse=True)
    present = np.zeros(bound, dtype=bool)
    present[keys] = True
    rank = np.cumsum(present, dtype=np.int64) - 1
    return np.flatnonzero(present), rank[keys]


def build_blocks(key: tuple, frame: pd.DataFrame, num_blocks: int, n_rows: int) -> pd.DataFrame:
    """applyInPandas over the ratings of one destination block (columns ``row``,
    ``col``, ``r``: indices and values): its in-block and its out-links."""
    block = int(key[0])
    rows = frame["row"].to_numpy(np.int64)
    cols = frame["col"].to_numpy(np.int64)
    values = frame["r"].to_numpy(np.float32)
    local = rows // num_blocks
    n_local = rows_in_block(n_rows, block, num_blocks)
    # A fixed order within each row (by column), whatever order Spark delivered: one
    # argsort of a combined key (np.lexsort on two keys is several times slower).
    order = np.argsort(local * (int(cols.max()) + 1) + cols)
    local, cols, values = local[order], cols[order], values[order]
    same = (local[1:] == local[:-1]) & (cols[1:] == cols[:-1])
    source, position = cols % num_blocks, cols // num_blocks
    stride = int(cols.max()) // num_blocks + 1
    received, inverse = _unique_inverse(source * stride + position, stride * num_blocks)
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
    out = [(KIND_IN_BLOCK, block, -1, dumps(in_block), in_block.n_duplicates)]
    bounds = np.searchsorted(received_source, sources, side="left")
    ends = np.searchsorted(received_source, sources, side="right")
    for j, start, stop in zip(sources, bounds, ends, strict=True):
        positions = received_position[start:stop].astype(np.int64)
        out.append((KIND_OUT_LINK, block, int(j), dumps(positions), 0))
    return pd.DataFrame(out, columns=["kind", "dst", "src", "payload", "duplicates"])


def _threads() -> int:
    """Cores this task may use (``spark.task.cpus``), for numba's parallel loops."""
    try:
        from pyspark import TaskContext

        context = TaskContext.get()
        return max(1, int(context.cpus())) if context is not None else 1
    except Exception:  # an older pyspark without TaskContext.cpus
        return 1


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


def half_step(
    index: int,
    records: Any,
    solve: Any,
    settings: dict,
    report: Any,
    num_blocks: int,
    send_only: bool = False,
) -> list:
    """One block's half-step, fused with sending its result (mapPartitionsWithIndex over
    the union of the side's cached static records and the shuffled messages).

    Records in, keyed by this block ``index``: ``("in", in-block)`` and ``("link", c,
    positions)`` (static: the block's ratings and which of its rows block ``c`` of the
    other side needs); ``("msg", j, factors, bias)`` (the other side's block ``j``'s
    rows this block rates); ``("own", factors, bias)`` (this block's current factors,
    present when the solver needs them or when they travel back for collection);
    ``("transit", factors, bias)`` (the other side's block ``index``'s new factors,
    handed back as its ``own``) and ``("gram", j, G)`` (implicit ALS: X^T X of the
    other side's block ``j``). Out, keyed by destination block of the other side: the
    messages its blocks need, this block's new factors as ``transit``, the other side's
    ``own``, and (implicit) this block's Gram matrix for every block. With
    ``send_only`` the ``own`` factors are sent as they are (the initial factors).
    The block's stats go to the ``report`` accumulator as ``(index, stats)``."""
    in_block, links, messages, grams = None, [], [], []
    own = transit = None
    for _, value in records:
        tag = value[0]
        if tag == "msg":
            messages.append(value[1:])
        elif tag == "in":
            in_block = loads(value[1])
        elif tag == "link":
            links.append((value[1], value[2]))
        elif tag == "own":
            own = value[1:]
        elif tag == "transit":
            transit = value[1:]
        elif tag == "gram":
            grams.append(value[1:])
    implicit = "cg_steps" in settings
    if send_only:
        if own is None:
            raise RuntimeError(f"block {index} has no initial factors")
        factors, bias = own
        stats = {"gram": gram_of(factors)} if implicit else {}
    else:
        if in_block is None:
            raise RuntimeError(f"block {index} has no ratings: the blocks are out of step")
        messages.sort(key=lambda m: m[0])
        step = settings
        if implicit:
            grams.sort(key=lambda g: g[0])
            if len(grams) != num_blocks:
                raise RuntimeError(f"block {index} received {len(grams)} Gram matrices")
            total = np.sum([g[1] for g in grams], axis=0)
            ridge = settings["reg"] * np.eye(settings["k"])
            step = {**settings, "G": (total + ridge).astype(np.float32)}
            if own is None:
                raise RuntimeError(f"block {index} has no current factors")
            element = (((index, in_block), (index, messages)), (index, (*own, None)))
        else:
            element = ((index, in_block), (index, messages))
        _, (factors, bias, stats) = solve(element, step)
    with_bias = bias is not None
    out = []
    for c, positions in sorted(links, key=lambda link: link[0]):
        sub_bias = bias[positions] if with_bias else None
        out.append((c, ("msg", index, np.ascontiguousarray(factors[positions]), sub_bias)))
    out.append((index, ("transit", factors, bias)))
    if transit is not None:
        out.append((index, ("own", *transit)))
    if implicit:
        block_gram = stats["gram"]
        out.extend((c, ("gram", index, block_gram)) for c in range(num_blocks))
    if not send_only:
        report.add([(index, stats)])
    return out


def gram_of(factors: np.ndarray) -> np.ndarray:
    """X^T X of one factor block (float64)."""
    from mfrec.kernels.implicit_als import gram

    return gram(factors)


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
