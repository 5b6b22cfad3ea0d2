"""The parse stage: WARC files, html folders and tables in, Parquet pages parts out.

Per part (one input file, or a folder's chunk of html files): a reader yields raw records;
record filters reject what is not an HTML page (HTTP errors, images, binary bytes); the
``PageBuilder`` decodes and extracts text and metadata; page filters reject pages with a bad
URL or too little text. Every record in is a page or a reject row (``rejects/parse/<part
id>.parquet``), so ``in = out + rejected``. Pages stream to disk in batches of
``parse.batch_rows``: a worker never holds a whole file's HTML.

Layout: ``pages/<part id>.parquet`` (``parse.partition_by: none``), or hive-partitioned by a
hash of the registered domain, ``pages/bucket=NN/<part id>.parquet`` (``domain_bucket``);
name parts with ``RunDir.part_name("pages", path)``, which is unique in both layouts.
"""

from __future__ import annotations

from collections.abc import Iterator

import fsspec

from pagecat.config import Config
from pagecat.errors import UsageError
from pagecat.runs import RunDir
from pagecat.schemas import PAGES, REJECTS
from pagecat.stage import Part, Stage

from .extract import ExtractRejected
from .pages import HtmlContentFilter, HttpStatusFilter, PageBuilder, TextLengthFilter, UrlFilter
from .readers import SUPPORTED, HtmlFileReader, RawRecord, TableReader, Unreadable, WarcReader, input_kind
from .writer import PartitionedWriter, PartWriter, domain_bucket

HTML_FILES_PER_PART = 500


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
            items = WarcReader(max_bytes=cfg.parse.max_html_bytes).read(path, fs)
        elif kind == "html":
            items = HtmlFileReader(max_bytes=cfg.parse.max_html_bytes).read(path, fs)
        else:
            items = make_table_reader(cfg).read(path, fs)
        for item in items:
            item.source = url  # as given: a URL for remote files, so it can be opened again
            yield item


def parse_records(items, builder: PageBuilder, record_filters: list, page_filters: list,
                  pages: PartWriter | PartitionedWriter, rejects: PartWriter) -> dict[str, int]:
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
            except ExtractRejected as e:
                reason = str(e)
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
        p = cfg.parse
        if p.min_words < 0:
            raise UsageError(f"config field parse.min_words: must be 0 or more, got {p.min_words}")
        for key in ("batch_rows", "buckets", "row_group_rows", "max_html_bytes"):
            if getattr(p, key) < 1:
                raise UsageError(f"config field parse.{key}: must be positive, got {getattr(p, key)}")
        reader = make_table_reader(cfg)
        for url, kind in expand_inputs(p.inputs):
            if kind == "table":
                fs, path = fsspec.core.url_to_fs(url)
                if fs.size(path):  # an empty file is a reject (no rows), not a config error
                    reader.content_column(path, fs)

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        if cfg.parse.inputs:
            files = expand_inputs(cfg.parse.inputs)
        else:
            files = [(_as_url(run.fs, f), "warc") for f in run.list_files("raw", suffix=".warc.gz")]
        return group_parts(files)

    @staticmethod
    def pages_writer(part: Part, cfg: Config, run: RunDir) -> PartWriter | PartitionedWriter:
        p = cfg.parse
        if p.partition_by == "domain_bucket":
            return PartitionedWriter(run, "pages", part.id, PAGES, "bucket",
                                     lambda row: domain_bucket(row["domain"], p.buckets), p.batch_rows,
                                     p.row_group_rows, empty_value=domain_bucket(None, p.buckets))
        return PartWriter(run, run.path("pages", f"{part.id}.parquet"), PAGES, p.batch_rows,
                          row_group_rows=p.row_group_rows)

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        pages = ParseStage.pages_writer(part, cfg, run)
        rejects = PartWriter(run, run.path("rejects", "parse", f"{part.id}.parquet"), REJECTS,
                             cfg.parse.batch_rows, write_empty=False)
        builder = PageBuilder(keep_full_text=cfg.parse.keep_full_text)
        try:
            counts = parse_records(read_part_inputs(part, cfg), builder,
                                   [HttpStatusFilter(), HtmlContentFilter()],
                                   [UrlFilter(), TextLengthFilter(cfg.parse.min_words)], pages, rejects)
            pages.close()
            rejects.close()
        except BaseException:
            pages.abort()
            rejects.abort()
            raise
        return counts
