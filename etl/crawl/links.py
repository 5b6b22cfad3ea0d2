"""What a page means to the crawler: the links it offers and which to follow first.

The engine fetches; a ``LinkExtractor`` turns a fetched page into ``Link``s and a
``LinkRanker`` orders them. Both are plain objects passed to the engine, so another policy
(a sitemap reader, a JS-rendered DOM) replaces them without touching fetching or politeness.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urljoin, urlsplit

import lxml.etree
import lxml.html

MAX_LINK_TEXT = 300  # characters of anchor text kept per link
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Link:
    """One link of a page: ``url`` is absolute but not yet canonical (it may be malformed)."""

    url: str
    text: str
    position: int  # document order on its page, from 0


class LinkExtractor(Protocol):
    def __call__(self, url: str, body: bytes, content_type: str) -> list[Link]: ...


def _charset(content_type: str) -> str | None:
    m = re.search(r"charset=[\"']?([\w.:-]+)", content_type or "", re.IGNORECASE)
    return m.group(1) if m else None


class HtmlLinkExtractor:
    """``<a href>`` and ``<area href>`` links of an HTML page, resolved against ``<base href>``.

    Called as ``extractor(url, body, content_type) -> list[Link]``; a page lxml cannot parse
    has no links. ``href`` values that cannot be joined are kept as they are, so the crawl log
    can show them as malformed instead of losing them.
    """

    def __init__(self, max_text: int = MAX_LINK_TEXT):
        self.max_text = max_text

    def _parse(self, body: bytes, content_type: str):
        charset = _charset(content_type)
        try:
            parser = lxml.html.HTMLParser(encoding=charset) if charset else None
            return lxml.html.document_fromstring(body, parser=parser)
        except (lxml.etree.ParserError, LookupError, ValueError):
            try:  # an unknown charset name: let lxml guess
                return lxml.html.document_fromstring(body)
            except (lxml.etree.ParserError, ValueError):
                return None

    def __call__(self, url: str, body: bytes, content_type: str = "") -> list[Link]:
        doc = self._parse(body, content_type)
        if doc is None:
            return []
        base = url
        for el in doc.iter("base"):
            if el.get("href"):
                base = self._join(url, el.get("href").strip())
                break
        links = []
        for el in doc.iter("a", "area"):
            href = el.get("href")
            if href is None or not href.strip():
                continue
            text = el.get("alt", "") if el.tag == "area" else el.text_content()
            text = " ".join(text.split())[: self.max_text]
            links.append(Link(self._join(base, href.strip()), text, len(links)))
        return links

    @staticmethod
    def _join(base: str, href: str) -> str:
        try:
            return urljoin(base, href)
        except ValueError:  # e.g. 'http://[::1' - left for canonicalize to call malformed
            return href


def _words(s: str) -> str:
    return " " + _NON_WORD.sub(" ", s.lower()).strip() + " "


class LinkRanker:
    """Orders links by the first ``priorities`` keyword found in their URL path or text.

    ``priorities`` is most important first ("about", "services", ...). A link matching keyword
    i gets priority i; one matching none gets len(priorities). Lower sorts first, ties keep
    document order. Matching is on words with separators folded (what-we-do == "what we do"),
    and a keyword may be part of a longer word (/aboutus matches "about").
    """

    def __init__(self, priorities: list[str]):
        self.priorities = [" ".join(_words(p).split()) for p in priorities if p.strip()]

    def priority(self, link: Link) -> int:
        try:
            path = unquote(urlsplit(link.url).path)
        except ValueError:
            path = link.url
        haystack = _words(path) + _words(link.text)
        for i, kw in enumerate(self.priorities):
            if kw in haystack:
                return i
        return len(self.priorities)

    def rank(self, links: list[Link]) -> list[Link]:
        return sorted(links, key=lambda link: (self.priority(link), link.position))
