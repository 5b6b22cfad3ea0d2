"""The parse stage: WARC files, html folders and tables in, one Parquet pages part per input out.

Per part: a reader yields raw records; record filters reject what is not an HTML page
(HTTP errors, images, ...); ``PageBuilder`` decodes and extracts the main text and keys; page
filters reject pages with too little text. Every record in is a page or a reject row
(``rejects/parse/<part id>.parquet``), so ``in = out + rejected``. Pages stream to disk in
batches of ``parse.batch_rows``: a worker never holds a whole file's HTML.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pagecat.config import Config
from pagecat.errors import UsageError
from pagecat.runs import RunDir
from pagecat.schemas import PAGES, REJECTS
from pagecat.stage import Part, Stage
from pagecat.urls import host_of, registered_domain

from .extract import (
    HtmlExtractor,
    collapse,
    count_words,
    decode_html,
    sha1_hex,
    text_hash,
)
from .readers import SUPPORTED, HtmlFileReader, RawRecord, TableReader, Unreadable, WarcReader, input_kind

HTML_FILES_PER_PART = 500
HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")
_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b")


# -- filters -----------------------------------------------------------------------------

class HttpStatusFilter:
    """Rejects a response whose HTTP status is not 2xx (``http_status_404``)."""

    def reason(self, record: RawRecord) -> str | None:
        s = record.http_status
        return None if s is None or 200 <= s < 300 else f"http_status_{s}"


class HtmlContentFilter:
    """Rejects what is not HTML: a non-HTML Content-Type, or binary bytes when there is none."""

    def reason(self, record: RawRecord) -> str | None:
        if record.is_text or isinstance(record.content, str):
            return None
        mime = (record.content_type or "").split(";")[0].strip().lower()
        if mime:
            return None if mime in HTML_TYPES else f"not_html ({mime})"
        head = record.content[:1024]
        if head.startswith(_BINARY_MAGIC) or b"\x00" in head:
            return "not_html (binary)"
        return None


class TextLengthFilter:
    """Rejects a page whose main text is empty or has fewer than ``min_words`` words."""

    def __init__(self, min_words: int = 5):
        self.min_words = min_words

    def reason(self, page: dict) -> str | None:
        n = page["word_count"]
        if n == 0:
            return "empty_text"
        return f"too_few_words ({n} < {self.min_words})" if n < self.min_words else None


# -- pages -------------------------------------------------------------------------------

class PageBuilder:
    """A raw record to a row of ``PAGES``: decode, extract title and main text, compute keys."""

    def __init__(self, extractor: HtmlExtractor | None = None):
        self.extractor = extractor or HtmlExtractor()

    def build(self, record: RawRecord) -> dict[str, Any]:
        if record.is_text:
            title = None
            text = "\n".join(line for line in (collapse(x) for x in str(record.content).splitlines()) if line)
        else:
            html = record.content
            if isinstance(html, bytes):
                html, _ = decode_html(html, record.content_type)
            extracted = self.extractor.extract(html)
            title, text = extracted.title, extracted.text
        host = host_of(record.url) or None if record.url and not record.url.startswith("file:") else None
        key = record.url or f"{record.source}#{record.offset}"
        return {
            "page_id": sha1_hex(key), "url": record.url, "host": host,
            "domain": registered_domain(host) if host else None,
            "title": title, "text": text, "word_count": count_words(text), "text_hash": text_hash(text),
            "http_status": record.http_status, "fetched_at": record.fetched_at, "seed_id": record.seed_id,
            "depth": record.depth, "source": record.source, "source_offset": record.offset,
        }


# -- writing -----------------------------------------------------------------------------

class PartWriter:
    """Rows into one Parquet part, ``batch_rows`` at a time, under a temporary name renamed on close.

    ``write_empty``: write the part even with no rows (pages: one output per input part);
    otherwise no file appears until a row does (rejects).
    """

    def __init__(self, run: RunDir, path: str, schema, batch_rows: int, write_empty: bool = True):
        self.run, self.path, self.schema = run, path, schema
        self.batch_rows = max(1, batch_rows)
        self.write_empty = write_empty
        self.rows: list[dict] = []
        self.count = 0
        self._tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        self._fh = self._writer = None

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= self.batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self.run.fs.makedirs(self.path.rsplit("/", 1)[0], exist_ok=True)
            self._fh = self.run.fs.open(self._tmp, "wb")
            self._writer = pq.ParquetWriter(self._fh, self.schema, compression="zstd")
        if self.rows:
            self._writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        if self.count or self.write_empty:
            self._flush()
        if self._writer is not None:
            self._writer.close()
            self._fh.close()
            self.run.fs.mv(self._tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._fh.close()
            if self.run.fs.exists(self._tmp):
                self.run.fs.rm(self._tmp)


# -- inputs ------------------------------------------------------------------------------

def _as_url(fs: fsspec.AbstractFileSystem, path: str) -> str:
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if proto in ("file", "local") else f"{proto}://{path}"


def expand_inputs(paths: list[str]) -> list[tuple[str, str]]:
    """``parse.inputs`` to (file, kind) pairs, folders opened, in sorted order of inputs.

    Raises UsageError for a missing path, a folder with no usable file, an unknown file type.
    """
    out: list[tuple[str, str]] = []
    for given in sorted(set(paths)):
        fs, p = fsspec.core.url_to_fs(given)
        if not fs.exists(p):
            raise UsageError(f"parse.inputs: {given} not found; fix the path (or leave parse.inputs empty "
                             "to parse the crawl output)")
        if fs.isdir(p):
            files = [(f, input_kind(f)) for f in sorted(fs.find(p)) if ".tmp-" not in f.rsplit("/", 1)[-1]]
            usable = [(_as_url(fs, f), k) for f, k in files if k]
            if not usable:
                raise UsageError(f"parse.inputs: folder {given} holds no usable file; put {SUPPORTED} "
                                 "files in it or name another folder")
            out.extend(usable)
        else:
            kind = input_kind(p)
            if kind is None:
                raise UsageError(f"parse.inputs: {given} is not a supported input; use {SUPPORTED}")
            out.append((_as_url(fs, p), kind))
    return out


def group_parts(files: list[tuple[str, str]]) -> list[Part]:
    """One part per WARC or table file; html files in chunks of one folder each."""
    groups: list[tuple[str, list[str]]] = []
    for path, kind in files:
        folder = path.rsplit("/", 1)[0]
        last = groups[-1] if groups else None
        if (kind == "html" and last and last[0] == "html" and len(last[1]) < HTML_FILES_PER_PART
                and last[1][0].rsplit("/", 1)[0] == folder):
            last[1].append(path)
        else:
            groups.append((kind, [path]))
    return [Part(id=f"part-{i:05d}", inputs=paths, args={"kind": kind}) for i, (kind, paths) in enumerate(groups)]


def make_table_reader(cfg: Config) -> TableReader:
    p = cfg.parse
    return TableReader(text_column=p.text_column, html_column=p.html_column, url_column=p.url_column,
                       batch_rows=p.batch_rows)


def read_part_inputs(part: Part, cfg: Config) -> Iterator[RawRecord | Unreadable]:
    """The raw records of a part's input files, in order."""
    kind = part.args["kind"]
    for url in part.inputs:
        fs, path = fsspec.core.url_to_fs(url)
        if kind == "warc":
            items = WarcReader().read(path, fs)
        elif kind == "html":
            items = HtmlFileReader().read(path, fs)
        else:
            items = make_table_reader(cfg).read(path, fs)
        for item in items:
            item.source = url  # as given: a URL for remote files, so it can be opened again
            yield item


