"""Early stopping on a held-out slice of the training ratings, for the iterative models
that got it after the SGD ones (ALS, GradientDescentMF, AdamMF, NMF): the same contract
as ``test_early_stopping_on_a_held_out_slice_then_refit`` in test_sgd.py."""

from __future__ import annotations

import numpy as np
import pytest

from mfrec.models import ALS, NMF, AdamMF, GradientDescentMF

# Settings under which the held-out RMSE of the tiny planted problem stops improving
# (over-fitting, or a plateau for ALS), so that a run must stop early.
OVERFITTING = {
    # (Without the fallback to the bias baseline, which these settings lose to.)
    ALS: {
        "n_factors": 30,
        "reg": 0.01,
        "init_std": 0.01,
        "n_epochs": 200,
        "baseline_fallback": False,
    },
    GradientDescentMF: {"n_factors": 30, "reg": 0.0, "reg_bias": 0.0, "n_epochs": 400},
    AdamMF: {"n_factors": 30, "reg": 0.0, "n_epochs": 400},
    NMF: {"n_factors": 30, "reg": 0.0, "n_epochs": 300},
}


@pytest.mark.parametrize("cls", list(OVERFITTING), ids=lambda c: c.name)
def test_held_out_slice_picks_the_epochs_then_refits(cls, planted):
    _, fold = planted
    params = {**OVERFITTING[cls], "random_state": 0}
    params = {k: v for k, v in params.items() if k in cls._param_names()}
    model = cls(**params, patience=2, validation_fraction=0.2).fit(fold.train)
    best = model.best_epoch_
    selection = model.validation_history_
    assert best < params["n_epochs"], "the run must stop early"
    assert len(selection) == best + 2, "stopped after patience epochs without progress"
    assert min(r["val_rmse"] for r in selection) == selection[best - 1]["val_rmse"]
    assert [r["epoch"] for r in model.history_] == list(range(1, best + 1))
    for record in model.history_:
        assert record["val_rmse"] == selection[record["epoch"] - 1]["val_rmse"]
    # The refit is a plain fit of best_epoch_ epochs on all the ratings.
    direct = cls(**{**params, "n_epochs": best, "patience": None}).fit(fold.train)
    np.testing.assert_array_equal(direct.user_factors_, model.user_factors_)
    np.testing.assert_array_equal(direct.item_factors_, model.item_factors_)
    assert model.patience == 2 and model.n_epochs == params["n_epochs"], "settings kept"
    assert model.users_ == fold.train.compact().users, "every training user is known"


@pytest.mark.parametrize("cls", list(OVERFITTING), ids=lambda c: c.name)
def test_no_slice_without_patience(cls, planted):
    """validation_fraction acts only with patience: without it, every epoch runs."""
    _, fold = planted
    params = {k: v for k, v in OVERFITTING[cls].items() if k in cls._param_names()}
    params["n_epochs"] = 5
    model = cls(**params, random_state=0, patience=None, validation_fraction=0.2)
    model.fit(fold.train)
    assert len(model.history_) == 5 and not hasattr(model, "validation_history_")
