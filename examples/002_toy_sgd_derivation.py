"""Notebook 002 with mfrec: the SGD updates for P and Q, and a 6 x 4 matrix completed.

The notebook derives, for e_ij = r_ij - p_i . q_j and the loss e_ij^2 + beta/2 (|p_i|^2
+ |q_j|^2), the updates

    p_ik <- p_ik + alpha (2 e_ij q_kj - beta p_ik)
    q_kj <- q_kj + alpha (2 e_ij p_ik - beta q_kj)

and runs them over the known cells of a 6 x 4 matrix (0 = unknown), 3 features, 5,000
steps, before showing ``P Q^T`` as a DataFrame. mfrec's FunkSVD takes exactly these
steps with ``lr = 2 alpha`` and ``reg = beta / 2`` (its loss is half the notebook's);
this script checks that on one step of mfrec's kernel, then trains the whole model.
The notebook's ``alpha = 0.0002`` needs its 5,000 steps to get close; the script takes
a 10x larger step for 2,000 epochs (``--epochs``, ``--alpha`` to change). The known
cells come back; the unknown ones are what 3 factors fitted to 19 ratings make of them
(nothing bounds them: ``predict_frame(clip=True)`` clips to the rating scale).

Run ``python examples/002_toy_sgd_derivation.py``. Output of an actual run::

    One SGD step of mfrec's kernel vs the derived update: max difference 3.5e-18
    Epoch     1: squared error = 167.7871
    Epoch   500: squared error = 0.4743
    Epoch  1000: squared error = 0.0752
    Epoch  1500: squared error = 0.0151
    Epoch  2000: squared error = 0.0072
    Reconstructed matrix (FunkSVD, 3 factors, 2000 epochs in 0.53 s):
    item    0    1    2    3
    user
    0    4.99 2.96 7.22 1.00
    1    3.98 2.35 5.89 1.00
    2    1.01 0.98 3.89 4.97
    3    1.00 1.16 3.16 3.98
    4    1.94 1.02 4.98 3.99
    5    1.97 1.04 2.99 0.44
"""

from __future__ import annotations

import argparse

import numpy as np

from mfrec import Ratings
from mfrec.models import FunkSVD

R = np.array(
    [
        [5, 3, 0, 1],
        [4, 0, 0, 1],
        [1, 1, 0, 5],
        [1, 0, 0, 4],
        [0, 1, 5, 4],
        [2, 1, 3, 0],
    ],
    dtype=float,
)


def derived_update(p, q, r, alpha, beta):
    """The notebook's update of one (p_i, q_j) pair, written as derived. (The notebook's
    loop over k reads the already-updated p_ik when it updates q_kj; the derivation,
    and mfrec, use the values from before the step.)"""
    e = r - p @ q
    return p + alpha * (2 * e * q - beta * p), q + alpha * (2 * e * p - beta * q)


def check_one_step(alpha: float, beta: float) -> float:
    """Max difference between one step of mfrec's SGD kernel and the derived update."""
    from mfrec.kernels.sgd import sgd_epoch  # the kernel behind FunkSVD (private API)

    rng = np.random.default_rng(0)
    P, Q = rng.random((1, 3)), rng.random((1, 3))
    expected_p, expected_q = derived_update(P[0].copy(), Q[0].copy(), 4.0, alpha, beta)
    one = np.zeros(1, dtype=np.int32)
    none = np.zeros(1)
    sgd_epoch(
        one, one, np.array([4.0]), one, P, Q, none, none, 0.0, 2 * alpha, beta / 2, 0.0, 0.0, False,
        np.zeros((0, 2)), np.zeros((0, 2)), False,  # plain SGD: no step-size accumulators
        np.zeros((0, 2)), np.zeros((0, 2)),  # no count-aware penalty
    )  # fmt: skip
    return float(max(np.abs(P[0] - expected_p).max(), np.abs(Q[0] - expected_q).max()))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=0.002)
    parser.add_argument("--every", type=int, default=500, help="print the loss this often")
    args = parser.parse_args(argv)
    beta = 0.02

    step_difference = check_one_step(args.alpha, beta)
    print(
        f"One SGD step of mfrec's kernel vs the derived update: max difference "
        f"{step_difference:.1e}"
    )

    ratings = Ratings.from_matrix(R, missing=0)
    model = FunkSVD(
        n_factors=3,
        n_epochs=args.epochs,
        lr=2 * args.alpha,
        reg=beta / 2,
        init_std=0.5,
        n_strata=1,
        random_state=0,
        optimizer="sgd",  # the notebook's plain SGD: fixed step, every epoch, centred start
        patience=None,
        validation_fraction=0.0,
        init_mean=0.0,
    ).fit(ratings)
    for record in model.history_:
        if record["epoch"] == 1 or record["epoch"] % args.every == 0:
            squared_error = record["train_rmse"] ** 2 * len(ratings)
            print(f"Epoch {record['epoch']:5d}: squared error = {squared_error:.4f}")
    completed = model.predict_frame()  # users x items, labelled by the ids
    print(
        f"Reconstructed matrix (FunkSVD, 3 factors, {args.epochs} epochs in "
        f"{model.fit_seconds_:.2f} s):"
    )
    print(completed.round(2).to_string(float_format="{:.2f}".format))
    return {"step_difference": step_difference, "completed": completed, "model": model}


if __name__ == "__main__":
    main()
