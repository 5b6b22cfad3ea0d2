"""One reducer task of the dedup stage: the candidate edges of a slot range, verified where they are found.

``verified_edges`` groups the band rows of its slot range by key (``shuffle``), reads the
signature rows of the pages its edges join (only those rows, from every part's signature file),
estimates each near candidate's Jaccard from their signatures and settles the borderline ones by
the exact Jaccard of their shingle fingerprints (``verify``), read the same way. So the whole of
finding and verifying candidates is one round of tasks: the client waits once, for edges with
their verdicts and the rows of the pages they join, and never handles a signature it does not
need.

A pair found in buckets of two slot ranges is verified by both reducers, to the same verdict
(the estimate and the exact check are deterministic); the client keeps it once.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pagecat.config import DedupSettings
from pagecat.runs import RunDir

from .heap import roomy_heap
from .minhash import estimated_jaccard
from .shuffle import NEAR, bucket_edges, read_slot_range
from .sigfiles import read_part_rows, signatures
from .verify import exact_jaccard, reaches, triage

# verdict bits of an edge (column 3 of verified_edges' result)
ACCEPTED, CHECKED = 1, 2
EXACT_PAIRS_PER_READ = 50_000  # borderline pairs whose pages' fingerprints are read and compared at once


def exact_pairs(pairs: np.ndarray, fingerprints: pa.Table) -> np.ndarray:
    """The exact Jaccard (k,) float32 of uid pairs (k, 2) from the fingerprint rows (uid,
    shingles) of their pages, sorted by uid (``read_part_rows``)."""
    uid = fingerprints.column("uid").to_numpy()
    row = np.searchsorted(uid, pairs)  # each page's row
    lists = fingerprints.column("shingles").combine_chunks()
    offsets = np.asarray(lists.offsets, np.int64)
    values = np.asarray(lists.values, np.uint32)[offsets[0]:offsets[-1]]
    return exact_jaccard(values, offsets - offsets[0], row)


def judge(edges: np.ndarray, members: pa.Table, s: DedupSettings, shingle_paths: list[str],
          run: RunDir) -> np.ndarray:
    """The verdict bits (m,) int64 of ``edges`` (m, 3): exact and URL edges are accepted as they
    are; a near edge by its estimated Jaccard, or, when that is too close to the threshold to
    tell, by its exact Jaccard (``triage``). ``members``: the signature rows of the edges'
    pages, sorted by uid."""
    verdict = np.full(len(edges), ACCEPTED, np.int64)
    near = np.flatnonzero(edges[:, 2] == NEAR)
    if len(near) == 0:
        return verdict
    sig = signatures(members)
    row = np.searchsorted(members.column("uid").to_numpy(), edges[near, :2])
    accepted, checked = triage(estimated_jaccard(sig[row[:, 0]], sig[row[:, 1]]), s.threshold, s.num_perm)
    todo = edges[near[checked], :2]
    exact = np.empty(len(todo), np.float32)
    for lo in range(0, len(todo), EXACT_PAIRS_PER_READ):  # bounds the fingerprints held at once
        pairs = todo[lo:lo + EXACT_PAIRS_PER_READ]
        exact[lo:lo + len(pairs)] = exact_pairs(pairs, read_part_rows(shingle_paths, np.unique(pairs), run))
    accepted[checked] = reaches(exact, s.threshold)
    verdict[near] = accepted * ACCEPTED + checked * CHECKED
    return verdict


@roomy_heap
def verified_edges(lo: int, hi: int, *, run: RunDir, settings: DedupSettings, band_paths: list[str],
                   sig_paths: list[str], shingle_paths: list[str]) -> tuple[np.ndarray, pa.Table | None]:
    """One reducer task over the slots [lo, hi): (edges, members).

    ``edges`` (m, 4) int64 rows (uid a, uid b, kind, verdict bits), a < b, every candidate edge
    of the range's buckets; ``members`` the signature rows (uid, page_id, length, labelled,
    text_key, url_key, sig) of the pages its accepted edges join, sorted by uid, or None without
    any.
    ``band_paths``, ``sig_paths`` and ``shingle_paths`` are pass 1's files, one per part index."""
    edges = bucket_edges(read_slot_range(run, band_paths, lo, hi), settings.exact, settings.max_bucket_pairs)
    if len(edges) == 0:
        return np.zeros((0, 4), np.int64), None
    members = read_part_rows(sig_paths, np.unique(edges[:, :2]), run)
    verdict = judge(edges, members, settings, shingle_paths, run)
    edges = np.column_stack([edges, verdict])
    joined = np.unique(edges[(verdict & ACCEPTED) > 0, :2])
    if len(joined) == 0:
        return edges, None
    uid = members.column("uid").to_numpy()
    return edges, members.take(pa.array(np.searchsorted(uid, joined)))
