"""The distributed group-by on band keys: band rows out of every part, candidate edges out of
every slot range.

Pass 1 (one task per pages part) writes the part's *band rows* to ``dedup/_bands/<part>.parquet``:
one row per (page, LSH band) plus one per page for the exact-text key (band ``EXACT_BAND``)
and one for the canonical-URL key (band ``URL_BAND``). Each row has a ``slot`` (the top 16
bits of its key), and a file's rows are sorted by slot and written in small row groups, so a
reader asking for a slot range touches only the row groups that overlap it.

Pass 2 (one task per slot range, ``candidates.verified_edges``) reads its range from every
part (``read_slot_range``: pyarrow filters on ``slot``), sorts by (band, key) and turns each
bucket of two or more pages into edges (``bucket_edges``). Rows with equal keys always share a
slot, so every bucket is whole in exactly one range; the number of ranges is picked from the
total row count, so a task's memory stays bounded however large the corpus grows. No task ever
holds an index of all pages.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pagecat.runs import RunDir

EXACT_BAND = -1
URL_BAND = -2
# Edge kinds as the reducers return them.
EXACT, URL, NEAR = 0, 1, 2
KIND_NAMES = {EXACT: "exact", URL: "url", NEAR: "near"}
SLOTS = 1 << 16
ROW_GROUP_ROWS = 16_384

BAND_ROWS = pa.schema([
    ("slot", pa.uint16()),      # top 16 bits of key: which reducer reads the row
    ("band", pa.int16()),       # LSH band, or EXACT_BAND / URL_BAND
    ("key", pa.uint64()),       # the band's key
    ("uid", pa.int64()),        # part index << 32 | row
    ("text_key", pa.uint64()),  # hash of the page's normalised text (collapses exact copies)
])


def band_rows(uids: np.ndarray, text_keys: np.ndarray, keys: np.ndarray | None = None,
              extra: dict[int, np.ndarray] | None = None) -> pa.Table:
    """Band rows of one part, sorted by slot (schema BAND_ROWS).

    uids (n,) int64 and text_keys (n,) uint64 of the part's pages; keys (n, bands) uint64
    LSH band keys, a row of zeros for a page with no signature (no words); ``extra`` maps a
    pseudo band (EXACT_BAND, URL_BAND) to (n,) uint64 keys, 0 for a page without that key.
    """
    n = len(uids)
    keys = np.zeros((n, 0), np.uint64) if keys is None else keys
    cols: dict[str, list[np.ndarray]] = {"band": [], "key": [], "uid": [], "text_key": []}
    bands = keys.shape[1]
    per_band = [(np.int16(b), keys[:, b]) for b in range(bands)] + list((extra or {}).items())
    for band, k in per_band:
        has = k != 0
        cols["band"].append(np.full(int(has.sum()), band, np.int16))
        cols["key"].append(k[has])
        cols["uid"].append(uids[has])
        cols["text_key"].append(text_keys[has])
    if not per_band:
        return BAND_ROWS.empty_table()
    key = np.concatenate(cols["key"])
    slot = (key >> np.uint64(48)).astype(np.uint16)
    order = np.argsort(slot, kind="stable")
    return pa.table({"slot": slot[order], "band": np.concatenate(cols["band"])[order], "key": key[order],
                     "uid": np.concatenate(cols["uid"])[order],
                     "text_key": np.concatenate(cols["text_key"])[order]}, schema=BAND_ROWS)


def write_band_rows(run: RunDir, path: str, table: pa.Table) -> None:
    """Parquet with small row groups (its rows are sorted by slot), written atomically."""
    run.write_table(path, table, row_group_size=ROW_GROUP_ROWS)


def slot_ranges(total_rows: int, rows_per_task: int, min_tasks: int = 1) -> list[tuple[int, int]]:
    """Split the slot space into equal ranges, enough that each holds about ``rows_per_task`` rows."""
    tasks = max(min_tasks, -(-total_rows // max(rows_per_task, 1)), 1)
    tasks = min(tasks, SLOTS)
    bounds = np.linspace(0, SLOTS, tasks + 1).astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


def read_slot_range(run: RunDir, paths: list[str], lo: int, hi: int) -> pa.Table:
    """The band rows with lo <= slot < hi from every part file."""
    tables = []
    for path in paths:
        with run.fs.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            groups = []
            for g in range(pf.num_row_groups):
                stats = pf.metadata.row_group(g).column(0).statistics
                if stats is None or not stats.has_min_max or (stats.max >= lo and stats.min < hi):
                    groups.append(g)
            if groups:
                t = pf.read_row_groups(groups)
                slot = t.column("slot").to_numpy()
                tables.append(t.filter(pa.array((slot >= lo) & (slot < hi))))
    return pa.concat_tables(tables) if tables else BAND_ROWS.empty_table()


def run_bounds(keys: np.ndarray) -> np.ndarray:
    """Where the runs of equal values of a sorted (n,) array start, and n: (runs + 1,) int64,
    so run i is ``keys[bounds[i]:bounds[i + 1]]`` (an empty array has no run: ``[0]``)."""
    if len(keys) == 0:
        return np.zeros(1, np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])


def unique_rows(rows: np.ndarray) -> np.ndarray:
    """The distinct rows of an (m, k) int64 array, sorted (as ``np.unique(rows, axis=0)``, which
    sorts the rows as opaque byte strings and is many times slower)."""
    if len(rows) < 2:
        return rows
    order = np.lexsort(rows.T[::-1])
    rows = rows[order]
    new = np.ones(len(rows), bool)
    new[1:] = (rows[1:] != rows[:-1]).any(axis=1)
    return rows[new]


def bucket_edges(table: pa.Table, collapse_exact: bool, max_bucket_pairs: int) -> np.ndarray:
    """Edges between pages sharing a bucket: (m, 3) int64 rows (uid a, uid b, kind), a < b.

    Exact and URL buckets give a star from their first page (connectivity is all that matters
    there). A near bucket first keeps one page per distinct text when ``collapse_exact`` (its
    copies are linked by their exact edges), then gives every pair, or a star from its first
    page when it holds more than ``max_bucket_pairs`` pages (boilerplate shared by thousands
    would otherwise give millions of pairs).
    """
    if table.num_rows == 0:
        return np.zeros((0, 3), np.int64)
    band = table.column("band").to_numpy()
    key = table.column("key").to_numpy()
    uid = table.column("uid").to_numpy()
    text = table.column("text_key").to_numpy()
    order = np.lexsort((uid, key, band))
    band, key, uid, text = band[order], key[order], uid[order], text[order]
    new = np.ones(len(key), bool)
    new[1:] = (key[1:] != key[:-1]) | (band[1:] != band[:-1])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, len(key)))
    out = []
    pseudo = band < 0
    # exact and URL buckets: vectorised stars
    group = np.repeat(np.arange(len(starts)), sizes)
    first = uid[starts][group]
    star = pseudo & (uid != first)
    if star.any():
        kinds = np.where(band[star] == EXACT_BAND, EXACT, URL)
        out.append(np.stack([first[star], uid[star], kinds], axis=1))
    # near buckets of two pages (nearly all of them): vectorised
    two = starts[(sizes == 2) & ~pseudo[starts]]
    if collapse_exact:
        two = two[text[two] != text[two + 1]]
    if len(two):
        out.append(np.stack([uid[two], uid[two + 1], np.full(len(two), NEAR)], axis=1))
    # near buckets of more pages: vectorised per bucket size (a handful of sizes, however many buckets)
    big = np.repeat((sizes > 2) & ~pseudo[starts], sizes)
    if big.any():
        g, u = group[big], uid[big]  # rows of big buckets; by bucket, then uid
        if collapse_exact:  # the lowest uid of each distinct text in a bucket
            t = text[big]
            o = np.lexsort((u, t, g))
            first = np.ones(len(o), bool)
            first[1:] = (g[o][1:] != g[o][:-1]) | (t[o][1:] != t[o][:-1])
            keep = np.sort(o[first])
            g, u = g[keep], u[keep]
        bucket_start = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
        bucket_size = np.diff(np.append(bucket_start, len(g)))
        for k in np.unique(bucket_size[bucket_size >= 2]).tolist():
            members = u[bucket_start[bucket_size == k][:, None] + np.arange(k)]  # (buckets, k), uid order
            if k > max_bucket_pairs:
                a, b = np.repeat(members[:, :1], k - 1, axis=1), members[:, 1:]
            else:
                i, j = np.triu_indices(k, k=1)
                a, b = members[:, i], members[:, j]
            out.append(np.stack([a.ravel(), b.ravel(), np.full(a.size, NEAR)], axis=1))
    if not out:
        return np.zeros((0, 3), np.int64)
    return unique_rows(np.concatenate(out).astype(np.int64))
