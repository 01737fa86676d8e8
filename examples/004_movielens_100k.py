"""Notebook 004 with mfrec: MovieLens 100K end to end, and the gradient checked with SymPy.

The notebook downloads ML-100K, holds out 20% of each user's ratings, trains P (users
x 5) and Q (movies x 5) by per-rating SGD in pure Python for 100 epochs at lr 0.001,
plots the training MSE, reaches a test MSE of about 0.91, looks at the errors of the
rounded predictions, loads the titles, and checks the gradient of (x.y - a)^2 with
SymPy. Here: the same split (``user_holdout``), the notebook's model and settings with
mfrec's FunkSVD (its step is the notebook's with ``lr = 2 x 0.001``), and BiasedMF at
its defaults next to it; both figures are saved as PNG files.

The data comes from ``$MFREC_DATA_DIR/ml-100k`` if set, else mfrec's cache, else it is
downloaded (checksummed). Run ``python examples/004_movielens_100k.py [--out DIR]``.
Output of an actual run (2 cores, shared machine)::

    Ratings(ml-100k: 100,000 ratings, 943 users, 1,682 items, scale 1-5)
      per-user 80/20 split: train 80,000, test 20,000 ratings (loaded and split in 0.63 s)
    FunkSVD (the notebook's model: 5 factors, no regularisation):
      test MSE 0.8908 (0.8834 clipped to 1-5), 100 epochs in 0.26 s
    BiasedMF (mfrec's defaults):
      test MSE 0.8224 (0.8224 clipped to 1-5), 19 epochs in 0.33 s
    (39 of 20000 pairs have ids unseen in training (0 with an unknown user, 39 with an unknown
    item); they were predicted from the global mean and the biases that exist)
    (times on 2 cores at load average 1.9)
    training MSE by epoch: 1: 13.712, 10: 1.852, 25: 0.909, 50: 0.784, 75: 0.720, 100: 0.686
    absolute error of rounded predictions: 0: 8,446, 1: 9,447, 2: 1,815, 3: 271, 4: 20, 5: 1
    figures: mfrec-004-output/training_loss.png, mfrec-004-output/error_histogram.png
    top-10 for user 196 (movies they have not rated):
     1. Pather Panchali (1955)  (4.73)
     2. Schindler's List (1993)  (4.67)
     3. Four Days in September (1997)  (4.62)
     4. Titanic (1997)  (4.54)
     5. As Good As It Gets (1997)  (4.53)
     6. Good Will Hunting (1997)  (4.51)
     7. Boot, Das (1981)  (4.49)
     8. Shawshank Redemption, The (1994)  (4.47)
     9. Casablanca (1942)  (4.46)
    10. Star Wars (1977)  (4.40)
    notebook: d/dx (x.y - a)^2 = 2*y0*(-a + x0*y0 + x1*y1 + x2*y2), ... = 2 (x.y - a) y: True
    mfrec:    dL/dp = -(r - p.q) q + reg p, dL/dq = -(r - p.q) p + reg q: True
    at a random point: |SymPy - finite differences| = 5.9e-10,
                       |SymPy - mfrec's SGD step / -lr| = 3.7e-14
"""

from __future__ import annotations

import argparse
import os
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import mfrec
from mfrec.data.split import user_holdout
from mfrec.exceptions import UnknownIdWarning
from mfrec.models import BiasedMF, FunkSVD

# The notebook's plain SGD: a fixed step size, every epoch (no early stopping), factors
# started around zero -- not mfrec's defaults (AdaGrad, early stopping on a held-out slice).
NOTEBOOK_SGD = {
    "optimizer": "sgd",
    "patience": None,
    "validation_fraction": 0.0,
    "init_mean": 0.0,
    "init_std": 0.1,
}


