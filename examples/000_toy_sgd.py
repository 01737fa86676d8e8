"""Notebook 000 with mfrec: SGD matrix factorization of a 5 x 4 toy matrix (0 = unknown).

The notebook loops over the known cells of ``R`` for 5,000 steps, moving the user row
``P[i]`` and the item row ``Q[j]`` along ``2 e Q[j] - beta P[i]`` (``alpha = 0.002``,
``beta = 0.02``, 2 features), prints the squared error every 1,000 steps and then the
full reconstruction ``P Q^T``. That update is SGD on ``e^2 + beta/2 (|p|^2 + |q|^2)``,
which is mfrec's FunkSVD objective ``1/2 e^2 + reg/2 (...)`` times two: the same steps
with ``lr = 2 alpha`` and ``reg = beta / 2``.

Run ``python examples/000_toy_sgd.py`` (``--epochs N`` for a shorter run). Output of an
actual run (the unknown cells are free to differ from the notebook's: nothing in the
data pins them down, so they depend on the random start)::

    Original ratings (0 = unknown):
    [[5. 3. 0. 1.]
     [4. 0. 0. 1.]
     [1. 1. 0. 5.]
     [1. 0. 0. 4.]
     [0. 1. 5. 4.]]
    Epoch     1: squared error = 142.0306 (regularised loss per rating 10.9370)
    Epoch  1000: squared error = 0.0756 (regularised loss per rating 0.0927)
    Epoch  2000: squared error = 0.0052 (regularised loss per rating 0.0876)
    Epoch  3000: squared error = 0.0033 (regularised loss per rating 0.0872)
    Epoch  4000: squared error = 0.0031 (regularised loss per rating 0.0869)
    Epoch  5000: squared error = 0.0030 (regularised loss per rating 0.0866)
    Predicted ratings (FunkSVD, 2 factors, 5000 epochs in 2.84 s):
    [[4.98 2.98 5.42 1.  ]
     [3.98 2.4  4.53 1.  ]
     [1.   0.99 5.79 4.97]
     [1.   0.9  4.81 3.98]
     [1.19 1.02 4.98 3.99]]
    Largest error on a known rating: 0.029

(The squared error is summed over the 13 known ratings as the notebook sums it, seen
during each epoch's pass; mfrec's own loss adds the regularisation and divides by 13.)
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
    ],
    dtype=float,
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5000)
    parser.add_argument("--every", type=int, default=1000, help="print the loss this often")
    args = parser.parse_args(argv)

    ratings = Ratings.from_matrix(R, missing=0)  # 0 marks an unknown rating
    alpha, beta = 0.002, 0.02  # the notebook's step size and regularisation
    model = FunkSVD(
        n_factors=2,
        n_epochs=args.epochs,
        lr=2 * alpha,
        reg=beta / 2,
        init_std=0.5,
        n_strata=1,  # classic serial SGD: one rating after another
        random_state=42,
        optimizer="sgd",  # the notebook's plain SGD: fixed step, every epoch, centred start
        patience=None,
        validation_fraction=0.0,
        init_mean=0.0,
    )
    model.fit(ratings)

    print("Original ratings (0 = unknown):")
    print(R)
    for record in model.history_:
        epoch = record["epoch"]
        if epoch == 1 or epoch % args.every == 0:
            squared_error = record["train_rmse"] ** 2 * len(ratings)
            print(
                f"Epoch {epoch:5d}: squared error = {squared_error:.4f} "
                f"(regularised loss per rating {record['train_loss']:.4f})"
            )
    predicted = model.predict_matrix()
    print(
        f"Predicted ratings (FunkSVD, 2 factors, {args.epochs} epochs in "
        f"{model.fit_seconds_:.2f} s):"
    )
    print(np.round(predicted, 2))
    known = R > 0
    worst = float(np.abs(predicted - R)[known].max())
    print(f"Largest error on a known rating: {worst:.3f}")
    return {"predicted": predicted, "history": model.history_, "worst_known_error": worst}


if __name__ == "__main__":
    main()
