"""The dedup stage: pages in, the pages worth keeping out, every dropped page explained.

Three kinds of duplicate, found together as one clustering:

- **exact**: the same normalised-text hash (``text_hash`` from parse);
- **url**: the same canonical URL (``pagecat.urls.canonicalize``, the crawler's rules);
- **near**: MinHash signatures of word n-gram shingles, LSH bands, candidates verified against
  ``dedup.threshold`` by estimated Jaccard, or by exact Jaccard when the estimate is too close
  to the threshold to tell (``verify``).

Passes (see ``shuffle`` for the group-by):

1. ``run_part`` (one task per pages part): signatures and keys of the part's pages to
   ``dedup/_sig/<part>.arrow``, their shingle fingerprints to ``dedup/_sig/<part>.shingles.arrow``
   and the part's band rows to ``dedup/_bands/<part>.parquet``. The fingerprints take 4 bytes
   per shingle (about one per word: on WebKB about 1.6 times the compressed pages part) and
   are kept apart, so that only the few rows the exact check needs are ever read back; like
   the rest of ``_sig``, they are deleted when the stage finishes.
2. ``finish``: reducer tasks group the band rows by key (each a slot range of every part) and
   return candidate edges; reader tasks (one per task slot of the cluster, each over a run of
   the parts with such pages) read the rows of the few pages with an edge once, and the client
   estimates every near candidate's Jaccard from their signatures; exact-check tasks decide the
   borderline ones by the exact Jaccard of their shingle fingerprints, which reader tasks of the
   same kind read (those rows only) and send worker to worker (``_verify``); clusters are
   the connected components of the verified edges and each keeps one page by ``dedup.keep``
   (labelled, then longest, then earliest by default). The client only plans the tasks and
   runs the vectorised steps over the edges; every read of a part's files is a worker's.
3. ``finish`` again, one task per part: the part's kept pages to ``dedup/pages/<part>.parquet``
   and its dropped pages to ``duplicates/<part>.parquet`` (kept id, similarity to the kept
   page, kind, cluster id). The manifest's counts are these final ones (in = out + dropped);
   ``manifest.parts`` keeps pass 1's counts, so a stage killed in pass 1 resumes at the parts
   not signed yet, and one killed in ``finish`` redoes only ``finish`` (its writes overwrite).

Every task runs under ``heap.roomy_heap`` (Dask's workers pin glibc's mmap threshold; the
tasks' large temporaries would each be mapped and faulted in afresh).

A dropped page's twins leave nothing behind in the kept page, so a train/test split made on
the deduplicated docs cannot put two members of one cluster on both sides: only one member
reaches ``docs/`` at all.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pagecat.config import Config
from pagecat.errors import StageError, UsageError
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import DEDUP_DECISIONS, DUPLICATES, PAGES
from pagecat.stage import Part, Stage

from .clusters import KEEP_CRITERIA, KeepRule, components
from .heap import roomy_heap
from .minhash import MinHasher, band_keys, estimated_jaccard, hash_strings, is_empty, lsh_params
from .shuffle import (
    EXACT,
    EXACT_BAND,
    NEAR,
    URL,
    URL_BAND,
    band_rows,
    reduce_slots,
    slot_ranges,
    unique_rows,
    write_band_rows,
)
from .verify import exact_jaccard, reaches, triage

SIG_DIR = "dedup/_sig"
BANDS_DIR = "dedup/_bands"
PAGES_DIR = "dedup/pages"
DUPLICATES_DIR = "duplicates"
ROW_BITS = 32  # uid = part index << 32 | row
ROW_MASK = (1 << ROW_BITS) - 1
EXACT_PAIRS_PER_TASK = 50_000  # borderline pairs one exact-check task decides


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


def sig_path(run: RunDir, part_id: str) -> str:
    """Where pass 1 writes a part's signature table."""
    return run.path(SIG_DIR, f"{part_id}.arrow")


def shingles_path(run: RunDir, part_id: str) -> str:
    """Where pass 1 writes a part's shingle fingerprints."""
    return run.path(SIG_DIR, f"{part_id}.shingles.arrow")