def parse_records(items, builder: PageBuilder, record_filters: list, page_filters: list,
                  pages: PartWriter, rejects: PartWriter) -> dict[str, int]:
    """Route every item to ``pages`` or ``rejects``; returns the part's counts."""
    counts = {"in": 0, "out": 0, "rejected": 0, "dropped": 0}

    def reject(source: str, offset: int, reason: str, record: str | None) -> None:
        rejects.add({"source": f"{source}#{offset}", "stage": "parse", "reason": reason, "record": record})
        counts["rejected"] += 1

    for item in items:
        counts["in"] += 1
        if isinstance(item, Unreadable):
            reject(item.source, item.offset, item.reason, item.record)
            continue
        reason = next((r for f in record_filters if (r := f.reason(item))), None)
        if reason is None:
            try:
                page = builder.build(item)
            except Exception as e:  # noqa: BLE001 - one bad page is a reject, not a failed part
                reason = f"extract_failed: {type(e).__name__}: {e}"[:300]
            else:
                reason = next((r for f in page_filters if (r := f.reason(page))), None)
        if reason is not None:
            reject(item.source, item.offset, reason, item.url)
            continue
        pages.add(page)
        counts["out"] += 1
    return counts


# -- the stage ---------------------------------------------------------------------------

class ParseStage(Stage):
    """Raw web content to ``pages/<part id>.parquet`` (schema PAGES)."""

    name = "parse"
    sections = ("parse",)
    outputs = ("pages",)
    unit = "records"

    def upstream_stages(self, cfg: Config) -> tuple[str, ...]:
        return () if cfg.parse.inputs else ("crawl",)

    def external_inputs(self, cfg: Config, run: RunDir) -> list[str]:
        return list(cfg.parse.inputs)

    def check(self, cfg: Config, run: RunDir) -> None:
        if cfg.parse.min_words < 0:
            raise UsageError(f"config field parse.min_words: must be 0 or more, got {cfg.parse.min_words}")
        if cfg.parse.batch_rows < 1:
            raise UsageError(f"config field parse.batch_rows: must be positive, got {cfg.parse.batch_rows}")
        reader = make_table_reader(cfg)
        for url, kind in expand_inputs(cfg.parse.inputs):
            if kind == "table":
                fs, path = fsspec.core.url_to_fs(url)
                reader.content_column(path, fs)

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        if cfg.parse.inputs:
            files = expand_inputs(cfg.parse.inputs)
        else:
            files = [(_as_url(run.fs, f), "warc") for f in run.list_files("raw", suffix=".warc.gz")]
        return group_parts(files)

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        pages = PartWriter(run, run.path("pages", f"{part.id}.parquet"), PAGES, cfg.parse.batch_rows)
        rejects = PartWriter(run, run.path("rejects", "parse", f"{part.id}.parquet"), REJECTS,
                             cfg.parse.batch_rows, write_empty=False)
        try:
            counts = parse_records(read_part_inputs(part, cfg), PageBuilder(),
                                   [HttpStatusFilter(), HtmlContentFilter()],
                                   [TextLengthFilter(cfg.parse.min_words)], pages, rejects)
            pages.close()
            rejects.close()
        except BaseException:
            pages.abort()
            rejects.abort()
            raise
        return counts
