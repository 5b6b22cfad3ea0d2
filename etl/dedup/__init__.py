"""Dedup: exact, URL and near-duplicate pages removed at any scale (see ``stage`` for the passes).

Public API: ``DedupStage`` (the pipeline stage), ``MinHasher`` (texts to MinHash signatures),
``NearDuplicateFinder`` (near-duplicate pairs of a list of texts in one process),
``lsh_params``, ``band_keys``, ``KeepRule``; ``verify`` decides candidate pairs whose estimate is
too close to the threshold by their exact Jaccard.
"""

from .clusters import KEEP_CRITERIA, KeepRule, components
from .minhash import MinHasher, band_keys, estimated_jaccard, lsh_params
from .near import NearDuplicateFinder
from .stage import DedupStage

__all__ = ["KEEP_CRITERIA", "DedupStage", "KeepRule", "MinHasher", "NearDuplicateFinder", "band_keys",
           "components", "estimated_jaccard", "lsh_params"]