def write_sig_table(run: RunDir, path: str, table: pa.Table) -> None:
    """A part's signature (or shingles) table, written atomically as an uncompressed Arrow IPC
    file: an intermediate only this stage reads back. Signatures and fingerprints are random
    numbers (compression saves nothing), and IPC writes the columns as they lie in memory, where
    Parquet would encode and copy them again: on a machine whose cores share the memory bus,
    pass 1's bytes moved are what two workers compete for."""
    with run.atomic_sink(path) as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def read_sig_table(run: RunDir, path: str) -> pa.Table:
    """A part's signature (or shingles) table. A local file is memory-mapped: the rows a caller
    copies out are the only ones read from disk."""
    if run.is_local:
        return pa.ipc.open_file(pa.memory_map(path)).read_all()
    with run.fs.open(path, "rb") as fh:
        return pa.ipc.open_file(fh).read_all()


@roomy_heap
def load_members(paths: list[str], uids: list[np.ndarray], *, run: RunDir) -> pa.Table:
    """The rows of ``uids[i]`` from the signature file ``paths[i]``, for each part of a reader
    group, as one table (uid, page_id, length, labelled, text_key, url_key, sig)."""
    tables = []
    for path, wanted in zip(paths, uids):
        t = read_sig_table(run, path)
        tables.append(t.filter(pa.array(np.isin(t.column("uid").to_numpy(), wanted))))
    return pa.concat_tables(tables)


@roomy_heap
def part_fingerprints(paths: list[str], uids: list[np.ndarray], *, run: RunDir) -> pa.Table:
    """(uid, shingles) of the pages ``uids[i]`` (k,) int64 of the part whose shingles file is
    ``paths[i]``, for each part of a reader group: only their rows are copied out."""
    tables = []
    for path, wanted in zip(paths, uids):
        wanted = np.asarray(wanted, np.int64)
        shingles = read_sig_table(run, path).column("shingles").take(pa.array(wanted & ROW_MASK))
        tables.append(pa.table({"uid": wanted, "shingles": shingles}))
    return pa.concat_tables(tables)


def reader_groups(held: list[int], slots: int) -> list[list[int]]:
    """The part indices ``held`` in contiguous runs, one reader task each: as many as the
    cluster has task slots (a task per part would make thousands of tasks of a millisecond,
    whose scheduling costs more than the reading)."""
    return [g.tolist() for g in np.array_split(np.asarray(held, np.int64), min(len(held), max(slots, 1)))]


@roomy_heap
def exact_pairs(pairs: np.ndarray, fingerprints: list[pa.Table]) -> np.ndarray:
    """One exact-check task: the exact Jaccard (k,) float32 of uid pairs (k, 2) from the
    fingerprint tables (``part_fingerprints``) that hold their pages."""
    t = pa.concat_tables(fingerprints)
    uid = t.column("uid").to_numpy()
    order = np.argsort(uid)
    row = order[np.searchsorted(uid[order], pairs)]  # each page's row in t
    lists = t.column("shingles").combine_chunks()
    offsets = np.asarray(lists.offsets, np.int64)
    values = np.asarray(lists.values, np.uint32)[offsets[0]:offsets[-1]]
    return exact_jaccard(values, offsets - offsets[0], row)


