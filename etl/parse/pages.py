"""A raw record to a row of PAGES, and the filters that turn records and pages into rejects.

Record filters look at a record before any decoding (HTTP status, content type, binary bytes);
page filters look at the built page (text long enough). Each returns a reason or None.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

from pagecat.urls import canonicalize, host_of, registered_domain

from .decode import decode_html
from .extract import HtmlExtractor, collapse
from .keys import count_words, sha1_hex, text_hash
from .lang import detect_language
from .readers import RawRecord

HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml", "text/xml")
_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b", b"\x7fELF", b"RIFF",
                 b"\x00\x00\x01\x00", b"OggS", b"ID3", b"\xd0\xcf\x11\xe0")


_CONTROL_BYTES = bytes([*range(0, 9), *range(14, 32)])


def looks_binary(head: bytes) -> bool:
    """A known binary signature, a NUL byte, or mostly control bytes in the first bytes of a body."""
    if head.startswith(_BINARY_MAGIC) or b"\x00" in head:
        return True
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return len(head) > 0 and control * 10 > len(head)


class HttpStatusFilter:
    """Rejects a response whose HTTP status is not 2xx (``http_status_404``)."""

    def reason(self, record: RawRecord) -> str | None:
        s = record.http_status
        return None if s is None or 200 <= s < 300 else f"http_status_{s}"


class HtmlContentFilter:
    """Rejects what is not HTML: a non-HTML Content-Type, or binary bytes (whatever the type says)."""

    def reason(self, record: RawRecord) -> str | None:
        if record.is_text or isinstance(record.content, str):
            return None
        mime = (record.content_type or "").split(";")[0].strip().lower()
        if mime and mime not in HTML_TYPES:
            return f"not_html ({mime})"
        if looks_binary(record.content[:1024]):
            return f"not_html (binary{' served as ' + mime if mime else ''})"
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


class UrlFilter:
    """Rejects a web record whose URL does not parse to a host (tables and files may have no URL)."""

    def reason(self, page: dict) -> str | None:
        url = page["url"]
        if url is None or url.startswith("file:"):
            return None
        return None if page["host"] else f"bad_url ({url[:100]})"


def url_path(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return None


class PageBuilder:
    """A raw record to a row of ``PAGES``: decode, extract text and metadata, compute keys.

    Parameters
    ----------
    extractor : HtmlExtractor, optional
    keep_full_text : bool
        Store all visible text as well (``full_text``); off, the column is null.
    """

    def __init__(self, extractor: HtmlExtractor | None = None, keep_full_text: bool = True):
        self.extractor = extractor or HtmlExtractor()
        self.keep_full_text = keep_full_text

    def build(self, record: RawRecord) -> dict[str, Any]:
        page: dict[str, Any] = {"title": None, "description": None, "canonical_url": None, "headings": None,
                                "outlinks": None, "full_text": None}
        if record.is_text:
            text = "\n".join(line for line in (collapse(x) for x in str(record.content).splitlines()) if line)
            lang_hint = None
        else:
            html = record.content
            if isinstance(html, bytes):
                text, codec = decode_html(html, record.content_type)
                # The parser reads UTF-8 bytes: a body that decoded as UTF-8 (ASCII under no other
                # declared charset included) goes as it came, without a second encoding of its text.
                if codec != "utf-8":
                    html = text
            ex = self.extractor.extract(html)
            text = ex.text
            lang_hint = ex.lang
            canonical = None
            if ex.canonical and record.url:
                try:
                    canonical = canonicalize(urljoin(record.url, ex.canonical))
                except ValueError:
                    canonical = None
            page.update(title=ex.title, description=ex.description, canonical_url=canonical,
                        headings=ex.headings, outlinks=ex.outlinks,
                        full_text=ex.full_text if self.keep_full_text else None)
        url = record.url
        host = host_of(url) or None if url and not url.startswith("file:") else None
        key = url or f"{record.source}#{record.offset}"
        language = detect_language(text)
        if language is None and lang_hint:
            language = lang_hint.split("-")[0].strip().lower()[:3] or None
        page.update({
            "page_id": sha1_hex(key), "url": url, "host": host,
            "domain": registered_domain(host) if host else None, "path": url_path(url),
            "text": text, "word_count": count_words(text), "text_hash": text_hash(text),
            "http_status": record.http_status, "fetched_at": record.fetched_at, "seed_id": record.seed_id,
            "depth": record.depth, "rank": record.rank, "link_text": record.link_text,
            "source": record.source, "source_offset": record.offset, "language": language,
        })
        return page
