"""What the reliability checks cost: saving and loading a large model with checksums and
whole-file verification, against the floor (np.load of every member) and against a file
without checksums (structure checks only); and reading a large CSV, against pyarrow's
own parse of the same file.

    python bench/reliability.py [--users 160000] [--items 60000] [--per-user 150]
        [--lines 5000000] [--repeats 3]

Repeats are interleaved (floor, then mfrec, in each round); medians are reported with
the load average before and after. Writes bench/results/reliability.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import mfrec
from _common import markdown_table, write_result
from mfrec.data.ratings import Ratings
from mfrec.data.readers import read_ratings
from mfrec.data.vocab import Vocabulary
from mfrec.models import BiasedMF


def big_model(n_users: int, n_items: int, per_user: int, k: int = 100) -> BiasedMF:
    """A BiasedMF of the given size with random parameters (no fit: only I/O is timed)."""
    rng = np.random.default_rng(0)
    model = BiasedMF(n_factors=2, n_epochs=1, random_state=0)
    model.fit(Ratings.from_arrays([1, 2], [1, 2], [3.0, 4.0]))
    model.n_factors = k
    model.users_ = Vocabulary(np.arange(n_users), "user")
    model.items_ = Vocabulary(np.arange(n_items), "item")
    model.user_factors_ = rng.standard_normal((n_users, k), dtype=np.float32)
    model.item_factors_ = rng.standard_normal((n_items, k), dtype=np.float32)
    model.user_bias_ = rng.standard_normal(n_users, dtype=np.float32)
    model.item_bias_ = rng.standard_normal(n_items, dtype=np.float32)
    stride = n_items // per_user
    offsets = rng.integers(0, stride, (n_users, 1))
    indices = (np.arange(per_user) * stride + offsets).astype(np.int32).ravel()
    indptr = np.arange(0, n_users * per_user + 1, per_user, dtype=np.int32)
    data = rng.integers(1, 6, len(indices)).astype(np.float32)
    model._seen = sp.csr_matrix((data, indices, indptr), shape=(n_users, n_items))
    return model


def np_load_all(path: Path) -> None:
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files:
            archive[key]


def strip_checksums(path: Path, out: Path) -> None:
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(bytes(arrays.pop("meta")).decode())
    meta.pop("checksums")
    raw = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(out, "wb") as handle:
        np.savez(handle, meta=raw, **arrays)


def write_csv(path: Path, lines: int) -> None:
    rng = np.random.default_rng(1)
    users = rng.integers(1, 200_000, lines)
    items = rng.integers(1, 60_000, lines)
    ratings = rng.integers(1, 11, lines) / 2
    times = rng.integers(800_000_000, 1_600_000_000, lines)
    with open(path, "w") as handle:
        handle.write("userId,movieId,rating,timestamp\n")
        for start in range(0, lines, 1_000_000):
            block = slice(start, start + 1_000_000)
            rows = np.char.add(np.char.add(users[block].astype(str), ","), items[block].astype(str))
            rows = np.char.add(np.char.add(rows, ","), ratings[block].astype(str))
            rows = np.char.add(np.char.add(rows, ","), times[block].astype(str))
            handle.write("\n".join(rows.tolist()) + "\n")


def markdown(args: argparse.Namespace, medians: dict[str, float], file_mb: float) -> str:
    """The README block: what verification costs, against the floors."""
    seen = args.users * args.per_user
    rows = [
        ["save (checksums computed)", medians["save"], ""],
        ["np.load of every member (floor)", medians["np_load_floor"], 1.0],
        ["mfrec.load, file without checksums", medians["load_no_checksums"],
         medians["load_no_checksums"] / medians["np_load_floor"]],
        ["mfrec.load, verified whole", medians["load_verified"],
         medians["load_verified"] / medians["np_load_floor"]],
    ]  # fmt: skip
    model = markdown_table(["model file", "median s", "vs floor"], rows)
    rows = [
        ["pyarrow.csv.read_csv (floor)", medians["pyarrow_csv_floor"], 1.0],
        ["read_ratings (checked, ids encoded)", medians["read_ratings"],
         medians["read_ratings"] / medians["pyarrow_csv_floor"]],
    ]  # fmt: skip
    reader = markdown_table(["ratings file", "median s", "vs floor"], rows)
    return (
        f"A BiasedMF of {args.users:,} users, {args.items:,} items, {seen:,} seen ratings "
        f"and 100 factors ({file_mb:.0f} MB file); a CSV of {args.lines:,} ratings. "
        f"Medians of {args.repeats} interleaved rounds.\n\n{model}\n\n{reader}\n"
    )


def median_of(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=160_000)
    parser.add_argument("--items", type=int, default=60_000)
    parser.add_argument("--per-user", type=int, default=150)
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="mfrec-bench-"))
    try:
        run(args, folder, load_before)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, folder: Path, load_before: tuple[float, ...]) -> None:
    model = big_model(args.users, args.items, args.per_user)
    path, old = folder / "big.mfrec", folder / "old.mfrec"
    csv = folder / "ratings.csv"
    write_csv(csv, args.lines)
    import pyarrow.csv as pacsv

    rounds = []
    for _ in range(args.repeats):
        t: dict[str, float] = {}
        started = time.perf_counter()
        model.save(path)
        t["save"] = time.perf_counter() - started
        strip_checksums(path, old)
        for name, func in (
            ("np_load_floor", lambda: np_load_all(path)),
            ("load_verified", lambda: mfrec.load(path)),
            ("load_no_checksums", lambda: mfrec.load(old)),
            ("pyarrow_csv_floor", lambda: pacsv.read_csv(csv)),
            ("read_ratings", lambda: read_ratings(csv, duplicates="last")),
        ):
            started = time.perf_counter()
            func()
            t[name] = time.perf_counter() - started
        rounds.append(t)
        print({k: round(v, 3) for k, v in t.items()}, flush=True)
    medians = {key: median_of(rounds, key) for key in rounds[0]}
    result = {
        "model": {
            "users": args.users,
            "items": args.items,
            "seen_ratings": args.users * args.per_user,
            "n_factors": 100,
            "file_mb": round(path.stat().st_size / 1e6, 1),
        },
        "csv_lines": args.lines,
        "repeats": args.repeats,
        "median_seconds": medians,
        "ratios": {
            "load_verified_over_np_load": medians["load_verified"] / medians["np_load_floor"],
            "load_verified_over_no_checksums": medians["load_verified"]
            / medians["load_no_checksums"],
            "read_ratings_over_pyarrow": medians["read_ratings"] / medians["pyarrow_csv_floor"],
        },
        "markdown": markdown(args, medians, path.stat().st_size / 1e6),
        "rounds": rounds,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    print(json.dumps(result["median_seconds"], indent=2), json.dumps(result["ratios"], indent=2))
    print("wrote", write_result("reliability", result))


if __name__ == "__main__":
    main()
