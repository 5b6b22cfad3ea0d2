"""Candidate pairs verified: by the MinHash estimate where it is clear, by exact Jaccard where it is not.

The estimate of a pair at true Jaccard ``J`` is the share of ``num_perm`` equal signature
positions, with standard deviation ``sqrt(J (1 - J) / num_perm)`` (0.035 at J = 0.8 with 128
permutations). A pair whose estimate lies within ``VERIFY_SIGMAS`` deviations of the threshold
could be on either side of it, and real pages are often there (one site's template pages, say,
at J = 0.74-0.78 estimated above 0.8). ``triage`` splits candidates into the clearly above
(accepted), the clearly below (rejected) and the borderline, and only the borderline are checked
against the exact Jaccard of their shingle sets (``exact_jaccard``).

The sets are compared as 32-bit *fingerprints* of the 64-bit shingle hashes
(``shingle_fingerprints``): 4 bytes per shingle, about one per word. Two distinct shingles of a
pair share a fingerprint with probability 2^-32, so for pages of a few thousand shingles the
computed Jaccard is the exact one but for a few parts per million.
"""

from __future__ import annotations

import math

import numpy as np

from .minhash import _minhash  # the compiled kernel, or None where it is not built

VERIFY_SIGMAS = 3.0  # half-width of the borderline band, in standard deviations of the estimate
PAIRS_CHUNK_VALUES = 1 << 22  # fingerprints sorted at once by exact_jaccard: bounds its memory (~32 MB)
_LOW32 = np.uint64(0xFFFFFFFF)


def verify_margin(threshold: float, num_perm: int) -> float:
    """Half-width of the band of estimates around ``threshold`` that are checked exactly:
    ``VERIFY_SIGMAS`` standard deviations of the estimate at the threshold, and at least one
    signature position (so a threshold of 1 checks every pair estimated at 1)."""
    return max(VERIFY_SIGMAS * math.sqrt(threshold * (1 - threshold) / num_perm), 1 / num_perm)


def reaches(similarity: np.ndarray, threshold: float) -> np.ndarray:
    """``similarity >= threshold`` as a boolean mask, forgiving the float32 rounding of a similarity
    that equals the threshold."""
    return similarity >= np.float32(threshold) - np.float32(1e-6)


def triage(estimate: np.ndarray, threshold: float, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """(accepted, borderline): boolean masks over ``estimate``. Accepted pairs are estimated at
    least a margin above the threshold; borderline ones within the margin on either side (they
    need ``exact_jaccard``); the rest are rejected."""
    margin = verify_margin(threshold, num_perm)
    accepted = reaches(estimate, threshold + margin)
    borderline = ~accepted & reaches(estimate, threshold - margin)
    return accepted, borderline


def _segments(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Indices of the concatenated ranges [start, start + size): (sizes.sum(),) int64."""
    sizes = sizes.astype(np.int64)
    ends = np.cumsum(sizes)
    return np.repeat(starts.astype(np.int64) - (ends - sizes), sizes) + np.arange(int(ends[-1]) if len(ends) else 0)


def exact_jaccard(values: np.ndarray, offsets: np.ndarray, pairs: np.ndarray, compiled: bool = True) -> np.ndarray:
    """Jaccard similarity of the value sets of document pairs: (k,) float32.

    ``values`` (m,) uint32 are every document's fingerprints back to back (repeats allowed),
    ``offsets`` (n + 1,) int64 where each document's run starts; ``pairs`` (k, 2) document
    indices. Vectorised: the involved documents' runs are sorted and made unique once; then, for
    chunks of pairs, each side's values are tagged with the pair's number (the tagged arrays are
    sorted as built) and the two sides merged: a value in both comes out twice. Two empty sets
    have similarity 0. ``compiled``: the compiled kernel merges each pair's two runs when it is
    built (the same counts, without the tagged copies).
    """
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        return np.zeros(0, np.float32)
    docs, local = np.unique(pairs.ravel(), return_inverse=True)
    local = local.reshape(-1, 2)
    sizes = offsets[docs + 1] - offsets[docs]
    owner = np.repeat(np.arange(len(docs), dtype=np.uint64), sizes)
    keys = (owner << np.uint64(32)) | values[_segments(offsets[docs], sizes)].astype(np.uint64)
    keys.sort()  # then drop repeats (np.unique's hash table is many times slower on these keys)
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys
    uniq = keys & _LOW32
    starts = np.searchsorted(keys >> np.uint64(32), np.arange(len(docs) + 1, dtype=np.uint64))
    size_a = starts[local[:, 0] + 1] - starts[local[:, 0]]
    size_b = starts[local[:, 1] + 1] - starts[local[:, 1]]
    if compiled and _minhash is not None:
        inter = np.empty(len(pairs), np.int64)
        _minhash.intersections(np.ascontiguousarray(uniq, np.uint32), starts.astype(np.int64),
                               np.ascontiguousarray(local, np.int64), inter)
    else:
        inter = _intersections(uniq, starts, local, size_a, size_b)
    union = size_a + size_b - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0).astype(np.float32)


def _intersections(uniq: np.ndarray, starts: np.ndarray, local: np.ndarray, size_a: np.ndarray,
                   size_b: np.ndarray) -> np.ndarray:
    """The numpy path of ``exact_jaccard``: each pair's intersection size, (k,) int64, from the
    documents' sorted distinct values ``uniq`` (runs from ``starts``), in chunks of pairs that
    bound the memory (``PAIRS_CHUNK_VALUES``)."""
    inter = np.zeros(len(local), np.int64)
    work = np.cumsum(size_a + size_b)
    lo = 0
    while lo < len(local):
        # at least one pair per chunk, however large
        hi = max(int(np.searchsorted(work, (work[lo - 1] if lo else 0) + PAIRS_CHUNK_VALUES, "right")), lo + 1)
        sa, sb = size_a[lo:hi], size_b[lo:hi]
        pid = np.arange(hi - lo, dtype=np.uint64) << np.uint64(32)
        # tagged by pair, both sides come out sorted (pairs in order, each run sorted): no sort needed
        tagged_a = np.repeat(pid, sa) | uniq[_segments(starts[local[lo:hi, 0]], sa)]
        tagged_b = np.repeat(pid, sb) | uniq[_segments(starts[local[lo:hi, 1]], sb)]
        # a value is in both sets exactly when it appears twice (each side's values are distinct);
        # the stable sort (timsort) of two sorted runs is one merge, twice as fast as a binary search
        merged = np.concatenate([tagged_a, tagged_b])
        merged.sort(kind="stable")
        both = merged[1:][merged[1:] == merged[:-1]]
        inter[lo:hi] = np.bincount((both >> np.uint64(32)).astype(np.int64), minlength=hi - lo)
        lo = hi
    return inter
