"""The dedup stage: pages in, the pages worth keeping out, every dropped page explained.

Three kinds of duplicate, found together as one clustering:

- **exact**: the same normalised-text hash (``text_hash`` from parse);
- **url**: the same canonical URL (``pagecat.urls.canonicalize``, the crawler's rules);
- **near**: MinHash signatures of word n-gram shingles, LSH bands, candidates verified against
  ``dedup.threshold`` by estimated Jaccard, or by exact Jaccard when the estimate is too close
  to the threshold to tell (``verify``).

Passes (see ``shuffle`` for the group-by):

1. ``run_part`` (one task per run of consecutive pages parts up to ``dedup.task_bytes``,
   ``plan``; a task's ``<part>`` below is its first pages part's name): signatures and keys of
   its pages to ``dedup/_sig/<part>.arrow``, their shingle fingerprints to
   ``dedup/_sig/<part>.shingles.arrow`` and its band rows to ``dedup/_bands/<part>.parquet``.
   The fingerprints take 4 bytes per shingle (about one per word: on WebKB about 1.6 times the
   compressed pages) and are kept apart, so that only the few rows the exact check needs are
   ever read back; like the rest of ``_sig``, they are deleted once the task's pages are
   applied (pass 3). Small parts share a task because each task and each pass-1 file has fixed
   costs, paid again by every reducer that reads it: a crawl writes parts of 500 pages, and the
   stage on WebKB x8 cut into such parts took 5.0 s with 1 worker, against 3.0 s in parts of
   4,400 pages.
2. ``finish``: reducer tasks (``candidates.verified_edges``, one per slot range, at least one
   per task slot of the cluster) group the band rows by key and verify the candidates where
   they find them: each reads the signature rows of its edges' pages, estimates every near
   candidate's Jaccard and decides the borderline ones by the exact Jaccard of their shingle
   fingerprints (those rows only, from the files of ``sigfiles``). The client waits once, for
   the edges with their verdicts and the rows of the pages they join; clusters are the
   connected components of the verified edges and each keeps one page by ``dedup.keep``
   (labelled, then longest, then earliest by default). Every read of a part's files is a
   worker's; the client runs only the vectorised steps over the edges.
3. ``finish`` saves its decisions (``dedup/_decisions.arrow``), then runs one task per pass-1
   task: each pages part's kept pages to ``dedup/pages/<part>.parquet`` and its dropped pages to
   ``duplicates/<part>.parquet`` (kept id, similarity to the kept page, kind, cluster id),
   after which the task deletes the part's pass-1 files. The manifest's counts are these final
   ones (in = out + dropped); ``manifest.parts`` keeps pass 1's counts, so a stage killed in
   pass 1 resumes at the parts not signed yet, one killed in pass 2 redoes ``finish``, and one
   killed while applying applies again from the saved decisions (its writes overwrite).

Every task runs under ``heap.roomy_heap`` (Dask's workers pin glibc's mmap threshold; the
tasks' large temporaries would each be mapped and faulted in afresh).

A dropped page's twins leave nothing behind in the kept page, so a train/test split made on
the deduplicated docs cannot put two members of one cluster on both sides: only one member
reaches ``docs/`` at all.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

from pagecat.config import Config
from pagecat.errors import StageError, UsageError
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import DEDUP_DECISIONS, DUPLICATES, PAGES
from pagecat.stage import Part, Stage, sum_counts

from .candidates import ACCEPTED, CHECKED, verified_edges
from .clusters import KEEP_CRITERIA, KeepRule, components
from .decisions import DECISIONS_FILE, DECISIONS_PATH, by_part, load_decisions, save_decisions
from .heap import roomy_heap
from .minhash import MinHasher, band_keys, estimated_jaccard, hash_strings, is_empty, lsh_params
from .shuffle import (
    EXACT,
    EXACT_BAND,
    NEAR,
    URL,
    URL_BAND,
    band_rows,
    run_bounds,
    slot_ranges,
    unique_rows,
    write_band_rows,
)
from .sigfiles import ROW_BITS, ROW_MASK, SIG_DIR, shingles_path, sig_path, signatures, write_sig_table

BANDS_DIR = "dedup/_bands"
PAGES_DIR = "dedup/pages"
DUPLICATES_DIR = "duplicates"


def band_path(run: RunDir, part_id: str) -> str:
    """Where pass 1 writes a part's band rows."""
    return run.path(BANDS_DIR, f"{part_id}.parquet")


