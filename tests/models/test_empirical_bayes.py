"""The bias baseline's penalties estimated from the data (empirical Bayes):
``BiasBaseline(reg_user="auto", reg_item="auto")`` and
:func:`mfrec.models.baseline.empirical_bayes_regs`, which is also epoch 0 of the biased
iterative models (docs/defaults.md, "Epoch 0's shrinkage")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfrec._params import Real
from mfrec.data.ratings import Ratings
from mfrec.data.split import holdout
from mfrec.data.synthetic import make_ratings
from mfrec.exceptions import ParameterError
from mfrec.kernels.baseline import residual_sum_of_squares
from mfrec.models import BiasBaseline, load
from mfrec.models.baseline import _BiasSweep, empirical_bayes_regs

AUTO = {"reg_user": "auto", "reg_item": "auto"}


def _biases_only(user_std, item_std, noise, seed, n_ratings=200_000, **extra):
    """Ratings = mean + b_u + b_i + Gaussian noise, unrounded and unclipped, so the
    variance ratios the estimate should find are the generator's."""
    return make_ratings(
        n_users=2_000, n_items=1_000, n_ratings=n_ratings, n_factors=0,
        user_bias_std=user_std, item_bias_std=item_std, noise_std=noise,
        scale=None, round_to=None, missing="uniform", random_state=seed, **extra,
    ).ratings  # fmt: skip


def _rmse(model, fold) -> float:
    predicted = model.predict_ratings(fold.test)
    return float(np.sqrt(np.mean((predicted - fold.test.rating) ** 2)))


@pytest.mark.parametrize(
    ("user_std", "item_std", "noise"),
    [(0.3, 0.3, 0.9), (0.6, 0.2, 0.5), (0.1, 0.8, 1.0)],
)
def test_the_estimate_finds_the_planted_variance_ratios(user_std, item_std, noise):
    """On 200,000 ratings of 2,000 users and 1,000 items the estimated penalties are
    within 15% of noise^2 / bias_std^2 on each side (the truth ranges from 1.6 to 100)."""
    data = _biases_only(user_std, item_std, noise, seed=3)
    reg_user, reg_item = empirical_bayes_regs(data, float(np.mean(data.rating)))
    assert reg_user == pytest.approx(noise**2 / user_std**2, rel=0.15)
    assert reg_item == pytest.approx(noise**2 / item_std**2, rel=0.15)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_estimate_holds_on_rows_with_three_ratings(seed):
    """12,000 ratings of 4,000 users and 2,000 items (3 per user, 6 per item), true
    ratio 9 on both sides: within 40%. (EM with each side's variance taken given the
    other side's biases ran off to penalties of 50-500 on such data.)"""
    data = make_ratings(
        n_users=4_000, n_items=2_000, n_ratings=12_000, n_factors=0, user_bias_std=0.3,
        item_bias_std=0.3, noise_std=0.9, scale=None, round_to=None, missing="uniform",
        random_state=seed,
    ).ratings  # fmt: skip
    reg_user, reg_item = empirical_bayes_regs(data, float(np.mean(data.rating)))
    assert reg_user == pytest.approx(9.0, rel=0.4)
    assert reg_item == pytest.approx(9.0, rel=0.4)


def test_auto_beats_the_fixed_penalties_where_they_are_wrong():
    """Strong biases and little noise (true ratios 0.7 and 1.6): 15 / 10 over-shrink
    the biases of rows with few ratings, and the estimated penalties do clearly better
    on held-out ratings; where 15 / 10 is about right, auto is no worse than 1%."""
    wrong = holdout(_biases_only(0.6, 0.4, 0.5, seed=4, n_ratings=20_000), 0.2, random_state=0)
    fixed = _rmse(BiasBaseline().fit(wrong.train), wrong)
    auto = BiasBaseline(**AUTO).fit(wrong.train)
    assert _rmse(auto, wrong) < 0.97 * fixed
    assert auto.reg_user_ < 3 and auto.reg_item_ < 5
    right = holdout(_biases_only(0.25, 0.3, 1.0, seed=5, n_ratings=20_000), 0.2, random_state=0)
    assert _rmse(BiasBaseline(**AUTO).fit(right.train), right) <= 1.01 * _rmse(
        BiasBaseline().fit(right.train), right
    )