@roomy_heap
def apply_part(part_id: str, pages_path: str, decisions: pa.Table, *, run: RunDir) -> dict[str, int]:
    """Pass 3 for one part: kept pages and dropped pages written; returns the part's final counts.
    ``decisions`` (schema DEDUP_DECISIONS) are the part's dropped rows, sent with the task."""
    pages = run.read_part(pages_path).cast(PAGES)
    dec = decisions.sort_by("row")
    rows = dec.column("row")
    dropped = pc.is_in(pa.array(np.arange(pages.num_rows, dtype=np.int64)), value_set=rows.combine_chunks())
    kept = pages.filter(pc.invert(dropped))
    dups = pa.table({"page_id": pc.take(pages["page_id"], rows), "url": pc.take(pages["url"], rows),
                     "kept_id": dec["kept_id"], "kind": dec["kind"], "similarity": dec["similarity"],
                     "cluster_id": dec["cluster_id"]}, schema=DUPLICATES)
    run.write_table(run.path(PAGES_DIR, f"{part_id}.parquet"), kept)
    run.write_table(run.path(DUPLICATES_DIR, f"{part_id}.parquet"), dups)
    kinds = Counter(dec.column("kind").to_pylist())
    return {"in": pages.num_rows, "out": kept.num_rows, "rejected": 0, "dropped": dups.num_rows,
            "exact": kinds.get("exact", 0), "url": kinds.get("url", 0), "near": kinds.get("near", 0)}