def check_gradient_with_sympy() -> dict:
    """The notebook's symbolic gradient, then mfrec's per-rating objective: its SymPy
    gradient against central finite differences and against one step of mfrec's SGD
    kernel (the step must be -lr x gradient; tests/models/test_sgd.py checks the same
    with finite differences)."""
    import sympy as sp

    from mfrec.kernels.sgd import sgd_epoch  # the kernel behind FunkSVD (private API)

    n = 3
    a = sp.Symbol("a")
    x = sp.Matrix(sp.symbols(f"x0:{n}"))
    y = sp.Matrix(sp.symbols(f"y0:{n}"))
    f = (x.dot(y) - a) ** 2
    grad_x = sp.Matrix([sp.diff(f, xi) for xi in x])
    notebook_ok = sp.simplify(grad_x - 2 * (x.dot(y) - a) * y) == sp.zeros(n, 1)
    print(
        f"notebook: d/dx (x.y - a)^2 = {sp.factor(grad_x[0])}, ... = 2 (x.y - a) y: {notebook_ok}"
    )

    # mfrec's FunkSVD minimises, per rating, L = 1/2 (r - p.q)^2 + reg/2 (|p|^2 + |q|^2).
    r, reg = sp.symbols("r reg")
    p = sp.Matrix(sp.symbols(f"p0:{n}"))
    q = sp.Matrix(sp.symbols(f"q0:{n}"))
    loss = (r - p.dot(q)) ** 2 / 2 + reg / 2 * (p.dot(p) + q.dot(q))
    grad_p = sp.Matrix([sp.diff(loss, v) for v in p])
    grad_q = sp.Matrix([sp.diff(loss, v) for v in q])
    error = r - p.dot(q)
    expected = sp.Matrix.vstack(-error * q + reg * p, -error * p + reg * q)
    mfrec_ok = sp.simplify(sp.Matrix.vstack(grad_p, grad_q) - expected) == sp.zeros(2 * n, 1)
    print(f"mfrec:    dL/dp = -(r - p.q) q + reg p, dL/dq = -(r - p.q) p + reg q: {mfrec_ok}")

    gradient = sp.lambdify((p, q, r, reg), sp.Matrix.vstack(grad_p, grad_q), "numpy")
    objective = sp.lambdify((p, q, r, reg), loss, "numpy")
    rng = np.random.default_rng(0)
    p0, q0, r0, reg0, lr, h = rng.normal(size=n), rng.normal(size=n), 4.0, 0.05, 1e-3, 1e-6
    symbolic = np.asarray(gradient(p0, q0, r0, reg0), dtype=float).ravel()
    point = np.concatenate([p0, q0])
    finite = np.empty(2 * n)
    for j in range(2 * n):
        step = np.zeros(2 * n)
        step[j] = h
        up, down = point + step, point - step
        finite[j] = (
            objective(up[:n], up[n:], r0, reg0) - objective(down[:n], down[n:], r0, reg0)
        ) / (2 * h)
    P, Q = p0[None].copy(), q0[None].copy()
    one, none = np.zeros(1, dtype=np.int32), np.zeros(1)
    sgd_epoch(
        one, one, np.array([r0]), one, P, Q, none, none, 0.0, lr, reg0, 0.0, 0.0, False,
        np.zeros((0, 2)), np.zeros((0, 2)), False,  # plain SGD: no step-size accumulators
        np.zeros((0, 2)), np.zeros((0, 2)),  # no count-aware penalty
    )  # fmt: skip
    kernel = (point - np.concatenate([P[0], Q[0]])) / lr
    fd_gap = float(np.abs(symbolic - finite).max())
    kernel_gap = float(np.abs(symbolic - kernel).max())
    print(f"at a random point: |SymPy - finite differences| = {fd_gap:.1e},")
    print(f"                   |SymPy - mfrec's SGD step / -lr| = {kernel_gap:.1e}")
    return {
        "notebook_ok": bool(notebook_ok),
        "mfrec_ok": bool(mfrec_ok),
        "fd_gap": fd_gap,
        "kernel_gap": kernel_gap,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="mfrec-004-output", help="folder for the figures")
    parser.add_argument("--epochs", type=int, default=100, help="FunkSVD epochs (notebook: 100)")
    parser.add_argument("--biased-epochs", type=int, default=20, help="BiasedMF epochs")
    parser.add_argument("--user", type=int, default=196)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    ratings = mfrec.load_dataset("ml-100k")
    fold = user_holdout(ratings, test_fraction=0.2, random_state=42)  # 20% of each user
    print(ratings)
    print(
        f"  per-user 80/20 split: train {len(fold.train):,}, test {len(fold.test):,} ratings "
        f"(loaded and split in {time.perf_counter() - started:.2f} s)"
    )

    models = {
        "FunkSVD (the notebook's model: 5 factors, no regularisation)": FunkSVD(
            n_factors=5,
            n_epochs=args.epochs,
            lr=2 * 0.001,
            reg=0.0,
            random_state=0,
            **NOTEBOOK_SGD,
        ),
        "BiasedMF (mfrec's defaults)": BiasedMF(n_epochs=args.biased_epochs, random_state=0),
    }
    results = {}
    for name, model in models.items():
        model.fit(fold.train)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnknownIdWarning)
            predicted = model.predict_ratings(fold.test)
        mse = float(np.mean((predicted - fold.test.rating) ** 2))
        mse_clipped = float(np.mean((np.clip(predicted, 1, 5) - fold.test.rating) ** 2))
        print(f"{name}:")
        print(
            f"  test MSE {mse:.4f} ({mse_clipped:.4f} clipped to 1-5), "
            f"{len(model.history_)} epochs in {model.fit_seconds_:.2f} s"
        )
        results[name] = {"model": model, "predicted": predicted, "mse": mse}
    if caught:
        print(textwrap.fill(f"({caught[0].message})", width=90))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(times on {os.cpu_count()} cores at load average {load:.1f})")

    notebook_model = next(iter(results.values()))
    model, predicted = notebook_model["model"], notebook_model["predicted"]
    mse_history = [rec["train_rmse"] ** 2 for rec in model.history_]
    print(
        "training MSE by epoch: "
        + ", ".join(
            f"{e + 1}: {v:.3f}"
            for e, v in enumerate(mse_history)
            if e in (0, 9) or (e + 1) % 25 == 0
        )
    )
    mfrec.plots.plot_history(model.history_, out / "training_loss.png", title="FunkSVD, ML-100K")
    mfrec.plots.plot_error_histogram(fold.test.rating, predicted, out / "error_histogram.png")

    # The notebook's error analysis: absolute error of the rounded predictions.
    errors = pd.Series(np.abs(np.round(predicted) - fold.test.rating).astype(int))
    counts = errors.value_counts().sort_index()
    print(
        "absolute error of rounded predictions: "
        + ", ".join(f"{k}: {v:,}" for k, v in counts.items())
    )
    print(f"figures: {out / 'training_loss.png'}, {out / 'error_histogram.png'}")

    items, scores = model.recommend(args.user, n=10)
    titles = ratings.item_info["title"]
    print(f"top-10 for user {args.user} (movies they have not rated):")
    for rank, (item, score) in enumerate(zip(items, scores, strict=True), start=1):
        print(f"{rank:2d}. {titles.get(item, item)}  ({score:.2f})")

    try:
        gradient = check_gradient_with_sympy()
    except ImportError:
        print("(SymPy is not installed: pip install sympy to see the gradient check)")
        gradient = None
    return {
        "results": results,
        "errors": counts,
        "top10": list(items),
        "titles": [titles.get(i) for i in items],
        "gradient": gradient,
        "out": out,
    }


if __name__ == "__main__":
    main()
