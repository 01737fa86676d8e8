"""The way back to a matrix: predict_frame / predict_matrix(as_frame=True) with ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfrec.data.ratings import Ratings
from mfrec.exceptions import NotFittedError
from mfrec.models import MODELS, BiasBaseline, FunkSVD


@pytest.fixture(scope="module")
def course_frame():
    """An items x users frame with NaN for missing ratings and string ids (notebook 003)."""
    rng = np.random.default_rng(3)
    values = np.clip(np.round(rng.normal(3, 1.2, (12, 7))), 1, 5)
    values[rng.random(values.shape) < 0.4] = np.nan
    values[0, :] = 4.0  # every user rates something
    values[:, 0] = 3.0  # every item is rated
    return pd.DataFrame(
        values,
        index=[f"Item_{i + 1}" for i in range(12)],
        columns=[f"User_{j + 1}" for j in range(7)],
    )


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_returns_the_matrix_labelled_by_ids(name, course_frame):
    cls = MODELS[name]
    params = {"random_state": 0} if "random_state" in cls.param_defaults() else {}
    for key, value in {"n_factors": 2, "n_epochs": 3, "n_samples": 4, "burn_in": 1}.items():
        if key in cls.param_defaults():
            params[key] = value
    model = cls(**params).fit(Ratings.from_matrix(course_frame, orient="items x users"))
    frame = model.predict_frame()
    assert frame.index.tolist() == course_frame.columns.tolist()
    assert frame.columns.tolist() == course_frame.index.tolist()
    assert (frame.index.name, frame.columns.name) == ("user", "item")
    np.testing.assert_array_equal(frame.to_numpy(), model.predict_matrix())
    assert frame.loc["User_3", "Item_5"] == pytest.approx(
        float(model.predict(["User_3"], ["Item_5"])[0]), rel=1e-5, abs=1e-5
    )


def test_clip_and_transpose_back_to_the_input_layout(course_frame):
    model = FunkSVD(n_factors=3, n_epochs=50, lr=0.05, random_state=0)
    model.fit(Ratings.from_matrix(course_frame, orient="items x users"))
    back = model.predict_matrix(as_frame=True, clip=True).T
    assert back.shape == course_frame.shape
    assert back.index.tolist() == course_frame.index.tolist()
    assert back.to_numpy().min() >= 1.0 and back.to_numpy().max() <= 5.0
    np.testing.assert_array_equal(back.to_numpy(), np.clip(model.predict_matrix().T, 1, 5))


def test_integer_ids_stay_integers_and_the_size_guard_applies():
    r = Ratings.from_matrix(np.array([[5.0, 0, 3], [0, 2, 1]]), missing=0, users=[7, 9])
    model = BiasBaseline().fit(r)
    frame = model.predict_frame()
    assert frame.index.tolist() == [7, 9] and frame.index.dtype.kind == "i"
    with pytest.raises(ValueError, match="limit 5"):
        model.predict_frame(max_cells=5)
    with pytest.raises(NotFittedError):
        BiasBaseline().predict_frame()