def test_auto_is_the_baseline_at_the_estimated_penalties():
    """``"auto"`` only chooses the numbers: the fit is, bit for bit, the fixed-penalty
    baseline at ``reg_user_`` / ``reg_item_``; a number given for one side stays."""
    data = _biases_only(0.3, 0.5, 0.8, seed=6, n_ratings=30_000)
    auto = BiasBaseline(**AUTO).fit(data)
    assert auto.reg_user_ != 15.0 and auto.reg_item_ != 10.0
    fixed = BiasBaseline(reg_user=auto.reg_user_, reg_item=auto.reg_item_).fit(data)
    np.testing.assert_array_equal(auto.user_bias_, fixed.user_bias_)
    np.testing.assert_array_equal(auto.item_bias_, fixed.item_bias_)
    one_side = BiasBaseline(reg_user=15.0, reg_item="auto").fit(data)
    assert one_side.reg_user_ == 15.0 and one_side.reg_item_ != 10.0
    assert BiasBaseline().fit(data).reg_user_ == 15.0


def test_the_estimate_does_not_depend_on_the_thread_count():
    from mfrec._threads import numba_threads

    data = _biases_only(0.3, 0.3, 0.9, seed=7, n_ratings=50_000)
    mean = float(np.mean(data.rating))
    results = []
    for threads in (1, 2):
        with numba_threads(threads):
            results.append(empirical_bayes_regs(data, mean))
    assert results[0] == results[1]


def test_residual_sum_of_squares_matches_numpy():
    data = _biases_only(0.3, 0.3, 0.9, seed=8, n_ratings=50_000)
    sweep = _BiasSweep(data, float(np.mean(data.rating)), 5.0, 5.0)
    sweep()
    expected = float(np.sum((sweep.r - sweep.bu[sweep.u] - sweep.bi[sweep.i]) ** 2))
    got = residual_sum_of_squares(sweep.u, sweep.i, sweep.r, sweep.bu, sweep.bi)
    assert got == pytest.approx(expected, rel=1e-12)


def test_constant_ratings_give_finite_penalties_and_the_constant():
    """No spread at all (every rating 4): nothing to estimate, but no NaN, no crash:
    finite penalties, and every prediction is 4."""
    users = np.repeat(np.arange(50), 4)
    items = np.tile(np.arange(4), 50)
    data = Ratings.from_arrays(users, items, np.full(len(users), 4.0))
    model = BiasBaseline(**AUTO).fit(data)
    assert math.isfinite(model.reg_user_) and math.isfinite(model.reg_item_)
    np.testing.assert_allclose(model.predict_ratings(data), 4.0, atol=1e-6)


def test_auto_from_the_command_line_and_in_errors():
    rule = Real(0, None, auto_ok=True)
    assert rule.parse("auto") == "auto" and rule.parse("AUTO") == "auto"
    assert rule.parse("2.5") == 2.5
    assert "'auto'" in rule.describe()
    with pytest.raises(ParameterError, match="or 'auto'"):
        BiasBaseline(reg_user="automatic").fit(_biases_only(0.3, 0.3, 0.9, 1, n_ratings=2_000))
    with pytest.raises(ParameterError):
        Real(0, None).check("reg", "auto")  # only where the model can estimate it


def test_the_estimates_are_saved_with_the_model(tmp_path):
    data = _biases_only(0.3, 0.5, 0.8, seed=9, n_ratings=10_000)
    model = BiasBaseline(**AUTO).fit(data)
    path = tmp_path / "bias.mfrec"
    model.save(str(path))
    loaded = load(str(path))
    assert loaded.reg_user_ == model.reg_user_ and loaded.reg_item_ == model.reg_item_
    assert loaded.get_params()["reg_user"] == "auto"
    np.testing.assert_array_equal(loaded.predict_ratings(data), model.predict_ratings(data))
