"""Ratings data: vocabularies, validated ratings, readers, MovieLens, synthetic data, splits."""

from mfrec.data.ratings import Ratings
from mfrec.data.vocab import Vocabulary

__all__ = ["Ratings", "Vocabulary"]
