"""Clusters of duplicate pages from verified edges, and the page each cluster keeps.

Edges are few next to pages (only pages with a duplicate appear), so the clustering runs in
one process over the pages that have an edge: connected components of the edge graph
(scipy's union-find-like ``connected_components``), then one page kept per component by
``KeepRule``.
"""

from __future__ import annotations

import numpy as np

KEEP_CRITERIA = ("labelled", "longest", "earliest")


def components(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of an undirected graph given as (m, 2) uid pairs.

    Returns (uids (k,) int64 sorted, component (k,) int64): every uid that has an edge and
    the number of its component (0..n_components-1).
    """
    if len(edges) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # imported here: workers import this package for pass 1 and never cluster (scipy.sparse is slow to import)
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    uids, idx = np.unique(edges[:, :2], return_inverse=True)
    idx = idx.reshape(-1, 2)
    graph = sp.coo_matrix((np.ones(len(idx), np.int8), (idx[:, 0], idx[:, 1])), shape=(len(uids), len(uids)))
    _, labels = connected_components(graph, directed=False)
    return uids, labels.astype(np.int64)


class KeepRule:
    """Which page of a cluster is kept: the best by ``criteria`` in order.

    ``labelled``: a page the labels file names beats one it does not (its label is not lost);
    ``longest``: more words beat fewer; ``earliest``: the lower uid ((part, row) order) wins.
    ``earliest`` always breaks the last tie, so the choice is deterministic.
    """

    def __init__(self, criteria: tuple[str, ...] | list[str] = KEEP_CRITERIA):
        unknown = [c for c in criteria if c not in KEEP_CRITERIA]
        if unknown:
            raise ValueError(f"unknown keep criteria {unknown}; choose from {', '.join(KEEP_CRITERIA)}")
        self.criteria = tuple(criteria)

    def kept(self, component: np.ndarray, uid: np.ndarray, length: np.ndarray,
             labelled: np.ndarray) -> np.ndarray:
        """The kept uid of each member's component: (k,) int64, aligned with the inputs."""
        keys = [uid]  # np.lexsort: the last key is the primary one
        for c in reversed(self.criteria):
            if c == "longest":
                keys.append(-length.astype(np.int64))
            elif c == "labelled":
                keys.append(~labelled.astype(bool))
            else:
                keys.append(uid)
        keys.append(component)
        order = np.lexsort(keys)
        comp_sorted = component[order]
        first = np.ones(len(order), bool)
        first[1:] = comp_sorted[1:] != comp_sorted[:-1]
        best_of_comp = np.empty(int(component.max()) + 1 if len(component) else 0, np.int64)
        best_of_comp[comp_sorted[first]] = uid[order][first]
        return best_of_comp[component]
