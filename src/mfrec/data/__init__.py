"""Ratings data: vocabularies, validated ratings, readers, MovieLens, synthetic data, splits.

Only the two core types are imported eagerly; readers, datasets and splits load on use.
"""

from mfrec.data.ratings import Ratings
from mfrec.data.vocab import Vocabulary

__all__ = ["Ratings", "Vocabulary"]
