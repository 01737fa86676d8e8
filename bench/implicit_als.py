"""ImplicitALS vs implicit's AlternatingLeastSquares (CPU, conjugate gradient), side by side.

    python bench/implicit_als.py            # ML-100K and ml-latest-small, 5 fits each
    python bench/implicit_als.py --quick    # one fit, ML-100K only (a smoke run)

Data: each MovieLens set treated as implicit feedback -- ratings >= 4 are interactions
(strength 1), the rest dropped -- then a per-user holdout of 20% of each user's
interactions (seed 0). Both libraries fit the same training interactions with the same
settings: 64 factors, 15 iterations, regularisation 1.0, 3 CG steps, 2 threads, seeds
shared; implicit's confidence is ``alpha r`` where HKV's (and mfrec's) is
``1 + alpha r``, so implicit gets ``alpha + 1`` -- the identical objective on binary data.
implicit runs with BLAS limited to one thread, as it asks.

Both are scored by mfrec's ranking metrics on exactly the same candidates: implicit's
factors are loaded into an mfrec model shell, so every test user ranks every item they
did not interact with in training, by the same code, with the same tie rule. NDCG@10,
recall@10, precision@10 and MAP@10 are means over fits; fit seconds are medians (fits
interleaved). numba's compile/cache load happens in a warm-up, outside the timings.

Also measured: fold-in of a new user (recommend_for_ratings: solve + rank) against
implicit's ``recommend(..., recalculate_user=True)``, and partial_fit of 100 users.
Writes bench/results/implicit_als.json.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np

from _common import markdown_table, timed, warm_up, write_result
from mfrec.models import ImplicitALS

SETTINGS = {"n_factors": 64, "n_epochs": 15, "reg": 1.0, "alpha": 10.0, "cg_steps": 3}
THREADS = 2
METRICS = "ndcg@10,recall@10,precision@10,map@10,mrr,coverage@10"
SHOWN = ("ndcg@10", "recall@10", "precision@10", "map@10")


def implicit_data(name: str):
    import mfrec
    from mfrec.data.implicit import to_implicit
    from mfrec.data.split import user_holdout

    ratings = mfrec.load_dataset(name, download=False)
    interactions = to_implicit(ratings, 4.0)
    fold = user_holdout(interactions, 0.2, random_state=0)
    return interactions, fold


def peer_model(seed: int):
    from implicit.cpu.als import AlternatingLeastSquares

    return AlternatingLeastSquares(
        factors=SETTINGS["n_factors"],
        regularization=SETTINGS["reg"],
        alpha=SETTINGS["alpha"] + 1.0,
        iterations=SETTINGS["n_epochs"],
        use_cg=True,
        num_threads=THREADS,
        random_state=seed,
    )


def shell_with(model: ImplicitALS, user_factors, item_factors) -> ImplicitALS:
    """A copy of a fitted mfrec model (same vocabularies, same seen items) holding the
    peer's factors: the same candidates, scoring and tie rule for both."""
    import copy

    shell = copy.copy(model)
    shell.user_factors_ = np.ascontiguousarray(user_factors, dtype=np.float32)
    shell.item_factors_ = np.ascontiguousarray(item_factors, dtype=np.float32)
    return shell


def bench_dataset(name: str, repeats: int) -> dict:
    from threadpoolctl import threadpool_limits

    from mfrec.evaluation.topn import evaluate_ranking

    interactions, fold = implicit_data(name)
    train = fold.train.compact()
    user_items = train.to_csr()  # rows/columns are the mfrec model's indices
    ours_s, peer_s, ours_m, peer_m = [], [], [], []
    for rep in range(repeats):
        seed = rep
        model = ImplicitALS(**SETTINGS, n_threads=THREADS, random_state=seed)
        ours_s.append(timed(lambda: model.fit(train))[1])  # noqa: B023 (called at once)
        ours_m.append(evaluate_ranking(model, fold.test, METRICS, relevance_threshold=None))
        with threadpool_limits(1, "blas"):
            peer = peer_model(seed)
            peer_s.append(timed(lambda: peer.fit(user_items, show_progress=False))[1])  # noqa: B023
        shell = shell_with(model, peer.user_factors, peer.item_factors)
        peer_m.append(evaluate_ranking(shell, fold.test, METRICS, relevance_threshold=None))
        print(
            f"{name} fit {rep}: mfrec NDCG@10 {ours_m[-1]['ndcg@10']:.4f} {ours_s[-1]:.3f}s | "
            f"implicit NDCG@10 {peer_m[-1]['ndcg@10']:.4f} {peer_s[-1]:.3f}s",
            flush=True,
        )
    row = {
        "dataset": name,
        "interactions": len(interactions),
        "n_train": len(fold.train),
        "n_test": len(fold.test),
        "users_evaluated": ours_m[0]["n_users_evaluated"],
        "mfrec_fit_s": float(np.median(ours_s)),
        "implicit_fit_s": float(np.median(peer_s)),
    }
    for key in METRICS.split(","):
        row[f"mfrec_{key}"] = float(np.mean([m[key] for m in ours_m]))
        row[f"implicit_{key}"] = float(np.mean([m[key] for m in peer_m]))
    row["fold_in"] = bench_fold_in(model, peer, fold.train, user_items)
    return row


