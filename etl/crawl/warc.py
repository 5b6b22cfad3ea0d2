"""Writing fetched pages to a gzipped WARC file (ISO 28500, WARC/1.1) with warcio.

Each page is a ``request`` record and a ``response`` record (linked by WARC-Concurrent-To), each
its own gzip member, so a reader can seek straight to a response by its offset. The response
carries the crawl's own fields, so parse needs no join with the crawl log::

    WARC-Pagecat-Seed-Id, WARC-Pagecat-Depth, WARC-Pagecat-Rank,
    WARC-Pagecat-Link-Text (percent-encoded UTF-8 outside printable ASCII, and '%' itself)

Bodies are stored as decoded (aiohttp removes gzip/br content encodings), as Common Crawl does:
the original Content-Encoding, Transfer-Encoding and Content-Length headers are kept renamed to
``X-Crawler-<name>``, and Content-Length is set to the stored length. A body cut at max_bytes has
``WARC-Truncated: length``. With JavaScript rendering, the DOM a browser built follows the page as a
``conversion`` record (``WARC-Refers-To`` the response, ``WARC-Pagecat-Rendered: chromium``).
"""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

import pagecat
from pagecat.etl.crawl.fetch import HttpResponse

RENAMED_HEADERS = ("content-encoding", "transfer-encoding", "content-length")
# Printable ASCII except '%', so the encoding can be undone with urllib.parse.unquote.
_HEADER_SAFE = "".join(chr(c) for c in range(32, 127) if chr(c) != "%")
# zlib's default level: within 0.5 % of warcio's level 9 in size on WebKB pages, a third less CPU.
GZIP_LEVEL = 6


class GzipMembers:
    """A binary file wrapper that makes what is written between two ``flush()`` calls one gzip
    member: given to warcio's writer (with its own gzip off) it yields one member per record.
    The file itself is not flushed per record: the segment is complete when the file is closed."""

    def __init__(self, out: BinaryIO, level: int = GZIP_LEVEL):
        self.out, self.level = out, level
        self._z = self._new()

    def _new(self):
        return zlib.compressobj(self.level, zlib.DEFLATED, zlib.MAX_WBITS + 16)

    def write(self, data: bytes) -> None:
        self.out.write(self._z.compress(data))

    def flush(self) -> None:
        self.out.write(self._z.flush())
        self._z = self._new()


def encode_header_value(text: str) -> str:
    """A value safe in a WARC header line: 'Über uns' -> '%C3%9Cber uns'."""
    return quote(" ".join(text.split()), safe=_HEADER_SAFE)


def _warc_date(iso: str) -> str:
    return iso if iso.endswith("Z") else iso + "Z"


class WarcShardWriter:
    """Appends pages to an open binary file; ``write_page`` returns the response record's offset.

    ``filename`` is what the warcinfo record names (the file's final name).
    """

    def __init__(self, out: BinaryIO, filename: str, info: dict[str, str] | None = None):
        self.out = out
        self.writer = WARCWriter(GzipMembers(out), gzip=False, warc_version="WARC/1.1")
        fields = {"software": f"pagecat/{pagecat.__version__} (aiohttp, warcio)", "format": "WARC/1.1"}
        fields.update(info or {})
        self.writer.write_record(self.writer.create_warcinfo_record(filename, fields))
        self.records = 0
        self.last_response_id = ""

    def _response_record(self, resp: HttpResponse, fetched_at: str, extra: dict[str, str]):
        headers = []
        for k, v in resp.headers:
            headers.append((f"X-Crawler-{k}", v) if k.lower() in RENAMED_HEADERS else (k, v))
        headers.append(("Content-Length", str(len(resp.body))))
        status = StatusAndHeaders(f"{resp.status} {resp.reason}".strip(), headers, protocol=resp.version)
        warc_headers = {"WARC-Date": _warc_date(fetched_at), **extra}
        if resp.truncated:
            warc_headers["WARC-Truncated"] = "length"
        return self.writer.create_warc_record(resp.url, "response", payload=io.BytesIO(resp.body),
                                              length=len(resp.body), http_headers=status,
                                              warc_headers_dict=warc_headers)

    def _request_record(self, resp: HttpResponse, fetched_at: str, response_id: str):
        p = urlsplit(resp.url)
        target = (p.path or "/") + (f"?{p.query}" if p.query else "")
        status = StatusAndHeaders(f"GET {target} {resp.version}", list(resp.request_headers),
                                  is_http_request=True)
        return self.writer.create_warc_record(resp.url, "request", http_headers=status, warc_headers_dict={
            "WARC-Date": _warc_date(fetched_at), "WARC-Concurrent-To": response_id})

    def write_page(self, resp: HttpResponse, fetched_at: str, *, seed_id: str, depth: int, rank: int,
                   link_text: str = "") -> int:
        """Write the request and response records of one page; returns the response's offset.
        ``last_response_id`` is then the response's WARC-Record-ID."""
        extra = {"WARC-Pagecat-Seed-Id": encode_header_value(seed_id), "WARC-Pagecat-Depth": str(depth),
                 "WARC-Pagecat-Rank": str(rank), "WARC-Pagecat-Link-Text": encode_header_value(link_text)}
        response = self._response_record(resp, fetched_at, extra)
        request = self._request_record(resp, fetched_at, response.rec_headers.get_header("WARC-Record-ID"))
        offset = self.out.tell()
        self.last_response_id = response.rec_headers.get_header("WARC-Record-ID")
        self.writer.write_record(response)
        self.writer.write_record(request)
        self.records += 2
        return offset

    def write_conversion(self, url: str, html: str, fetched_at: str, refers_to: str) -> int:
        """A ``conversion`` record of the page's DOM after a browser ran its scripts, linked to
        its response by WARC-Refers-To; returns its offset."""
        data = html.encode("utf-8")
        record = self.writer.create_warc_record(url, "conversion", payload=io.BytesIO(data), length=len(data),
                                                warc_headers_dict={
                                                    "WARC-Date": _warc_date(fetched_at),
                                                    "WARC-Refers-To": refers_to,
                                                    "Content-Type": "text/html; charset=utf-8",
                                                    "WARC-Pagecat-Rendered": "chromium"})
        offset = self.out.tell()
        self.writer.write_record(record)
        self.records += 1
        return offset
