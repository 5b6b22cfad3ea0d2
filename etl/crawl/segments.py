"""Where a shard's crawl goes: crawl-log rows and WARC records, in segments completed atomically.

A long crawl must survive a kill without losing or repeating work, so a shard's output is a
series of segments, each written whole::

    raw/shard-0003/seg-00012.warc.gz          the segment's pages (request + response records)
    rejects/crawl/shard-0003/seg-00012.parquet   its rows that were not fetched (REJECTS)
    crawl_log/shard-0003/seg-00012.parquet    its crawl-log rows (CRAWL_LOG): the completion mark

``SegmentedOutput.flush(commit)`` closes the open segment: its three files are written under
temporary names, then ``commit()`` (the frontier's transaction) runs, then they are renamed, the
crawl log last. A segment is complete when its crawl-log file exists; on restart the files of
later segments are deleted and the frontier gives back what they held (``Frontier.recover``).
A segment is closed every ``segment_pages`` pages, ``segment_rows`` rows or ``segment_seconds``.

``MemoryOutput`` keeps rows in a list and pages in one WARC stream: a crawl that is not resumed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import json
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pagecat.etl.crawl.fetch import HttpResponse
from pagecat.etl.crawl.warc import WarcShardWriter
from pagecat.runs import RunDir
from pagecat.schemas import CRAWL_LOG, REJECTS

SEGMENT_ROWS = 20_000  # rows per segment at most: bounds the rows held in memory
_SEG = re.compile(r"seg-(\d+)\.")


class MemoryOutput:
    """Rows in ``rows``; pages in one WARC stream ``warc_out`` (or nowhere) named ``warc_name``."""

    def __init__(self, warc_out: BinaryIO | None = None, warc_name: str = ""):
        self.rows: list[dict] = []
        self.warc = WarcShardWriter(warc_out, warc_name) if warc_out is not None else None
        self.warc_name = warc_name
        self.seg = 0

    def write_page(self, resp: HttpResponse, fetched_at: str, **fields) -> tuple[str | None, int | None]:
        if self.warc is None:
            return None, None
        return self.warc_name, self.warc.write_page(resp, fetched_at, **fields)

    def write_conversion(self, url: str, html: str, fetched_at: str, refers_to: str) -> None:
        if self.warc is not None:
            self.warc.write_conversion(url, html, fetched_at, refers_to)

    def add_row(self, row: dict) -> None:
        self.rows.append(row)

    def due(self) -> bool:
        return False

    def flush(self, commit: Callable[[], None]) -> None:
        commit()

    def close(self) -> None:
        pass


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (another C library)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system. A crawl allocates and frees page bodies,
    parse trees and a segment's rows over and over; glibc keeps what was freed mapped, so without
    this the process's resident memory creeps up to its worst moment and stays there. Arrow's
    buffers are on that heap too while a shard runs (``shard.system_arrow_pool``)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def rows_table(rows: list[dict], schema):
    """Rows (dicts keyed by ``schema``'s names; a missing key is null) as a table of ``schema``."""
    return json_lines_table([json.dumps(r) for r in rows], schema)


def json_lines_table(lines: list[str], schema):
    """Rows as JSON objects, one a line, as a table of ``schema``.

    Built by Arrow's JSON reader, not ``pa.Table.from_pylist``: every ``pa.array`` of a Python
    list imports pandas (pyarrow asks it whether the list is "array-like"), which would add about
    50 MB to each crawl process for nothing. The JSON round trip is exact for these types.
    """
    import pyarrow.json as pj

    if not lines:
        return schema.empty_table()
    data = "\n".join(lines).encode("utf-8")
    return pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(use_threads=False, block_size=len(data) + 1),
                        parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))


