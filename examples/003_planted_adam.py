"""Notebook 003 with mfrec: planted ratings, the course's cost trained by Adam, top-15.

The notebook plants 100 items x 30 users from 3 latent features (ratings = X W^T +
N(0, 0.5^2), rounded and clipped to 1..5), hides half of them (NaN), builds an items x
users DataFrame, trains the collaborative-filtering cost (item features X, user
weights W, user bias b, mean-normalised ratings) with TensorFlow's Adam, and lists the
15 best unrated items for ``User_11``. mfrec's AdamMF is that cost with analytic
gradients; ``Ratings.from_matrix`` reads the DataFrame as it is. Because the data is
planted, the script also says how close the learned model is to the truth: RMSE on the
hidden half against the complete ratings, against the noiseless ones, and the overlap
of the top-15 with the truly best unrated items.

(The notebook normalises by the mean of the zero-filled matrix, counting every missing
rating as 0; AdamMF subtracts each item's mean of its *known* ratings, as the course
does. The notebook's 100 features and 100 Adam steps become 3 features and 300 steps
here: more features only fit the noise of 1,500 ratings.)

Run ``python examples/003_planted_adam.py``. Output of an actual run::

    df.head(): 100 items x 30 users, 1515 ratings (50.5% known)
            User_1  User_2  User_3  User_4  User_5  User_6  User_7  User_8
    Item_1       .       .     1.0       .     1.0     1.0     1.0     1.0
    Item_2       .       .     1.0     1.0     2.0     1.0     1.0     1.0
    Item_3     2.0       .       .     1.0       .       .     1.0       .
    Item_4       .     5.0       .     1.0     1.0     1.0     1.0     1.0
    Item_5     1.0     5.0     1.0     1.0       .     1.0     3.0       .
    Training loss at iteration 1: 342.8
    Training loss at iteration 50: 146.6
    Training loss at iteration 100: 142.7
    Training loss at iteration 150: 142.2
    Training loss at iteration 200: 142.2
    Training loss at iteration 250: 142.2
    Training loss at iteration 300: 142.2
    (300 Adam steps in 2.50 s)
    Hidden half (1485 ratings): RMSE 0.575 against the complete ratings (item means: 0.718),
      0.517 against the noiseless clipped scores
    Choice 1 : Item_30  (predicted 3.08)
    Choice 2 : Item_66  (predicted 2.70)
    Choice 3 : Item_81  (predicted 1.80)
    Choice 4 : Item_16  (predicted 1.63)
    Choice 5 : Item_100  (predicted 1.62)
    Choice 6 : Item_74  (predicted 1.62)
    Choice 7 : Item_25  (predicted 1.59)
    Choice 8 : Item_68  (predicted 1.59)
    Choice 9 : Item_21  (predicted 1.55)
    Choice 10 : Item_92  (predicted 1.52)
    Choice 11 : Item_8  (predicted 1.49)
    Choice 12 : Item_44  (predicted 1.48)
    Choice 13 : Item_38  (predicted 1.38)
    Choice 14 : Item_80  (predicted 1.36)
    Choice 15 : Item_65  (predicted 1.35)
    11 of these 15 are among the 15 unrated items User_11 truly likes best
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from mfrec import Ratings
from mfrec.models import AdamMF

N_ITEMS, N_USERS, N_FEATURES, NOISE = 100, 30, 3, 0.5


def planted(seed: int = 0):
    """The notebook's data: complete ratings, noiseless scores and the masked frame."""
    rng = np.random.default_rng(seed)
    true_item_features = rng.normal(0, 1, size=(N_ITEMS, N_FEATURES))
    true_user_prefs = rng.normal(0, 1, size=(N_USERS, N_FEATURES))
    noiseless = true_item_features @ true_user_prefs.T
    complete = np.clip(np.round(noiseless + rng.normal(0, NOISE, noiseless.shape)), 1, 5)
    hidden = rng.random(complete.shape) < 0.5
    shown = np.where(hidden, np.nan, complete)
    frame = pd.DataFrame(
        shown,
        index=[f"Item_{i + 1}" for i in range(N_ITEMS)],
        columns=[f"User_{j + 1}" for j in range(N_USERS)],
    )
    return frame, complete, noiseless, hidden


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--every", type=int, default=50, help="print the loss this often")
    parser.add_argument("--user", default="User_11")
    args = parser.parse_args(argv)

    frame, complete, noiseless, hidden = planted()
    ratings = Ratings.from_matrix(frame, orient="items x users")  # NaN = unknown
    print(
        f"df.head(): {N_ITEMS} items x {N_USERS} users, {len(ratings)} ratings "
        f"({len(ratings) / frame.size:.1%} known)"
    )
    print(frame.iloc[:5, :8].to_string(na_rep="."))

    model = AdamMF(n_factors=N_FEATURES, n_epochs=args.epochs, lr=0.05, reg=1.3, random_state=0)
    model.fit(ratings)
    for record in model.history_:
        if record["epoch"] == 1 or record["epoch"] % args.every == 0:
            cost = record["train_loss"] * len(ratings)  # J, as the notebook prints it
            print(f"Training loss at iteration {record['epoch']}: {cost:0.1f}")
    print(f"({args.epochs} Adam steps in {model.fit_seconds_:.2f} s)")

    # Back to the notebook's layout: items x users, every cell predicted.
    predicted = model.predict_frame().T.loc[frame.index, frame.columns].to_numpy()
    rmse_complete = float(np.sqrt(np.mean((predicted - complete)[hidden] ** 2)))
    rmse_noiseless = float(np.sqrt(np.mean((predicted - np.clip(noiseless, 1, 5))[hidden] ** 2)))
    item_means = frame.mean(axis=1).to_numpy()[:, None].repeat(N_USERS, axis=1)
    rmse_item_mean = float(np.sqrt(np.mean((item_means - complete)[hidden] ** 2)))
    print(
        f"Hidden half ({int(hidden.sum())} ratings): RMSE {rmse_complete:.3f} against the "
        f"complete ratings (item means: {rmse_item_mean:.3f}),"
    )
    print(f"  {rmse_noiseless:.3f} against the noiseless clipped scores")

    items, scores = model.recommend(args.user, n=15)  # unrated items only, best first
    for rank, (item, score) in enumerate(zip(items, scores, strict=True), start=1):
        print(f"Choice {rank} : {item}  (predicted {score:.2f})")
    column = frame.columns.get_loc(args.user)
    unrated = np.flatnonzero(hidden[:, column])
    truly_best = unrated[np.argsort(-noiseless[unrated, column], kind="stable")[:15]]
    overlap = len(set(items) & {frame.index[i] for i in truly_best})
    print(f"{overlap} of these 15 are among the 15 unrated items {args.user} truly likes best")
    return {
        "ratings": ratings,
        "rmse_complete": rmse_complete,
        "rmse_noiseless": rmse_noiseless,
        "rmse_item_mean": rmse_item_mean,
        "top15": list(items),
        "overlap": overlap,
        "history": model.history_,
    }


if __name__ == "__main__":
    main()
