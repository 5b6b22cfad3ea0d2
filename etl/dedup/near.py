"""Near-duplicate pairs of a list of texts in one process: the same steps the dedup stage runs
distributed (MinHash -> LSH band rows -> bucket edges -> verification), for small inputs,
tests and benchmarks.

    finder = NearDuplicateFinder(threshold=0.8, num_perm=128, shingle_words=5).fit(texts)
    finder.pairs_        # (m, 2) int64 text indices i < j, Jaccard >= threshold
    finder.similarity_   # (m,) float32 Jaccard of each pair: exact where it was checked, else estimated
"""

from __future__ import annotations

import numpy as np

from .minhash import MinHasher, band_keys, estimated_jaccard, is_empty, lsh_params
from .shuffle import NEAR, band_rows, bucket_edges, unique_rows
from .verify import exact_jaccard, reaches, triage


def verify(signatures: np.ndarray, pairs: np.ndarray, threshold: float,
           fingerprints: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (m, 2) of row indices kept when their Jaccard >= threshold:
    (pairs (k, 2), similarity (k,) float32).

    With ``fingerprints`` (values, offsets: every row's shingle fingerprints back to back), the
    pairs estimated near the threshold are decided by their exact Jaccard (``verify.triage``);
    without, by the estimate alone.
    """
    if len(pairs) == 0:
        return pairs.reshape(0, 2), np.zeros(0, np.float32)
    sim = estimated_jaccard(signatures[pairs[:, 0]], signatures[pairs[:, 1]])
    if fingerprints is None:
        ok = reaches(sim, threshold)
        return pairs[ok], sim[ok]
    ok, check = triage(sim, threshold, signatures.shape[1])
    if check.any():
        sim[check] = exact_jaccard(*fingerprints, pairs[check])
        ok |= check & reaches(sim, threshold)
    return pairs[ok], sim[ok]


class NearDuplicateFinder:
    """Pairs of texts whose Jaccard similarity (word n-gram shingles) reaches ``threshold``.

    Parameters: ``threshold`` (0..1), ``num_perm``, ``shingle_words``, ``seed`` as for
    ``MinHasher``; ``max_bucket_pairs`` as for ``bucket_edges``. ``verify=False`` returns the
    LSH candidates unverified (what datasketch's MinHashLSH answers); ``exact=False`` verifies
    by the estimated Jaccard alone, never checking borderline pairs exactly.
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, shingle_words: int = 5, seed: int = 1,
                 max_bucket_pairs: int = 50, verify: bool = True, exact: bool = True):
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        self.seed = seed
        self.max_bucket_pairs = max_bucket_pairs
        self.verify = verify
        self.exact = exact

    def fit(self, texts) -> NearDuplicateFinder:
        hasher = MinHasher(self.num_perm, self.shingle_words, self.seed)
        sig, prints, offsets = hasher.sign(texts, shingles="fingerprints" if self.exact else None)
        return self.fit_signatures(sig, (prints, offsets) if self.exact else None)

    def fit_signatures(self, sig: np.ndarray,
                       fingerprints: tuple[np.ndarray, np.ndarray] | None = None) -> NearDuplicateFinder:
        """As ``fit`` from signatures; ``fingerprints`` (values, offsets) as for ``verify``."""
        bands, rows = lsh_params(self.threshold, self.num_perm)
        keys = band_keys(sig, bands, rows)
        keys[is_empty(sig)] = 0  # a text with no words is nobody's near-duplicate
        uids = np.arange(len(sig), dtype=np.int64)
        # collapse_exact=False: no text is folded into an exact copy here, so text keys are unused
        text_keys = np.arange(1, len(sig) + 1, dtype=np.uint64)
        edges = bucket_edges(band_rows(uids, text_keys, keys), False, self.max_bucket_pairs)
        pairs = unique_rows(edges[edges[:, 2] == NEAR][:, :2])
        self.signatures_ = sig
        if self.verify:
            self.pairs_, self.similarity_ = verify(sig, pairs, self.threshold, fingerprints)
        else:
            self.pairs_ = pairs
            self.similarity_ = estimated_jaccard(sig[pairs[:, 0]], sig[pairs[:, 1]]) if len(pairs) else (
                np.zeros(0, np.float32))
        return self
