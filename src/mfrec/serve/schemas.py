"""Request and response models of the HTTP API (pydantic), and the limits they enforce.

Ids are JSON integers or strings: integer ids accept ``196`` and ``"196"``; which kind
the model uses is checked against its vocabulary in the route, not here.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

#: Largest ``n`` of any top-N request.
MAX_N = 1000
#: Most pairs in one ``POST /predict``.
MAX_PAIRS = 10_000
#: Most rows in one ``POST /feedback``.
MAX_FEEDBACK_ROWS = 10_000
#: Most rated items of one anonymous visitor, and most ids in an allow or deny list.
MAX_LIST = 10_000
#: Largest request body, in bytes.
MAX_BODY_BYTES = 2 * 2**20

RawId = Annotated[StrictInt | StrictStr, Field(description="a user or item id")]
Rating = Annotated[float, Field(allow_inf_nan=False, description="a finite number")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendationQuery(BaseModel):
    """The query of ``GET /users/{user}/recommendations``."""

    n: int = Field(10, ge=1, le=MAX_N)
    exclude_seen: bool = Field(True, description="leave out items the user rated")
    items: str | None = Field(None, description="only these items (comma-separated ids)")
    exclude: str | None = Field(None, description="never these items (comma-separated)")


class SimilarQuery(BaseModel):
    """The query of ``GET /items/{item}/similar``."""

    n: int = Field(10, ge=1, le=MAX_N)


class ScoredItem(BaseModel):
    item: int | str
    score: float
    title: str | None = None


class UserRecommendations(BaseModel):
    user: int | str
    items: list[ScoredItem]
    feedback_used: bool = Field(
        description="whether the user's stored feedback was folded into the ranking"
    )


class AnonymousRequest(_Strict):
    ratings: dict[str, Rating] = Field(
        max_length=MAX_LIST, description="the visitor's ratings, by item id"
    )
    n: int = Field(10, ge=1, le=MAX_N)
    exclude: list[RawId] = Field(default_factory=list, max_length=MAX_LIST)


class AnonymousRecommendations(BaseModel):
    items: list[ScoredItem]
    ignored_items: list[int | str] = Field(
        description="rated items unknown to the model, left out of the fold-in"
    )


class SimilarItems(BaseModel):
    item: int | str
    title: str | None = None
    items: list[ScoredItem]


class ItemHit(BaseModel):
    item: int | str
    title: str | None = None


class ItemSearch(BaseModel):
    items: list[ItemHit]


class Pair(_Strict):
    user: RawId
    item: RawId


class PredictRequest(_Strict):
    pairs: list[Pair] = Field(min_length=1, max_length=MAX_PAIRS)


class Prediction(BaseModel):
    user: int | str
    item: int | str
    rating: float
    fallback: bool = Field(
        description="true when the user or the item is unknown: the prediction is the "
        "global mean plus the biases that exist"
    )


class Predictions(BaseModel):
    predictions: list[Prediction]


class FeedbackRating(_Strict):
    user: RawId
    item: RawId
    rating: Rating
    timestamp: int | None = Field(
        None, ge=0, le=2**62, description="seconds since the epoch; default: when received"
    )


class FeedbackRequest(_Strict):
    ratings: list[FeedbackRating] = Field(min_length=1, max_length=MAX_FEEDBACK_ROWS)


class FeedbackStored(BaseModel):
    stored: int
    users: list[int | str]
    new_users: list[int | str] = Field(description="users the model did not know")
    unknown_items: list[int | str] = Field(
        description="items the model does not know: stored, used after a retrain"
    )
    note: str | None = None


class StoredRating(BaseModel):
    item: int | str
    rating: float
    timestamp: int


class UserFeedback(BaseModel):
    user: int | str
    ratings: list[StoredRating]


class ReloadRequest(_Strict):
    path: str | None = Field(None, description="model file to load; default: the served one")


class ModelInfo(BaseModel):
    path: str
    version: str
    model_class: str
    n_users: int
    n_items: int
    n_factors: int
    supports_fold_in: bool
    rating_scale: tuple[float, float]
    loaded_at: float


class ErrorBody(BaseModel):
    error: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None
