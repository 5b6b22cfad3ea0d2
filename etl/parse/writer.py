"""Rows into Parquet parts, a batch at a time, each part renamed into place when complete.

``PartWriter`` writes one file; ``PartitionedWriter`` routes rows to one ``PartWriter`` per value
of a partition key, hive-style: ``<folder>/bucket=07/<part id>.parquet``. A worker holds at most
``batch_rows`` rows per open file, so memory stays flat however large the input file is.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from pagecat.runs import RunDir


class PartWriter:
    """Rows into one Parquet part (zstd), ``batch_rows`` at a time, under a temporary name renamed on close.

    ``write_empty``: write the part even with no rows (pages: one output per input part);
    otherwise no file appears until a row does (rejects, partitions).
    """

    def __init__(self, run: RunDir, path: str, schema: pa.Schema, batch_rows: int, write_empty: bool = True,
                 row_group_rows: int = 10_000, batch_bytes: int = 64 << 20):
        self.run, self.path, self.schema = run, path, schema
        self.batch_rows = max(1, batch_rows)
        self.row_group_rows = max(1, row_group_rows)
        self.batch_bytes = batch_bytes
        self.write_empty = write_empty
        self.rows: list[dict] = []
        self.count = 0
        self.buffered_bytes = 0
        self._tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        self._fh = self._writer = None

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.count += 1
        # Text columns dominate a row's size; a few huge pages flush the batch early.
        self.buffered_bytes += len(row.get("text") or "") + len(row.get("full_text") or "") + 200
        if len(self.rows) >= self.batch_rows or self.buffered_bytes >= self.batch_bytes:
            self.flush()

    def flush(self) -> None:
        if self._writer is None:
            self.run.fs.makedirs(self.path.rsplit("/", 1)[0], exist_ok=True)
            self._fh = self.run.fs.open(self._tmp, "wb")
            self._writer = pq.ParquetWriter(self._fh, self.schema, compression="zstd")
        if self.rows:
            self._writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema),
                                     row_group_size=self.row_group_rows)
            self.rows = []
            self.buffered_bytes = 0

    def close(self) -> None:
        if self.count or self.write_empty:
            self.flush()
        if self._writer is not None:
            self._writer.close()
            self._fh.close()
            self.run.fs.mv(self._tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._fh.close()
            if self.run.fs.exists(self._tmp):
                self.run.fs.rm(self._tmp)


def domain_bucket(domain: str | None, buckets: int) -> str:
    """A stable bucket for a registered domain (crc32, not Python's salted hash): ``"07"``."""
    width = len(str(max(buckets - 1, 0)))
    return f"{zlib.crc32((domain or '').encode('utf-8')) % buckets:0{width}d}"


class PartitionedWriter:
    """Rows of one input part into ``<folder>/<key>=<value>/<part id>.parquet``, one writer per value.

    A part with no rows at all still writes one empty file (``<key>=<empty_value>``) so the
    part's output exists. Re-running a part overwrites each of its files.
    """

    def __init__(self, run: RunDir, folder: str, part_id: str, schema: pa.Schema, key: str,
                 value_of: Callable[[dict], str], batch_rows: int, row_group_rows: int = 10_000,
                 empty_value: str = "none"):
        self.run, self.folder, self.part_id, self.schema = run, folder, part_id, schema
        self.key, self.value_of = key, value_of
        self.batch_rows, self.row_group_rows, self.empty_value = batch_rows, row_group_rows, empty_value
        self.writers: dict[str, PartWriter] = {}
        self.count = 0
        self.buffered = 0  # rows held by all writers together: at most batch_rows

    def _writer(self, value: str, write_empty: bool = False) -> PartWriter:
        w = self.writers.get(value)
        if w is None:
            path = self.run.path(self.folder, f"{self.key}={value}", f"{self.part_id}.parquet")
            w = self.writers[value] = PartWriter(self.run, path, self.schema, self.batch_rows,
                                                 write_empty=write_empty, row_group_rows=self.row_group_rows)
        return w

    def add(self, row: dict) -> None:
        w = self._writer(self.value_of(row))
        before = len(w.rows)
        w.add(row)
        self.count += 1
        self.buffered += len(w.rows) - before
        if self.buffered >= self.batch_rows:
            # One budget for all partitions: write out the fullest buffer (its row group is the largest).
            fullest = max(self.writers.values(), key=lambda x: len(x.rows))
            self.buffered -= len(fullest.rows)
            fullest.flush()

    def close(self) -> None:
        if not self.writers:
            self._writer(self.empty_value, write_empty=True)
        for w in self.writers.values():
            w.close()

    def abort(self) -> None:
        for w in self.writers.values():
            w.abort()
