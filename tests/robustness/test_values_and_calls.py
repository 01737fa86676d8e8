"""Bad values (Ratings.from_arrays / from_frame), bad hyperparameters and bad calls on
a fitted model: each a clear error of the documented type; no call sequence reaches a
kernel with an index it has not checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mfrec.data.ratings import Ratings
from mfrec.exceptions import DataError, NotFittedError, ParameterError
from mfrec.models import BiasedMF, FunkSVD, get_model_class

from .conftest import ITEMS, RATINGS, USERS

U, I, R = [1, 2], [10, 11], [4.0, 5.0]

# (id, users, items, ratings, keywords, phrase) for Ratings.from_arrays
VALUES = [
    ("empty", [], [], [], {}, "no ratings"),
    ("length-mismatch", [1], I, R, {}, "differ in length"),
    ("nan-rating", U, I, [4.0, np.nan], {}, "missing rating (NaN) at row 1"),
    ("inf-rating", U, I, [4.0, np.inf], {}, "infinite rating"),
    ("rating-1e39", U, I, [4.0, 1e39], {}, "too large to store"),
    ("rating-minus-1e39", U, I, [-1e39, 4.0], {}, "too large to store"),
    ("float32-inf", U, I, np.array([4.0, np.inf], dtype=np.float32), {}, "infinite rating"),
    ("bool-ratings", U, I, [True, False], {}, "got the boolean True at row 0"),
    ("bool-ratings-array", U, I, np.array([True, False]), {}, "got booleans"),
    ("2d-ratings", U, I, np.ones((2, 1)), {}, "one-dimensional"),
    ("text-rating", U, I, ["4", "good"], {}, "non-numeric rating 'good' at row 1"),
    ("none-user", [1, None], I, R, {}, "missing user id at row 1"),
    ("fractional-user", [1, 1.5], I, R, {}, "has the number 1.5"),
    ("nan-item", U, [10, np.nan], R, {}, "missing item id at row 1"),
    ("mixed-ids", [1, "b"], I, R, {}, "all ints or all strings"),
    ("bool-ids", [True, False], I, R, {}, "got booleans"),
    ("2d-ids", np.ones((2, 2)), I, R, {}, "one-dimensional"),
    ("huge-float-id", [1e30, 2.0], I, R, {}, "too large to be exact"),
    ("bad-duplicates", U, I, R, {"duplicates": "first"}, "duplicates must be"),
    ("duplicate-pair", [1, 1], [10, 10], R, {}, "duplicate rating of item 10 by user 1"),
    ("scale-reversed", U, I, R, {"scale": (5, 1)}, "low < high"),
    ("scale-single", U, I, R, {"scale": (1,)}, "scale must be a pair"),
    ("scale-infinite", U, I, R, {"scale": (0, np.inf)}, "finite"),
    ("outside-scale", U, I, [4.0, 6.0], {"scale": (1, 5)}, "outside the declared scale"),
    ("timestamp-nan", U, I, R, {"timestamps": [1.0, np.nan]}, "is not a number"),
    ("timestamp-1e30", U, I, R, {"timestamps": [1.0, 1e30]}, "out of range"),
    (
        "timestamp-uint64",
        U,
        I,
        R,
        {"timestamps": np.array([1, 2**63 + 5], dtype=np.uint64)},
        "out of range",
    ),
    (
        "timestamp-nat",
        U,
        I,
        R,
        {"timestamps": np.array(["2020-01-01", "NaT"], dtype="datetime64[s]")},
        "missing timestamp",
    ),
]


@pytest.mark.parametrize(
    ("users", "items", "ratings", "kwargs", "phrase"),
    [c[1:] for c in VALUES],
    ids=[c[0] for c in VALUES],
)
def test_bad_values(users, items, ratings, kwargs, phrase):
    with pytest.raises(DataError) as caught:
        Ratings.from_arrays(users, items, ratings, **kwargs)
    assert phrase in str(caught.value)


def test_from_frame_errors():
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        Ratings.from_frame({"user": U})
    with pytest.raises(DataError, match=r"missing column\(s\) \['rating'\]"):
        Ratings.from_frame(pd.DataFrame({"user": U, "item": I}))


def test_from_frame_big_rating_is_an_error_not_inf():
    frame = pd.DataFrame({"user": U, "item": I, "rating": [3.0, 1e39]})
    with pytest.raises(DataError, match="rating 1e\\+39 at row 1 is too large"):
        Ratings.from_frame(frame)


def test_values_read_correctly():
    big = Ratings.from_arrays([2**70, 1], I, R)
    assert big.users.kind == "bigint"
    floats = Ratings.from_arrays([1.0, 2.0], I, R)
    assert floats.users.kind == "int" and floats.users.ids.tolist() == [1, 2]
    edge = Ratings.from_arrays(U, I, [3.0e38, -3.0e38])
    assert np.isfinite(edge.rating).all()


@pytest.fixture(scope="module")
def fitted():
    return BiasedMF(n_factors=2, n_epochs=2, random_state=0).fit(
        Ratings.from_arrays(USERS, ITEMS, RATINGS)
    )


# (id, hyperparameters, phrase): fit refuses them with a ParameterError
PARAMS = [
    ("factors-zero", {"n_factors": 0}, "n_factors"),
    ("factors-negative", {"n_factors": -1}, "n_factors"),
    ("factors-float", {"n_factors": 1.5}, "n_factors"),
    ("factors-text", {"n_factors": "10"}, "n_factors"),
    ("factors-bool", {"n_factors": True}, "n_factors"),
    ("lr-zero", {"lr": 0}, "lr"),
    ("lr-two", {"lr": 2}, "lr"),
    ("lr-nan", {"lr": float("nan")}, "lr"),
    ("reg-negative", {"reg": -1}, "reg"),
    # n_epochs=0 is valid (the model at its start: epoch 0 of early stopping).
    ("epochs-negative", {"n_epochs": -1}, "n_epochs"),
    ("dtype-float16", {"dtype": "float16"}, "dtype"),
    ("seed-negative", {"random_state": -1}, "random_state"),
    ("seed-text", {"random_state": "abc"}, "random_state"),
    ("init-std-zero", {"init_std": 0}, "init_std"),
]


@pytest.mark.parametrize(("params", "phrase"), [c[1:] for c in PARAMS], ids=[c[0] for c in PARAMS])
def test_bad_hyperparameters(params, phrase):
    model = BiasedMF(**params)
    with pytest.raises(ParameterError, match=phrase):
        model.fit(Ratings.from_arrays(USERS, ITEMS, RATINGS))
    with pytest.raises(ParameterError, match=phrase):
        BiasedMF().set_params(**params)


def _forged(user_index):
    """Ratings from the trusting constructor, with an index beyond the vocabulary."""
    from mfrec.data.vocab import Vocabulary

    users, items = Vocabulary([1, 2], "user"), Vocabulary([10, 11], "item")
    return Ratings(np.array(user_index), np.array([0, 1]), np.array([4.0, 3.0]), users, items)


def _replace_factors(m):
    m.user_factors_ = np.zeros((1, 2), dtype=np.float32)
    return m.predict(1, 10)


def _replace_bias(m):
    m.item_bias_ = np.zeros(2, dtype=np.float32)
    return m.recommend(1)


# (id, call on a fitted model, exception type, phrase)
CALLS = [
    ("set-unknown-param", lambda m: m.set_params(warp=9), ParameterError, "has no parameter"),
    ("n-zero", lambda m: m.recommend(1, n=0), ParameterError, "n must be a positive int"),
    ("n-negative", lambda m: m.recommend([1, 2], n=-3), ParameterError, "n must be"),
    ("n-float", lambda m: m.recommend(1, n=1.5), ParameterError, "n must be"),
    ("block-zero", lambda m: m.recommend([1, 2], block_size=0), ParameterError, "block_size"),
    ("pairs-mismatch", lambda m: m.predict([1, 2], [10, 11, 12]), DataError, "differ in length"),
    ("str-user", lambda m: m.predict("1", 10), DataError, "user ids are integers"),
    ("float-user", lambda m: m.predict(1.5, 10), DataError, "has the number 1.5"),
    ("fold-in-known", lambda m: m.fold_in(1, {10: 4.0}), DataError, "already known"),
    ("fold-in-nan", lambda m: m.fold_in(99, {10: np.nan}), DataError, "must be finite"),
    ("fold-in-mismatch", lambda m: m.fold_in(99, ([10, 11], [4.0])), DataError, "2 items but 1"),
    (
        "fold-in-twice",
        lambda m: m.fold_in(99, ([10, 10], [4.0, 3.0])),
        DataError,
        "rated more than once",
    ),
    ("fold-in-many", lambda m: m.fold_in([98, 99], {10: 4.0}), DataError, "adds one user"),
    ("for-ratings-type", lambda m: m.recommend_for_ratings(5), DataError, "ratings must be"),
    (
        "for-ratings-text",
        lambda m: m.recommend_for_ratings(([10], ["x"])),
        DataError,
        "must be numbers",
    ),
    ("similar-unknown", lambda m: m.similar_items(999), KeyError, "unknown item"),
    (
        "iter-unknown-user",
        lambda m: list(m.iter_recommendations(users=[999])),
        KeyError,
        "unknown user",
    ),
    ("matrix-limit", lambda m: m.predict_matrix(max_cells=1), ValueError, "limit"),
    ("fit-frame", lambda m: m.fit(pd.DataFrame({"user": U})), DataError, "fit expects"),
    ("partial-fit-list", lambda m: m.partial_fit([1, 2]), DataError, "partial_fit expects"),
    (
        "patience-no-val",
        lambda m: m.set_params(patience=2, validation_fraction=0.0).fit(
            Ratings.from_arrays(USERS, ITEMS, RATINGS)
        ),
        ParameterError,
        "needs validation",
    ),
    ("fit-forged-index", lambda m: m.fit(_forged([0, 7])), DataError, "user indices outside 0..1"),
    ("fit-negative-index", lambda m: m.fit(_forged([-1, 0])), DataError, "indices outside"),
    ("predict-forged", lambda m: m.predict_ratings(_forged([0, 5])), DataError, "outside"),
    ("partial-fit-forged", lambda m: m.partial_fit(_forged([0, 9])), DataError, "outside"),
    (
        "validation-forged",
        lambda m: m.fit(Ratings.from_arrays(USERS, ITEMS, RATINGS), validation=_forged([3, 0])),
        DataError,
        "outside",
    ),
    ("factors-replaced", _replace_factors, DataError, "inconsistent state"),
    ("bias-replaced", _replace_bias, DataError, "inconsistent state"),
]


@pytest.mark.parametrize(
    ("call", "kind", "phrase"), [c[1:] for c in CALLS], ids=[c[0] for c in CALLS]
)
def test_bad_calls(fitted, call, kind, phrase):
    import copy

    model = copy.deepcopy(fitted)
    with pytest.raises(kind, match=phrase):
        call(model)


def test_unfitted_and_unknown_model():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        FunkSVD().predict(1, 2)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        FunkSVD().recommend(1)
    with pytest.raises(ParameterError, match="unknown model 'nope'"):
        get_model_class("nope")


def test_unknown_ids_follow_the_policy(fitted):
    """Unknown ids are not errors: a warning and the documented fallback."""
    from mfrec.exceptions import UnknownIdWarning

    with pytest.warns(UnknownIdWarning):
        value = fitted.predict(999, 10)
    expected = fitted.global_mean_ + fitted.item_bias_[fitted.items_.lookup([10])[0]]
    assert value[0] == pytest.approx(expected, rel=1e-6)
    with pytest.warns(UnknownIdWarning):
        recs = fitted.recommend(999, n=2)
    assert len(recs.item_ids) == 2