def segment_number(path: str) -> int:
    m = _SEG.search(path.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else -1


class SegmentedOutput:
    """A shard's segments in the run directory ``run`` under folder ``shard`` (e.g. shard-0003).

    ``seeds_source`` is what a reject of a seed names as its source. Call ``recover()`` first.
    """

    def __init__(self, run: RunDir, shard: str, seeds_source: str, segment_pages: int = 500,
                 segment_seconds: float = 60.0, segment_rows: int = SEGMENT_ROWS):
        self.run, self.shard, self.seeds_source = run, shard, seeds_source
        self.segment_pages, self.segment_seconds, self.segment_rows = segment_pages, segment_seconds, segment_rows
        self._tmpdir = tempfile.TemporaryDirectory(prefix="pagecat-crawl-")
        self.seg = 0
        # The open segment's crawl-log rows and rejects as JSON lines, made when a row is added
        # (what the Parquet writer reads): a flush never holds the dicts, their JSON and the table at once.
        self.rows: list[str] = []
        self.rejects: list[str] = []
        self.pages = 0
        self._warc_file: BinaryIO | None = None
        self.warc: WarcShardWriter | None = None
        self._opened = time.monotonic()

    # -- paths -----------------------------------------------------------------------------
    def _paths(self, seg: int) -> dict[str, str]:
        name = f"seg-{seg:05d}"
        return {"warc": self.run.path("raw", self.shard, f"{name}.warc.gz"),
                "rejects": self.run.path("rejects", "crawl", self.shard, f"{name}.parquet"),
                "log": self.run.path("crawl_log", self.shard, f"{name}.parquet")}

    def warc_name(self, seg: int) -> str:
        return f"raw/{self.shard}/seg-{seg:05d}.warc.gz"

    def log_files(self) -> list[str]:
        return self.run.list_files("crawl_log", self.shard, suffix=".parquet")

    def last_complete(self) -> int:
        """The last complete segment (-1 when none)."""
        return max((segment_number(p) for p in self.log_files()), default=-1)

    def recover(self, fresh: bool = False) -> int:
        """Delete what incomplete segments left (or every segment when ``fresh``); open the next
        segment. Returns the last complete segment number (-1 when none)."""
        last = -1 if fresh else self.last_complete()
        for folder in (("raw", self.shard), ("rejects", "crawl", self.shard), ("crawl_log", self.shard)):
            p = self.run.path(*folder)
            if not self.run.fs.exists(p):
                continue
            for f in self.run.fs.find(p):
                name = f.rsplit("/", 1)[-1]
                if ".tmp-" in name or segment_number(name) > last:
                    self.run.fs.rm(f)
        self.seg = last + 1
        return last

    # -- writing ---------------------------------------------------------------------------
    def _open_warc(self) -> WarcShardWriter:
        if self.warc is None:
            local = Path(self._tmpdir.name) / f"seg-{self.seg:05d}.warc.gz"
            self._warc_file = open(local, "wb")  # noqa: SIM115 - closed by flush
            self.warc = WarcShardWriter(self._warc_file, self.warc_name(self.seg))
        return self.warc

    def write_page(self, resp: HttpResponse, fetched_at: str, **fields) -> tuple[str, int]:
        offset = self._open_warc().write_page(resp, fetched_at, **fields)
        self.pages += 1
        return self.warc_name(self.seg), offset

    def write_conversion(self, url: str, html: str, fetched_at: str, refers_to: str) -> None:
        self._open_warc().write_conversion(url, html, fetched_at, refers_to)

    def add_row(self, row: dict) -> None:
        self.rows.append(json.dumps(row))
        if row["outcome"] != "fetched":
            self.rejects.append(json.dumps({"source": row["referrer"] or self.seeds_source, "stage": "crawl",
                                            "reason": f"{row['outcome']}:{row['reason']}", "record": row["url"]}))

    def due(self) -> bool:
        if not self.rows:
            return False
        return (self.pages >= self.segment_pages or len(self.rows) >= self.segment_rows
                or time.monotonic() - self._opened >= self.segment_seconds)

    def _stage(self, path: str, data: bytes | None = None, local: str | None = None) -> str:
        """Write to a temporary name beside ``path``; return that name."""
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        self.run.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        if local is not None:
            self.run.fs.put_file(local, tmp)
        else:
            with self.run.fs.open(tmp, "wb") as f:
                f.write(data)
        return tmp

    @staticmethod
    def _parquet(lines: list[str], schema) -> bytes:
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(json_lines_table(lines, schema), buf, compression="zstd")
        return buf.getvalue()

    def flush(self, commit: Callable[[], None]) -> None:
        """Complete the open segment (if it holds anything) and open the next one. ``commit``
        makes the frontier's state durable; it runs after the files are staged, before they are
        renamed, so a kill anywhere leaves segments and frontier that ``recover`` reconciles."""
        self._opened = time.monotonic()
        if not self.rows:
            commit()
            return
        paths = self._paths(self.seg)
        staged = []
        if self.warc is not None:
            self._warc_file.close()
            staged.append((self._stage(paths["warc"], local=self._warc_file.name), paths["warc"]))
            Path(self._warc_file.name).unlink()
        if self.rejects:
            staged.append((self._stage(paths["rejects"], self._parquet(self.rejects, REJECTS)), paths["rejects"]))
        staged.append((self._stage(paths["log"], self._parquet(self.rows, CRAWL_LOG)), paths["log"]))
        commit()
        for tmp, final in staged:  # the crawl log last: it marks the segment complete
            self.run.fs.mv(tmp, final)
        self.seg += 1
        self.rows, self.rejects, self.pages, self.warc, self._warc_file = [], [], 0, None, None
        release_free_memory()

    def close(self) -> None:
        if self._warc_file is not None:
            self._warc_file.close()
        self._tmpdir.cleanup()
