"""Rating metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mfrec.evaluation.metrics import error_distribution, mae, mse, rmse


def test_hand_computed_values():
    truth = [1, 2, 3, 4]
    predicted = [1.5, 2, 2, 6]
    # errors 0.5, 0, -1, 2 -> squares 0.25, 0, 1, 4
    assert mse(truth, predicted) == pytest.approx(5.25 / 4)
    assert rmse(truth, predicted) == pytest.approx(math.sqrt(5.25 / 4))
    assert mae(truth, predicted) == pytest.approx(3.5 / 4)


def test_error_distribution_of_rounded_predictions():
    truth = np.array([1, 2, 3, 4, 5, 5])
    predicted = np.array([1.4, 2.6, 1.2, 4.49, 7.0, 5.5])
    # rounded: 1, 3, 1, 4, 7->clip 5, 6->clip 5 (round half to even: 5.5 -> 6)
    dist = error_distribution(truth, predicted, scale=(1, 5))
    assert dist == {0.0: pytest.approx(4 / 6), 1.0: pytest.approx(1 / 6), 2.0: pytest.approx(1 / 6)}
    assert sum(dist.values()) == pytest.approx(1.0)
    half = error_distribution([3.5, 4.0], [3.3, 3.7], step=0.5)
    assert half == {0.0: 0.5, 0.5: 0.5}


@pytest.mark.parametrize("metric", [mse, rmse, mae])
def test_bad_inputs_are_errors_not_nan(metric):
    with pytest.raises(ValueError, match="no ratings"):
        metric([], [])
    with pytest.raises(ValueError, match="length"):
        metric([1, 2], [1])
    with pytest.raises(ValueError, match="not finite"):
        metric([1, 2], [1, float("nan")])