def url_keys(urls: pa.Array) -> np.ndarray:
    """Canonical-URL hashes, (n,) uint64; 0 where the URL is missing or not HTTP(S)-parsable."""
    from pagecat.urls import canonicalize_array

    arr = canonicalize_array(urls)
    keys = hash_strings(arr.fill_null(""))
    keys[keys == 0] = 1  # 0 means "no key"
    keys[np.asarray(arr.is_null(), bool)] = 0
    return keys


def text_keys(text_hash: pa.Array) -> np.ndarray:
    """Hashes of parse's text_hash, (n,) uint64; 0 where it is missing."""
    keys = hash_strings(text_hash.fill_null(""))
    keys[keys == 0] = 1  # 0 means "no key"
    keys[np.asarray(text_hash.is_null(), bool)] = 0
    return keys


def labelled_mask(pages: pa.Table, cfg: Config) -> np.ndarray:
    """Pages the labels file names (for the ``labelled`` keep rule): (n,) bool."""
    if "labelled" not in cfg.dedup.keep or not cfg.label.labels:
        return np.zeros(pages.num_rows, bool)
    from pagecat.etl.label_keys import KEYS
    from pagecat.etl.labels_file import load_labels

    lookup = load_labels(cfg.label).lookup
    to_key, column = KEYS[cfg.label.join_on]
    return np.array([to_key(v) in lookup if v else False for v in pages.column(column).to_pylist()], bool)


def sign_part(pages: pa.Table, index: int, cfg: Config,
              lsh: tuple[int, int] | None = None) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Pass 1 for one part: (signature table, band rows table, shingles table: the fingerprints
    of each page's shingles, a row per page, empty without ``dedup.near``). ``lsh``: (bands,
    rows), as ``lsh_params`` picks them for the config (computed here when not given)."""
    s = cfg.dedup
    n = pages.num_rows
    uids = (np.int64(index) << ROW_BITS) | np.arange(n, dtype=np.int64)
    tkeys = text_keys(pages.column("text_hash").combine_chunks())
    ukeys = url_keys(pages.column("url").combine_chunks())
    width = s.num_perm if s.near else 1
    sig = np.full((n, width), 0xFFFFFFFF, np.uint32)
    keys = None
    fingerprints = []  # a list array per batch: written as they are, never concatenated
    if s.near:
        hasher = MinHasher(s.num_perm, s.shingle_words, s.seed)
        texts = pages.column("text")
        for lo in range(0, n, s.batch_rows):
            sig[lo:lo + s.batch_rows], prints, offsets = hasher.sign(texts.slice(lo, s.batch_rows), "fingerprints")
            fingerprints.append(pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(prints, pa.uint32())))
        keys = band_keys(sig, *(lsh or lsh_params(s.threshold, s.num_perm)))
        keys[is_empty(sig)] = 0
    extra = {}
    if s.exact:
        extra[EXACT_BAND] = tkeys
    if s.url:
        extra[URL_BAND] = ukeys
    bands = band_rows(uids, tkeys, keys, extra)
    length = pages.column("word_count").fill_null(0).to_numpy().astype(np.int64)
    sig_table = pa.table({
        "uid": uids, "page_id": pages.column("page_id"), "length": length,
        "labelled": labelled_mask(pages, cfg), "text_key": tkeys, "url_key": ukeys,
        "sig": pa.FixedSizeListArray.from_arrays(pa.array(sig.ravel(), pa.uint32()), width),
    })
    shingles = pa.table({"shingles": pa.chunked_array(fingerprints, pa.large_list(pa.uint32()))}) if s.near else None
    return sig_table, bands, shingles


@roomy_heap
def apply_part(part_ids: list[str], pages_paths: list[str], decisions: pa.Table, intermediates: list[str], *,
               run: RunDir) -> dict[str, dict[str, int]]:
    """Pass 3 for one task's pages parts (``part_ids``, read from ``pages_paths``): each part's
    kept pages and dropped pages written, then the task's pass-1 files (``intermediates``)
    deleted; returns each part's final counts. ``decisions`` (schema DEDUP_DECISIONS) are the
    task's dropped rows, sent with it; a row numbers the task's pages, its parts' one after the
    other."""
    dec = decisions.sort_by("row")
    rows = dec.column("row").to_numpy()
    counts, offset = {}, 0
    for part_id, path in zip(part_ids, pages_paths):
        pages = run.read_part(path).cast(PAGES)
        lo, hi = np.searchsorted(rows, [offset, offset + pages.num_rows])
        mine, offset = rows[lo:hi] - offset, offset + pages.num_rows
        part_dec = dec.slice(lo, hi - lo)
        keep = np.ones(pages.num_rows, bool)
        keep[mine] = False
        kept = pages.filter(pa.array(keep))
        dups = pa.table({"page_id": pages["page_id"].take(mine), "url": pages["url"].take(mine),
                         "kept_id": part_dec["kept_id"], "kind": part_dec["kind"],
                         "similarity": part_dec["similarity"], "cluster_id": part_dec["cluster_id"]}, schema=DUPLICATES)
        run.write_table(run.path(PAGES_DIR, f"{part_id}.parquet"), kept)
        run.write_table(run.path(DUPLICATES_DIR, f"{part_id}.parquet"), dups)
        kinds = Counter(part_dec.column("kind").to_pylist())
        counts[part_id] = {"in": pages.num_rows, "out": kept.num_rows, "rejected": 0, "dropped": dups.num_rows,
                           "exact": kinds.get("exact", 0), "url": kinds.get("url", 0), "near": kinds.get("near", 0)}
    for path in intermediates:
        with contextlib.suppress(FileNotFoundError):  # deleted by this task's earlier run
            run.fs.rm(path)
    return counts


def pack_parts(sizes: list[int], target: int) -> list[tuple[int, int]]:
    """Consecutive runs [lo, hi) of parts (their ``sizes`` in bytes, in order), each as many
    parts as fit in ``target`` bytes, and at least one."""
    runs, lo, total = [], 0, 0
    for i, size in enumerate(sizes):
        if i > lo and total + size > target:
            runs.append((lo, i))
            lo, total = i, 0
        total += size
    return runs + [(lo, len(sizes))] if sizes else []


def _unique_members(tables: list[pa.Table]) -> pa.Table | None:
    """The reducers' member rows as one table sorted by uid, each page once (a page joined by
    edges of two slot ranges comes from both reducers), or None without any."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    t = pa.concat_tables(tables)
    uid = t.column("uid").to_numpy()
    order = np.argsort(uid, kind="stable")
    return t.take(pa.array(order[run_bounds(uid[order])[:-1]]))  # one copy of the rows kept