def _concat(tables: list[pa.Table]) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables) if tables else None


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
        for key in ("num_perm", "shingle_words", "max_bucket_pairs", "rows_per_reducer", "batch_rows"):
            if getattr(s, key) < 1:
                raise UsageError(f"config field dedup.{key}: must be at least 1, got {getattr(s, key)}")

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        files = run.list_files("pages", suffix=".parquet")
        if len(files) >= 2**31:
            raise UsageError("too many pages parts for dedup's 32-bit part index")
        # the LSH shape, picked once here: picking it costs each worker's first task ~30 ms
        lsh = lsh_params(cfg.dedup.threshold, cfg.dedup.num_perm) if cfg.dedup.near else None
        return [Part(id=run.part_name("pages", f), inputs=[f], args={"index": i, "lsh": lsh})
                for i, f in enumerate(files)]

    @staticmethod
    @roomy_heap
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        pages = run.read_part(part.inputs[0], columns=sorted({"page_id", "url", "text", "word_count", "text_hash",
                                                              "domain", "seed_id"}))
        if pages.num_rows >= 2**ROW_BITS:
            raise ValueError(f"{pages.num_rows} rows in one part: more than dedup's 32-bit row index")
        sig, bands, shingles = sign_part(pages, part.args["index"], cfg, part.args.get("lsh"))
        write_sig_table(run, sig_path(run, part.id), sig)
        if shingles is not None:
            write_sig_table(run, shingles_path(run, part.id), shingles)
        write_band_rows(run, run.path(BANDS_DIR, f"{part.id}.parquet"), bands)
        n = pages.num_rows
        return {"in": n, "out": n, "rejected": 0, "dropped": 0, "band_rows": bands.num_rows}

    def finish(self, cfg: Config, run: RunDir, client, manifest: Manifest) -> dict[str, Any]:
        s = cfg.dedup
        t0 = time.perf_counter()
        parts = self.plan(cfg, run)
        band_paths = [run.path(BANDS_DIR, f"{p.id}.parquet") for p in parts]
        sig_paths = [sig_path(run, q.id) for q in parts] + ([shingles_path(run, q.id) for q in parts] if s.near else [])
        gone = [p for p in band_paths + sig_paths if not run.fs.exists(p)]
        if gone:  # finished once already and cleaned up, but the manifest was not saved
            raise StageError(self.name, f"{gone[0]} is missing; run `pagecat dedup --force`")
        total_rows = sum(int(manifest.parts.get(p.id, {}).get("band_rows", 0)) for p in parts)
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        n_workers = max(len(workers), 1)
        slots = sum(w.get("nthreads", 1) for w in workers.values()) or 1
        ranges = slot_ranges(total_rows, s.rows_per_reducer, min_tasks=n_workers)
        futures = client.map(reduce_slots, [lo for lo, _ in ranges], [hi for _, hi in ranges], run=run,
                             paths=band_paths, collapse_exact=s.exact, max_bucket_pairs=s.max_bucket_pairs,
                             pure=False)
        edges = [e for e in client.gather(futures) if len(e)]
        t_group = time.perf_counter()
        edges = unique_rows(np.concatenate(edges)) if edges else np.zeros((0, 3), np.int64)

        near = edges[:, 2] == NEAR
        index = {p.args["index"]: p for p in parts}
        members = self._members(run, client, index, np.unique(edges[:, :2]), slots)
        uid = members.column("uid").to_numpy() if members is not None else np.zeros(0, np.int64)
        sig = (np.asarray(members.column("sig").combine_chunks().flatten()).reshape(len(uid), -1)
               if members is not None else np.zeros((0, 1), np.uint32))
        accepted, checked = self._verify(cfg, run, client, index, edges[near, :2], uid, sig, slots)
        verified = ~near
        verified[near] = accepted
        t_verify = time.perf_counter()
        comp_uids, comp = components(edges[verified, :2])

        decisions, n_clusters = self._decide(cfg, members, uid, sig, comp_uids, comp)
        t_cluster = time.perf_counter()
        tables = [decisions.get(p.args["index"], DEDUP_DECISIONS.empty_table()) for p in parts]
        final = client.gather(client.map(
            apply_part, [p.id for p in parts], [p.inputs[0] for p in parts], tables, run=run, pure=False))
        t_apply = time.perf_counter()
        counts: dict[str, int] = {}
        for c in final:
            for k, v in c.items():
                counts[k] = counts.get(k, 0) + v
        manifest.counts = counts  # the final outcome; manifest.parts keeps pass 1's counts
        for folder in (BANDS_DIR, SIG_DIR):
            run.remove(folder)
        bands, rows = lsh_params(s.threshold, s.num_perm) if s.near else (0, 0)
        return {"clusters": n_clusters, "candidate_pairs": int(near.sum()),
                "verified_pairs": int((near & verified).sum()), "exact_checked_pairs": int(checked.sum()),
                "exact_edges": int((edges[:, 2] == EXACT).sum()),
                "url_edges": int((edges[:, 2] == URL).sum()), "reducers": len(ranges), "band_rows": total_rows,
                "lsh_bands": bands, "lsh_rows": rows, "keep": list(s.keep),
                "final_parts": {p.id: c for p, c in zip(parts, final)},
                "finish_seconds": {"group_by": round(t_group - t0, 3), "verify": round(t_verify - t_group, 3),
                                   "cluster": round(t_cluster - t_verify, 3), "apply": round(t_apply - t_cluster, 3)}}

    @staticmethod
    def _members(run: RunDir, client, index: dict[int, Part], uids: np.ndarray, slots: int) -> pa.Table | None:
        """The signature rows (what the keep rule needs, signatures) of the pages ``uids`` (k,)
        int64, sorted by uid, or None without any: read by reader tasks (``reader_groups``: one
        per task slot, each over a run of parts)."""
        if len(uids) == 0:
            return None
        part_of = uids >> ROW_BITS
        groups = reader_groups(np.unique(part_of).tolist(), slots)
        members = _concat(client.gather(client.map(
            load_members, [[sig_path(run, index[i].id) for i in g] for g in groups],
            [[uids[part_of == i] for i in g] for g in groups], run=run, pure=False)))
        return members.sort_by("uid")

    @staticmethod
    def _verify(cfg: Config, run: RunDir, client, index: dict[int, Part], pairs: np.ndarray, uid: np.ndarray,
                sig: np.ndarray, slots: int) -> tuple[np.ndarray, np.ndarray]:
        """The verdicts on the near candidate ``pairs`` (k, 2) of uids: (accepted, checked) masks.

        ``uid`` (sorted) and ``sig`` are the signature rows of their pages (``_members``). The
        client estimates each pair's Jaccard from the signatures (one vectorised comparison) and
        sends the pairs too close to call to exact-check tasks, each a share of them ordered by
        the parts of their pages; those take the pages' fingerprints worker to worker from reader
        tasks (one per task slot, each over a run of the parts holding them), which read just
        their rows of the shingles files.
        """
        s = cfg.dedup
        accepted, checked = np.zeros(len(pairs), bool), np.zeros(len(pairs), bool)
        if len(pairs) == 0:
            return accepted, checked
        row = np.searchsorted(uid, pairs)
        accepted, checked = triage(estimated_jaccard(sig[row[:, 0]], sig[row[:, 1]]), s.threshold, s.num_perm)
        if checked.any():
            todo = pairs[checked]
            docs = np.unique(todo)
            doc_part = docs >> ROW_BITS
            groups = reader_groups(np.unique(doc_part).tolist(), slots)
            readers = client.map(part_fingerprints, [[shingles_path(run, index[i].id) for i in g] for g in groups],
                                 [[docs[doc_part == i] for i in g] for g in groups], run=run, pure=False)
            chosen = {i: reader for g, reader in zip(groups, readers) for i in g}
            pair_parts = todo >> ROW_BITS
            by_parts = np.lexsort((pair_parts[:, 1], pair_parts[:, 0]))
            tasks = min(max(slots, -(-len(todo) // EXACT_PAIRS_PER_TASK)), len(todo))
            chunks = np.array_split(by_parts, tasks)
            futures = client.map(exact_pairs, [todo[c] for c in chunks],
                                 [list({id(chosen[i]): chosen[i] for i in np.unique(pair_parts[c]).tolist()}.values())
                                  for c in chunks], pure=False)
            exact = np.empty(len(todo), np.float32)
            exact[np.concatenate(chunks)] = np.concatenate(client.gather(futures))
            accepted[np.flatnonzero(checked)] = reaches(exact, s.threshold)
        return accepted, checked

    @staticmethod
    def _decide(cfg: Config, members: pa.Table | None, uid: np.ndarray, sig: np.ndarray, comp_uids: np.ndarray,
                comp: np.ndarray) -> tuple[dict[int, pa.Table], int]:
        """Per part index, the decisions (schema DEDUP_DECISIONS) of its dropped pages, in row
        order; and the number of clusters. ``members`` are sorted by uid, ``uid`` and ``sig`` their
        columns. Vectorised: a million dropped pages are a few array passes, not a million Python
        dicts."""
        if len(comp_uids) == 0:
            return {}, 0
        s = cfg.dedup
        at = np.searchsorted(uid, comp_uids)

        def col(name: str) -> np.ndarray:
            return members.column(name).to_numpy(zero_copy_only=False)[at]

        page_id, length, labelled = col("page_id"), col("length"), col("labelled")
        tkey, ukey = col("text_key"), col("url_key")
        kept = KeepRule(s.keep).kept(comp, comp_uids, length, labelled)
        kept_at = np.searchsorted(comp_uids, kept)
        # the cluster id: its earliest page (lowest uid); comp_uids is sorted, so a component's
        # first member is its earliest
        first_of = np.unique(comp, return_index=True)[1]
        sim = estimated_jaccard(sig[at], sig[at][kept_at]).astype(np.float32)
        dropped = np.flatnonzero(comp_uids != kept)
        k = kept_at[dropped]
        exact = (tkey[dropped] != 0) & (tkey[dropped] == tkey[k]) if s.exact else np.zeros(len(dropped), bool)
        url = ~exact & (ukey[dropped] != 0) & (ukey[dropped] == ukey[k]) if s.url else np.zeros(len(dropped), bool)
        kind = np.where(exact, "exact", np.where(url, "url", "near"))
        similarity = np.where(exact, np.float32(1.0), sim[dropped])
        null_similarity = url & (not s.near)
        part = comp_uids[dropped] >> ROW_BITS
        table = pa.table({
            "row": comp_uids[dropped] & ROW_MASK,
            "kept_id": pa.array(page_id[k], pa.string()),
            "kind": pa.array(kind, pa.string()),
            "similarity": pa.array(similarity, pa.float32(), mask=null_similarity),
            "cluster_id": pa.array(page_id[first_of[comp[dropped]]], pa.string()),
        }, schema=DEDUP_DECISIONS)
        by_part = np.argsort(part, kind="stable")  # comp_uids is sorted: rows stay in order within a part
        bounds = np.flatnonzero(np.r_[True, np.diff(part[by_part]) != 0, True])
        return ({int(part[by_part[lo]]): table.take(by_part[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])},
                int(comp.max()) + 1)
