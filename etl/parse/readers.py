"""Readers: one input file (or a chunk of html files) in, raw records out, datatrove-style.

Every reader yields, in file order, ``RawRecord`` for what it could read and ``Unreadable``
for what it could not (with the offset or row and the reason), so parse can count every
record in as a page or a reject. Readers open files through fsspec, so inputs can be local
paths or any fsspec URL.

- ``WarcReader``: WARC / WARC.gz response records via warcio.
- ``HtmlFileReader``: .html/.htm files, one record each.
- ``TableReader``: CSV / JSONL / Parquet rows with a text or an html column, in chunks.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

import fsspec
import pyarrow.parquet as pq

from pagecat.data.webkb import split_http_response
from pagecat.errors import UsageError

WARC_SUFFIXES = (".warc", ".warc.gz")
HTML_SUFFIXES = (".html", ".htm")
CSV_SUFFIXES = (".csv", ".csv.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")
PARQUET_SUFFIXES = (".parquet",)
TABLE_SUFFIXES = CSV_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES
SUPPORTED = "WARC (.warc, .warc.gz), HTML (.html, .htm, or a folder of them), CSV, JSONL or Parquet"


def input_kind(path: str) -> str | None:
    """warc | html | table for a supported file name, else None."""
    name = path.lower()
    for kind, suffixes in (("warc", WARC_SUFFIXES), ("html", HTML_SUFFIXES), ("table", TABLE_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    return None


@dataclass
class RawRecord:
    """One readable record, before decoding and extraction."""

    source: str                      # the input file
    offset: int                      # WARC record offset, table row, or 0 for an html file
    url: str | None
    content: bytes | str     # raw bytes to decode, or text already decoded
    is_text: bool = False            # plain text (a table's text column): no HTML extraction
    content_type: str | None = None  # HTTP Content-Type, when known
    http_status: int | None = None
    fetched_at: str | None = None
    seed_id: str | None = None
    depth: int | None = None
    rank: int | None = None          # crawl: the link's rank on its site
    link_text: str | None = None     # crawl: the text of the link that led here


@dataclass
class Unreadable:
    """A record (or the rest of a file) that could not be read."""

    source: str
    offset: int
    reason: str
    record: str | None = None        # its URL or id, when known


ReadItem = RawRecord | Unreadable


def _short(e: Exception) -> str:
    return f"{type(e).__name__}: {e}"[:300]


class WarcReader:
    """Response records of a WARC file (gzip or not), with their HTTP status and headers.

    A record whose block ends before its Content-Length (a truncated gzip) or that cannot be
    parsed ends the file: it is yielded as ``Unreadable`` and the records before it are kept.
    Other record types (request, metadata, warcinfo) are not records of the page dataset.

    Parameters
    ----------
    max_bytes : int
        A body longer than this is cut (the rest is read and discarded), bounding memory.
    """

    def __init__(self, max_bytes: int = 10_000_000):
        self.max_bytes = max_bytes

    def read(self, path: str, fs: fsspec.AbstractFileSystem) -> Iterator[ReadItem]:
        gz = path.lower().endswith(".gz")
        with fs.open(path, "rb") as fh:
            base, n_records, failing = 0, 0, False
            while base is not None:
                fh.seek(base)
                for item in self._read_from(fh, path, base):
                    if isinstance(item, Unreadable):
                        # One reject per broken stretch: what is skipped while searching the next
                        # good record belongs to it.
                        if not failing:
                            yield item
                        failing = True
                        base = _next_record_start(fh, item.offset + 1, gz)
                        break
                    n_records += 1
                    failing = False
                    if isinstance(item, RawRecord):
                        yield item
                else:
                    base = None
            if n_records == 0 and not failing:
                yield Unreadable(path, 0, "empty_file: no WARC records")

    def _read_from(self, fh, path: str, base: int) -> Iterator[ReadItem | None]:
        """Records from ``base`` on; ends after the first Unreadable. ``None`` for a record that is no page."""
        from warcio.archiveiterator import ArchiveIterator

        iterator = ArchiveIterator(fh)
        while True:
            try:
                record = next(iterator)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 - a record that cannot be parsed: a reject, then resync
                # warcio has moved its offset to the start of the record it failed on.
                yield Unreadable(path, base + iterator.offset, f"unreadable_record: {_short(e)}")
                return
            start = base + iterator.offset  # this record's start, until its end is read
            if record.format != "warc":  # warcio reads anything as an ARC record; a .warc is not one
                yield Unreadable(path, start, "unreadable_record: not a WARC record")
                return
            if not (record.rec_headers.get_header("Content-Length") or "").strip().isdigit():
                # Mandatory in WARC; warcio leaves it out of a header block cut short.
                yield Unreadable(path, start, "unreadable_record: no Content-Length (truncated header?)")
                return
            is_response = record.rec_type == "response"
            url = (record.rec_headers.get_header("WARC-Target-URI") or "").strip("<> ") or None
            body, failed = b"", None
            if is_response:
                try:
                    body = record.content_stream().read(self.max_bytes)
                except Exception as e:  # noqa: BLE001 - a bad chunked/gzip body: this record only
                    failed = f"unreadable_record: {_short(e)}"
            try:
                while record.raw_stream.read(1 << 16):  # drain a cut body so the next record lines up
                    pass
            except Exception as e:  # noqa: BLE001 - the stream itself is broken: resync after it
                yield Unreadable(path, start, f"unreadable_record: {_short(e)}", url)
                return
            # warcio ends a truncated gzip member quietly: the block is short of its Content-Length.
            missing = getattr(record.raw_stream, "limit", 0)
            if missing > 0:
                length = record.length or 0
                yield Unreadable(path, start, f"unreadable_record: truncated ({length - missing} of "
                                              f"{length} bytes)", url)
                return
            if failed:
                yield Unreadable(path, start, failed, url)
                return
            yield self._record(path, base + iterator.get_record_offset(), url, record, body) if is_response else None

    @staticmethod
    def _record(path: str, offset: int, url: str | None, record, body: bytes) -> RawRecord:
        """A response record; one without HTTP headers (dns:, ...) keeps its WARC Content-Type."""
        headers, http = record.rec_headers, record.http_headers
        status, content_type = None, headers.get_header("Content-Type")
        if http is not None:
            content_type = http.get_header("Content-Type")
            code = http.get_statuscode()
            status = int(code) if code and code.isdigit() else None
        # pagecat's crawler writes these; the seed id is percent-encoded to stay a valid header.
        seed_id = headers.get_header("WARC-Pagecat-Seed-Id")
        link_text = headers.get_header("WARC-Pagecat-Link-Text")
        return RawRecord(source=path, offset=offset, url=url, content=body, content_type=content_type,
                         http_status=status, fetched_at=headers.get_header("WARC-Date"),
                         seed_id=unquote(seed_id) if seed_id else None,
                         depth=_int_header(headers, "WARC-Pagecat-Depth"),
                         rank=_int_header(headers, "WARC-Pagecat-Rank"),
                         link_text=unquote(link_text) if link_text else None)


def _next_record_start(fh, after: int, gz: bool, chunk: int = 1 << 20) -> int | None:
    """Offset of the next gzip member (``.warc.gz``) or line starting ``WARC/1.`` at or after ``after``;
    None when the file has none."""
    marker = b"\x1f\x8b\x08" if gz else b"\nWARC/1."
    pos = after if gz else after - 1  # an uncompressed record starts after a newline
    while True:
        fh.seek(max(pos, 0))
        data = fh.read(chunk + len(marker))
        if len(data) < len(marker):
            return None
        i = data.find(marker)
        if i != -1:
            return max(pos, 0) + i + (0 if gz else 1)
        pos = max(pos, 0) + chunk


def _int_header(headers, name: str) -> int | None:
    value = (headers.get_header(name) or "").strip()
    return int(value) if value.lstrip("-").isdigit() and len(value) < 10 else None


class HtmlFileReader:
    """HTML files, one record each; url is the file's URI. A file that starts with archived HTTP
    headers (as WebKB's do) has them cut off, and its Content-Type read from them."""

    def __init__(self, max_bytes: int = 10_000_000):
        self.max_bytes = max_bytes

    def read(self, path: str, fs: fsspec.AbstractFileSystem) -> Iterator[ReadItem]:
        try:
            with fs.open(path, "rb") as fh:
                raw = fh.read(self.max_bytes)
        except OSError as e:
            yield Unreadable(path, 0, f"unreadable_record: {_short(e)}", path)
            return
        headers, body = split_http_response(raw)
        lower = {k.lower(): v for k, v in headers.items()}
        yield RawRecord(source=path, offset=0, url=file_url(path, fs), content=body,
                        content_type=lower.get("content-type"))


def file_url(path: str, fs: fsspec.AbstractFileSystem) -> str:
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if proto in ("file", "local"):
        return "file://" + path if path.startswith("/") else path
    return f"{proto}://{path}"


class TableReader:
    """Rows of a CSV, JSONL or Parquet file, ``batch_rows`` at a time.

    The row's text comes from ``text_column`` (plain text) when the file has it, else from
    ``html_column`` (HTML to extract); ``url_column`` is optional. A row that cannot be read
    (a CSV row with the wrong number of fields, a line that is not a JSON object) is yielded as
    ``Unreadable`` with its row number; rows are numbered from 0 in file order, header excluded.
    """

    def __init__(self, text_column: str = "text", html_column: str = "html", url_column: str = "url",
                 batch_rows: int = 2000):
        self.text_column = text_column
        self.html_column = html_column
        self.url_column = url_column
        self.batch_rows = batch_rows

    # -- columns -------------------------------------------------------------------------
    def columns(self, path: str, fs: fsspec.AbstractFileSystem) -> list[str]:
        """Column names of a table file (CSV header, Parquet schema, keys of the first JSONL rows)."""
        name = path.lower()
        if name.endswith(PARQUET_SUFFIXES):
            with fs.open(path, "rb") as fh:
                return list(pq.ParquetFile(fh).schema_arrow.names)
        with self._open_text(path, fs) as fh:
            if name.endswith(CSV_SUFFIXES):
                return next(csv.reader(fh), [])
            keys: dict[str, None] = {}
            for i, line in enumerate(fh):
                if i >= 100:
                    break
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    keys.update(dict.fromkeys(obj))
            return list(keys)

    def content_column(self, path: str, fs: fsspec.AbstractFileSystem) -> tuple[str, bool]:
        """(column, is_text): the text column if present, else the html column; UsageError if neither."""
        cols = self.columns(path, fs)
        if self.text_column in cols:
            return self.text_column, True
        if self.html_column in cols:
            return self.html_column, False
        found = ", ".join(cols[:20]) or "none"
        raise UsageError(f"parse input {path}: no column {self.text_column!r} (parse.text_column) or "
                         f"{self.html_column!r} (parse.html_column); columns found: {found}. "
                         "Set parse.text_column or parse.html_column to the right one")

    # -- rows ----------------------------------------------------------------------------
    def read(self, path: str, fs: fsspec.AbstractFileSystem) -> Iterator[ReadItem]:
        if fs.size(path) == 0:
            yield Unreadable(path, 0, "empty_file: no rows")
            return
        column, is_text = self.content_column(path, fs)
        for row, item in self._rows(path, fs):
            if isinstance(item, Unreadable):
                yield item
                continue
            url = item.get(self.url_column)
            value = item.get(column)
            yield RawRecord(source=path, offset=row, url=str(url) if url not in (None, "") else None,
                            content="" if value is None else str(value), is_text=is_text)

    def _rows(self, path: str, fs) -> Iterator[tuple[int, dict | Unreadable]]:
        name = path.lower()
        if name.endswith(PARQUET_SUFFIXES):
            yield from self._parquet_rows(path, fs)
        elif name.endswith(CSV_SUFFIXES):
            yield from self._csv_rows(path, fs)
        else:
            yield from self._jsonl_rows(path, fs)

    def _parquet_rows(self, path, fs):
        with fs.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            wanted = [c for c in (self.text_column, self.html_column, self.url_column)
                      if c in pf.schema_arrow.names]
            row = 0
            for batch in pf.iter_batches(batch_size=self.batch_rows, columns=wanted):
                for rec in batch.to_pylist():
                    yield row, rec
                    row += 1

    def _csv_rows(self, path, fs):
        csv.field_size_limit(1 << 30)
        with self._open_text(path, fs) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                return
            row = 0
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:  # a NUL byte or a runaway quote: the rest is unreadable
                    yield row, Unreadable(path, row, f"unreadable_record: csv: {e}")
                    return
                if not values:  # a blank line is no record
                    continue
                if len(values) != len(header):
                    yield row, Unreadable(path, row, f"unreadable_record: csv row has {len(values)} fields, "
                                                     f"header has {len(header)}")
                else:
                    yield row, dict(zip(header, values))
                row += 1

    def _jsonl_rows(self, path, fs):
        with self._open_text(path, fs) as fh:
            for row, line in enumerate(fh):
                if not line.strip():  # a blank line is no record
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    yield row, Unreadable(path, row, f"unreadable_record: invalid JSON: {e}")
                    continue
                if not isinstance(obj, dict):
                    yield row, Unreadable(path, row, "unreadable_record: JSON line is not an object")
                    continue
                yield row, obj

    @staticmethod
    def _open_text(path: str, fs) -> io.TextIOBase:
        compression = "gzip" if path.lower().endswith(".gz") else None
        return fs.open(path, "rt", compression=compression, encoding="utf-8", errors="replace", newline="")
