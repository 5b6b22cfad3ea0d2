"""Pass 1's per-part intermediates: signature tables and shingle fingerprints, as Arrow IPC files.

A part here is a pass-1 task: one or more consecutive pages parts (``stage.DedupStage.plan``),
whose pages are numbered one after the other. ``dedup/_sig/<part>.arrow`` holds a row per page
(uid, page_id, length, labelled, text_key, url_key, sig); ``dedup/_sig/<part>.shingles.arrow``
a row per page with its shingle fingerprints. Both are written in record batches of
``rows_per_batch`` rows (recorded in the schema's metadata), so a reader on a remote filesystem
fetches only the batches holding the rows it asks for; a local file is memory-mapped, and only
the rows copied out are read from disk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from pagecat.runs import RunDir

from .shuffle import run_bounds

SIG_DIR = "dedup/_sig"
ROW_BITS = 32  # uid = part index << 32 | row
ROW_MASK = (1 << ROW_BITS) - 1
BATCH_KEY = b"pagecat.rows_per_batch"


def sig_path(run: RunDir, part_id: str) -> str:
    """Where pass 1 writes a part's signature table."""
    return run.path(SIG_DIR, f"{part_id}.arrow")


def shingles_path(run: RunDir, part_id: str) -> str:
    """Where pass 1 writes a part's shingle fingerprints."""
    return run.path(SIG_DIR, f"{part_id}.shingles.arrow")


def write_sig_table(run: RunDir, path: str, table: pa.Table, rows_per_batch: int) -> None:
    """A part's signature (or shingles) table, written atomically as an uncompressed Arrow IPC
    file in batches of ``rows_per_batch`` rows: an intermediate only this stage reads back.
    Signatures and fingerprints are random numbers (compression saves nothing), and IPC writes
    the columns as they lie in memory, where Parquet would encode and copy them again: on a
    machine whose cores share the memory bus, pass 1's bytes moved are what two workers compete
    for."""
    table = table.replace_schema_metadata({BATCH_KEY: str(rows_per_batch).encode()})
    with run.atomic_sink(path) as sink, pa.ipc.new_file(sink, table.schema) as writer:
        for lo in range(0, table.num_rows, rows_per_batch):
            # every batch but the last exactly rows_per_batch rows, whatever the table's chunks
            # (a slice within one chunk is combined without a copy)
            writer.write_table(table.slice(lo, rows_per_batch).combine_chunks(), max_chunksize=rows_per_batch)


def signatures(table: pa.Table) -> np.ndarray:
    """The ``sig`` column of signature rows as a (n, num_perm) uint32 array."""
    return np.asarray(table.column("sig").combine_chunks().flatten()).reshape(table.num_rows, -1)


def read_sig_rows(run: RunDir, path: str, rows: np.ndarray) -> pa.Table:
    """The rows ``rows`` (k,) int64, sorted, of a signature or shingles file, in that order: taken
    batch by batch from the record batches that hold them (a take over the whole file's chunked
    columns would first concatenate them: a copy of the file per read)."""
    rows = np.asarray(rows, np.int64)
    with contextlib.ExitStack() as stack:
        if run.is_local:
            reader = pa.ipc.open_file(pa.memory_map(path))
        else:
            reader = pa.ipc.open_file(stack.enter_context(run.fs.open(path, "rb")))
        per_batch = int((reader.schema.metadata or {}).get(BATCH_KEY, 0))
        if per_batch < 1:
            raise ValueError(f"{path} does not record its batch size (written by an older pagecat); "
                             "run `pagecat dedup --force`")
        batch_of = rows // per_batch
        bounds = run_bounds(batch_of)
        return pa.Table.from_batches([reader.get_batch(int(batch_of[lo])).take(pa.array(rows[lo:hi] % per_batch))
                                      for lo, hi in zip(bounds[:-1], bounds[1:])], reader.schema)


def read_part_rows(paths: Sequence[str], uids: np.ndarray, run: RunDir) -> pa.Table:
    """The rows of the pages ``uids`` (k,) int64, sorted, from the per-part files ``paths`` (one
    per part index: ``paths[uid >> ROW_BITS]``), as one table in uid order with a ``uid`` column
    first when the files have none (shingles files)."""
    uids = np.asarray(uids, np.int64)
    if len(uids) == 0:
        raise ValueError("read_part_rows needs at least one uid")
    part_of = uids >> ROW_BITS
    bounds = run_bounds(part_of)
    tables = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        t = read_sig_rows(run, paths[int(part_of[lo])], uids[lo:hi] & ROW_MASK)
        if "uid" not in t.schema.names:
            t = t.add_column(0, "uid", pa.array(uids[lo:hi]))
        tables.append(t.replace_schema_metadata(None))
    return pa.concat_tables(tables)