class DedupStage(Stage):
    """``pages/`` to ``dedup/pages/`` (schema PAGES) and ``duplicates/`` (schema DUPLICATES)."""

    name = "dedup"
    sections = ("dedup",)
    upstream = ("parse",)
    outputs = ("dedup", "duplicates")
    unit = "pages"

    def external_inputs(self, cfg: Config, run: RunDir) -> list[str]:
        # the labels file decides which page a cluster keeps
        return [cfg.label.labels] if cfg.label.labels and "labelled" in cfg.dedup.keep else []

    def check(self, cfg: Config, run: RunDir) -> None:
        s = cfg.dedup
        bad = [c for c in s.keep if c not in KEEP_CRITERIA]
        if bad:
            raise UsageError(f"config field dedup.keep: unknown criterion {bad[0]!r}; choose from "
                             f"{', '.join(KEEP_CRITERIA)}")
        if not 0 < s.threshold <= 1:
            raise UsageError(f"config field dedup.threshold: must be in (0, 1], got {s.threshold}")
        for key in ("num_perm", "shingle_words", "max_bucket_pairs", "rows_per_reducer", "batch_rows", "task_bytes"):
            if getattr(s, key) < 1:
                raise UsageError(f"config field dedup.{key}: must be at least 1, got {getattr(s, key)}")

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        """A ``Part`` (the runner's unit of work, resumed as a whole) per task: consecutive pages
        parts packed up to ``dedup.task_bytes`` (``pack_parts``). Its id is its first pages
        part's, with the number of parts when more than one; ``args["part_ids"]`` names its pages
        parts, whose outputs keep their own names."""
        files = run.file_sizes("pages", suffix=".parquet")
        tasks = pack_parts([size for _, size in files], cfg.dedup.task_bytes)
        if len(tasks) >= 2**31:
            raise UsageError("too many dedup tasks for its 32-bit task index; raise dedup.task_bytes")
        # the LSH shape, picked once here: picking it costs each worker's first task ~30 ms
        lsh = lsh_params(cfg.dedup.threshold, cfg.dedup.num_perm) if cfg.dedup.near else None
        parts = []
        for i, (lo, hi) in enumerate(tasks):
            paths = [f for f, _ in files[lo:hi]]
            ids = [run.part_name("pages", f) for f in paths]
            parts.append(Part(id=ids[0] if len(ids) == 1 else f"{ids[0]}__{len(ids)}parts", inputs=paths,
                              args={"index": i, "lsh": lsh, "part_ids": ids}))
        return parts

    @staticmethod
    @roomy_heap
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        columns = sorted({"page_id", "url", "text", "word_count", "text_hash", "domain", "seed_id"})
        pages = pa.concat_tables([run.read_part(path, columns=columns) for path in part.inputs],
                                 promote_options="permissive")
        if pages.num_rows >= 2**ROW_BITS:
            fix = "lower dedup.task_bytes" if len(part.inputs) > 1 else "split the pages part"
            raise ValueError(f"{pages.num_rows} rows in one task: more than dedup's 32-bit row index; {fix}")
        sig, bands, shingles = sign_part(pages, part.args["index"], cfg, part.args.get("lsh"))
        batch = cfg.dedup.batch_rows
        write_sig_table(run, sig_path(run, part.id), sig, batch)
        if shingles is not None:
            write_sig_table(run, shingles_path(run, part.id), shingles, batch)
        write_band_rows(run, band_path(run, part.id), bands)
        n = pages.num_rows
        return {"in": n, "out": n, "rejected": 0, "dropped": 0, "band_rows": bands.num_rows}

    def finish(self, cfg: Config, run: RunDir, client, manifest: Manifest) -> dict[str, Any]:
        t0 = time.perf_counter()
        parts = self.plan(cfg, run)
        saved = load_decisions(run)
        if saved is None:
            decisions, stats = self._find(cfg, run, client, manifest, parts)
            save_decisions(run, decisions, stats)
        else:  # an earlier finish decided, then was interrupted while applying
            decisions, stats = saved
            stats = {**stats, "resumed_at": "apply"}
        t_decided = time.perf_counter()
        tables = by_part(decisions)
        # each apply task deletes its part's pass-1 files once its outputs are written
        final = client.gather(client.map(
            apply_part, [p.args["part_ids"] for p in parts], [p.inputs for p in parts],
            [tables.get(p.args["index"], DEDUP_DECISIONS.empty_table()) for p in parts],
            [self._intermediates(run, p) for p in parts], run=run, pure=False))
        t_apply = time.perf_counter()
        final_parts = {part_id: c for counts in final for part_id, c in counts.items()}
        manifest.counts = sum_counts(final_parts)  # the final outcome; manifest.parts keeps pass 1's counts
        for folder in (BANDS_DIR, SIG_DIR, DECISIONS_PATH):  # the decisions last: until then a rerun resumes
            run.remove(folder)
        found_seconds = stats.pop("seconds")  # the earlier finish's, when resumed
        seconds = {**(found_seconds if saved is None else {"load": round(t_decided - t0, 3)}),
                   "apply": round(t_apply - t_decided, 3)}
        return {**stats, "final_parts": final_parts, "finish_seconds": seconds}

    @staticmethod
    def _intermediates(run: RunDir, part: Part) -> list[str]:
        """Pass 1's files of ``part``."""
        return [band_path(run, part.id), sig_path(run, part.id), shingles_path(run, part.id)]

    def _find(self, cfg: Config, run: RunDir, client, manifest: Manifest,
              parts: list[Part]) -> tuple[pa.Table, dict[str, Any]]:
        """The decisions on every dropped page (schema DECISIONS_FILE) and the counts of what
        was found: the reducer tasks, then the clusters and the keep rule on the client."""
        s = cfg.dedup
        t0 = time.perf_counter()
        if parts and not (run.exists(SIG_DIR) and run.exists(BANDS_DIR)):
            # finished once already and cleaned up, but the manifest was not saved
            raise StageError(self.name, f"{run.path(SIG_DIR)} is missing; run `pagecat dedup --force`")
        total_rows = sum(int(manifest.parts.get(p.id, {}).get("band_rows", 0)) for p in parts)
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        slots = sum(w.get("nthreads", 1) for w in workers.values()) or 1
        ranges = slot_ranges(total_rows, s.rows_per_reducer, min_tasks=slots)
        results = client.gather(client.map(
            verified_edges, [lo for lo, _ in ranges], [hi for _, hi in ranges], run=run, settings=s,
            band_paths=[band_path(run, p.id) for p in parts], sig_paths=[sig_path(run, p.id) for p in parts],
            shingle_paths=[shingles_path(run, p.id) for p in parts], pure=False))
        t_reduce = time.perf_counter()
        found = [e for e, _ in results if len(e)]
        edges = unique_rows(np.concatenate(found)) if found else np.zeros((0, 4), np.int64)
        near = edges[:, 2] == NEAR
        verified = (edges[:, 3] & ACCEPTED) > 0
        comp_uids, comp = components(edges[verified, :2])
        decisions, n_clusters = self._decide(
            cfg, _unique_members([m for _, m in results if m is not None]), comp_uids, comp)
        bands, rows = lsh_params(s.threshold, s.num_perm) if s.near else (0, 0)
        return decisions, {
            "clusters": n_clusters, "candidate_pairs": int(near.sum()), "verified_pairs": int((near & verified).sum()),
            "exact_checked_pairs": int(((edges[:, 3] & CHECKED) > 0).sum()),
            "exact_edges": int((edges[:, 2] == EXACT).sum()), "url_edges": int((edges[:, 2] == URL).sum()),
            "reducers": len(ranges), "band_rows": total_rows, "lsh_bands": bands, "lsh_rows": rows,
            "keep": list(s.keep),
            "seconds": {"reduce": round(t_reduce - t0, 3), "cluster": round(time.perf_counter() - t_reduce, 3)}}

    @staticmethod
    def _decide(cfg: Config, members: pa.Table | None, comp_uids: np.ndarray,
                comp: np.ndarray) -> tuple[pa.Table, int]:
        """The decisions (schema DECISIONS_FILE: DEDUP_DECISIONS and each page's part index) of
        every dropped page, by uid; and the number of clusters. ``members`` (sorted by uid) are the
        signature rows of the pages ``comp_uids`` (sorted), whose components are ``comp``.
        Vectorised: a million dropped pages are a few array passes, not a million Python dicts."""
        if len(comp_uids) == 0:
            return DECISIONS_FILE.empty_table(), 0
        s = cfg.dedup
        at = np.searchsorted(members.column("uid").to_numpy(), comp_uids)  # each page's members row

        def col(name: str) -> np.ndarray:
            return members.column(name).to_numpy(zero_copy_only=False)[at]

        tkey, ukey = col("text_key"), col("url_key")
        kept = KeepRule(s.keep).kept(comp, comp_uids, col("length"), col("labelled"))
        kept_at = np.searchsorted(comp_uids, kept)
        # the cluster id: its earliest page (lowest uid); comp_uids is sorted, so a component's
        # first member is its earliest
        first_of = np.unique(comp, return_index=True)[1]
        dropped = np.flatnonzero(comp_uids != kept)
        k = kept_at[dropped]
        exact = (tkey[dropped] != 0) & (tkey[dropped] == tkey[k]) if s.exact else np.zeros(len(dropped), bool)
        url = ~exact & (ukey[dropped] != 0) & (ukey[dropped] == ukey[k]) if s.url else np.zeros(len(dropped), bool)
        sig = signatures(members)  # a view: only the dropped pages' and their kept pages' rows are copied
        similarity = np.where(exact, np.float32(1.0), estimated_jaccard(sig[at[dropped]], sig[at[k]]))
        page_id = members.column("page_id").combine_chunks()  # taken as Arrow strings, never as Python ones
        return pa.table({
            "row": comp_uids[dropped] & ROW_MASK,
            "kept_id": page_id.take(pa.array(at[k])),
            "kind": pa.array(np.where(exact, "exact", np.where(url, "url", "near")), pa.string()),
            "similarity": pa.array(similarity, pa.float32(), mask=url & (not s.near)),
            "cluster_id": page_id.take(pa.array(at[first_of[comp[dropped]]])),
            "part": comp_uids[dropped] >> ROW_BITS,
        }, schema=DECISIONS_FILE), int(comp.max()) + 1