def bench_fold_in(model: ImplicitALS, peer, train, user_items, n_users: int = 100) -> dict:
    """Milliseconds per new user: mfrec's recommend_for_ratings (solve + top 10) and
    implicit's recommend(recalculate_user=True); partial_fit of n_users at once."""
    from threadpoolctl import threadpool_limits

    seen = model.seen_items
    users = np.arange(0, len(model.users_), max(1, len(model.users_) // n_users))[:n_users]
    given = [(model.items_.take(seen[u].indices), seen[u].data.astype(np.float64)) for u in users]
    ours = []
    for items, values in given:
        ours.append(timed(lambda: model.recommend_for_ratings((items, values), n=10))[1])  # noqa: B023
    peers = []
    with threadpool_limits(1, "blas"):
        for u in users:
            row = user_items[u]
            peers.append(
                timed(lambda: peer.recommend(0, row, N=10, recalculate_user=True))[1]  # noqa: B023
            )
    frame = train.to_frame()
    update = frame[frame.user.isin(model.users_.ids[users])].copy()
    update["user"] = update["user"].astype(np.int64) + 10**9  # all new users
    copy_model = shell_with(model, model.user_factors_, model.item_factors_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, partial_s = timed(lambda: copy_model.partial_fit(update))
    return {
        "users": len(users),
        "mfrec_recommend_for_ratings_ms": 1000 * float(np.median(ours)),
        "implicit_recalculate_recommend_ms": 1000 * float(np.median(peers)),
        "mfrec_partial_fit_100_users_ms": 1000 * partial_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one fit on ML-100K only")
    args = parser.parse_args()
    datasets = ["ml-100k"] if args.quick else ["ml-100k", "ml-latest-small"]
    repeats = 1 if args.quick else 5
    compile_seconds = warm_up(lambda: ImplicitALS(n_factors=4, n_epochs=1))
    rows = [bench_dataset(name, repeats) for name in datasets]
    table_rows = []
    for row in rows:
        for lib in ("mfrec", "implicit"):
            table_rows.append(
                [row["dataset"], lib]
                + [row[f"{lib}_{key}"] for key in SHOWN]
                + [row[f"{lib}_fit_s"]]
            )
    table = markdown_table(
        ["data", "library", "NDCG@10", "recall@10", "precision@10", "MAP@10", "fit s"],
        table_rows,
    )
    fold_in = rows[0]["fold_in"]
    summary = (
        f"Settings: {SETTINGS} (implicit: alpha {SETTINGS['alpha'] + 1:g}, the same "
        f"objective), {THREADS} threads each, {repeats} fit(s) per library; metrics are "
        "means, fit seconds medians. Fold-in of a new user on ML-100K (solve + top 10): "
        f"{fold_in['mfrec_recommend_for_ratings_ms']:.2f} ms (mfrec) vs "
        f"{fold_in['implicit_recalculate_recommend_ms']:.2f} ms (implicit, "
        f"recalculate_user); partial_fit of {fold_in['users']} new users "
        f"{fold_in['mfrec_partial_fit_100_users_ms']:.1f} ms. numba compile/load before "
        f"the first fit: {compile_seconds:.2f}s, not in the fit times."
    )
    print(table)
    print(summary)
    write_result(
        "implicit_als",
        {
            "markdown": table + "\n\n" + summary,
            "settings": SETTINGS,
            "threads": THREADS,
            "repeats": repeats,
            "datasets": rows,
            "compile_seconds": compile_seconds,
        },
    )


if __name__ == "__main__":
    main()
