"""From raw HTML bytes to a page's title, main text and the keys dedup and label use.

``decode_html`` turns bytes into text without ever failing on bad bytes. ``HtmlExtractor``
parses with lxml (recovering, no network, no entity expansion), drops what is never content
(scripts, styles, forms' widgets ...) and then boilerplate (navigation, footers, cookie
banners, sidebars, found by tag, role, or class/id words), and keeps the text of block
elements one per line. The helpers below it give host, registered domain, word count,
text hash and page id.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import threading
import unicodedata
from dataclasses import dataclass

import lxml.etree
import lxml.html

# -- decoding ----------------------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]{0,512}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.IGNORECASE)
# Labels whose real-world meaning is a superset (the WHATWG encoding standard's mapping).
_SUPERSETS = {"iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
              "us-ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
              "iso-8859-9": "cp1254", "tis-620": "cp874", "iso-8859-11": "cp874",
              "x-sjis": "shift_jis", "ks_c_5601-1987": "cp949", "euc-kr": "cp949"}


def _codec(label: str | None) -> str | None:
    """A Python codec name for a charset label, or None when the label is unknown."""
    if not label:
        return None
    label = label.strip().strip("\"'").lower()
    label = _SUPERSETS.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    # A page cannot really be UTF-16 once it was read as ASCII-compatible text (WHATWG).
    return "utf-8" if name.startswith("utf-16") else name


def charset_from_content_type(content_type: str | None) -> str | None:
    m = _HEADER_CHARSET.search(content_type or "")
    return m.group(1) if m else None


def decode_html(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode an HTML body; returns (text, codec used). Never raises on bad bytes.

    Order: a byte-order mark (it cannot be wrong), the HTTP Content-Type charset, a
    ``<meta charset>`` / http-equiv in the first 4 KiB, then UTF-8, then cp1252. A declared
    charset that fails on a few bytes is kept with U+FFFD replacements; one that fails badly
    (a wrong declaration) gives way to UTF-8, then to cp1252.
    """
    for bom, codec in _BOMS:
        if body.startswith(bom):
            return body.decode(codec, errors="replace"), codec
    declared = _codec(charset_from_content_type(content_type))
    if declared is None:
        m = _META_CHARSET.search(body[:4096])
        declared = _codec(m.group(1).decode("ascii", "replace")) if m else None
    for codec in dict.fromkeys(c for c in (declared, "utf-8") if c):
        try:
            return body.decode(codec), codec
        except UnicodeDecodeError:
            continue
    if declared and declared != "utf-8":
        text = body.decode(declared, errors="replace")
        if text.count("\ufffd") * 100 <= len(text):
            return text, declared
    return body.decode("cp1252", errors="replace"), "cp1252"


# -- extraction --------------------------------------------------------------------------

# Elements that never hold readable content.
NON_TEXT_TAGS = frozenset({"script", "style", "noscript", "iframe", "svg", "template", "object", "embed",
                           "canvas", "select", "option", "button", "input", "textarea", "map", "title", "meta",
                           "link", "base"})
# Elements that are page furniture by their tag.
BOILERPLATE_TAGS = frozenset({"nav", "footer", "header", "aside", "form", "menu"})
BOILERPLATE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search", "menu",
                               "menubar", "dialog", "alertdialog"})
# class/id words that mark furniture; a word matches whole, or as a prefix/suffix of a word.
BOILERPLATE_WORDS = frozenset({
    "nav", "navbar", "navigation", "menu", "menubar", "submenu", "footer", "cookie", "cookies", "consent",
    "gdpr", "banner", "sidebar", "breadcrumb", "breadcrumbs", "share", "sharing", "social", "skip",
    "toolbar", "masthead", "pagination", "pager", "advert", "advertisement", "ads", "ad", "sponsor",
    "sponsored", "popup", "modal", "newsletter", "subscribe", "related", "widget", "widgets", "topbar",
})
_WORD_AFFIXES = ("nav", "menu", "footer", "cookie", "sidebar", "breadcrumb", "banner")
# Elements that start and end a line of text; table cells are separated by a space.
BLOCK_TAGS = frozenset({
    "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
    "blockquote", "table", "tr", "section", "article", "main", "br", "hr", "address", "figcaption",
    "caption", "center", "body", "title", "fieldset", "legend", "details", "summary", "figure",
})
CELL_TAGS = frozenset({"td", "th"})
_SPLIT_WORDS = re.compile(r"[^a-z0-9]+")
_INVISIBLE = {0xFEFF: " ", 0x200B: " "}
_DISPLAY_NONE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


@dataclass
class Extracted:
    title: str | None
    text: str  # main text: one block per line, whitespace collapsed; "" when there is none


_PARSERS = threading.local()


def _parser() -> lxml.html.HTMLParser:
    """One parser per thread: lxml parser objects are not safe to share between threads."""
    p = getattr(_PARSERS, "parser", None)
    if p is None:
        # Fed UTF-8 bytes with the encoding fixed, so a stale <meta charset> cannot re-decode it.
        p = lxml.html.HTMLParser(remove_comments=True, remove_pis=True, no_network=True, huge_tree=False,
                                 recover=True, encoding="utf-8", default_doctype=False)
        _PARSERS.parser = p
    return p


def collapse(text: str) -> str:
    return " ".join(text.split())


def _is_furniture_by_attrs(el: lxml.html.HtmlElement) -> bool:
    role = (el.get("role") or "").strip().lower()
    if role in BOILERPLATE_ROLES:
        return True
    if el.get("hidden") is not None or (el.get("aria-hidden") or "").lower() == "true":
        return True
    if _DISPLAY_NONE.search(el.get("style") or ""):
        return True
    words = _SPLIT_WORDS.split(f"{el.get('class') or ''} {el.get('id') or ''}".lower())
    for w in words:
        if w in BOILERPLATE_WORDS or len(w) > 4 and (w.startswith(_WORD_AFFIXES) or w.endswith(_WORD_AFFIXES)):
            return True
    return False


def _text_length(el: lxml.html.HtmlElement) -> int:
    return sum(len(t.strip()) for t in el.itertext())


def block_text(root: lxml.html.HtmlElement) -> str:
    """The text under ``root``: each block element on its own line, whitespace collapsed."""
    chunks: list[str] = []
    for event, el in lxml.etree.iterwalk(root, events=("start", "end")):
        tag = el.tag if isinstance(el.tag, str) else ""
        if event == "start":
            if tag in BLOCK_TAGS:
                chunks.append("\n")
            elif tag in CELL_TAGS:
                chunks.append(" ")
            if tag and el.text:
                chunks.append(el.text)
        else:
            if tag in BLOCK_TAGS:
                chunks.append("\n")
            if el is not root and el.tail:
                chunks.append(el.tail)
    # A stray byte-order mark or zero-width space is no text; str.split() does not see them as space.
    joined = "".join(chunks).translate(_INVISIBLE)
    lines = (collapse(line) for line in joined.split("\n"))
    return "\n".join(line for line in lines if line)


class HtmlExtractor:
    """Title and main text of an HTML document.

    Parameters
    ----------
    max_furniture_share : float
        An element that looks like furniture is still kept when it holds more than this share
        of the page's text (a ``<form>`` or a ``class="has-sidebar"`` wrapper around the whole
        page), so the extractor never empties a page by removing its container.
    """

    def __init__(self, max_furniture_share: float = 0.5):
        self.max_furniture_share = max_furniture_share

    def extract(self, html: str) -> Extracted:
        # "--!>" ends a comment in HTML5 (and in old pages' "<!-- ---!>"); libxml2 would read on to EOF.
        html = html.replace("--!>", "-->")
        try:
            doc = lxml.html.document_fromstring(html.encode("utf-8", errors="replace"), parser=_parser())
        except (lxml.etree.ParserError, ValueError):  # "Document is empty": nothing but whitespace
            return Extracted(title=None, text="")
        title = self._title(doc)
        for el in [el for el in doc.iter() if not isinstance(el.tag, str) or el.tag in NON_TEXT_TAGS]:
            if el.getparent() is not None:
                el.drop_tree()
        # The whole document, not just <body>: broken markup puts text in <head> or beside an
        # early empty <body>, and the head's non-text elements are already gone.
        root = doc
        full_text = block_text(root)
        limit = self.max_furniture_share * max(_text_length(root), 1)
        for el in self._furniture(root, limit):
            el.drop_tree()
        text = block_text(root)
        # A page that is all furniture (a link list in a <nav>) keeps its text rather than none.
        return Extracted(title=title, text=text or full_text)

    @staticmethod
    def _title(doc: lxml.html.HtmlElement) -> str | None:
        for path in (".//title", ".//h1"):
            el = doc.find(path)
            if el is not None:
                t = collapse(el.text_content())
                if t:
                    return t
        return None

    @staticmethod
    def _furniture(root: lxml.html.HtmlElement, limit: float) -> list[lxml.html.HtmlElement]:
        """Outermost furniture elements under ``root`` holding at most ``limit`` characters of text.

        One that holds more is a wrapper, not furniture: it stays and its children are looked at.
        """
        found: list[lxml.html.HtmlElement] = []
        dropped: set = set()
        for el in root.iterdescendants():
            if not isinstance(el.tag, str) or el.tag == "body":
                continue
            if el.getparent() in dropped:  # goes with its parent
                dropped.add(el)
                continue
            furniture = el.tag in BOILERPLATE_TAGS or _is_furniture_by_attrs(el)
            # An article's own <header> holds its title: keep it.
            if el.tag == "header" and any(a.tag in ("article", "main") for a in el.iterancestors()):
                furniture = _is_furniture_by_attrs(el)
            if furniture and _text_length(el) <= limit:
                found.append(el)
                dropped.add(el)
        return found


# -- keys --------------------------------------------------------------------------------

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORDS = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")


def count_words(text: str) -> int:
    """Words of ``text``; each Chinese/Japanese character counts as one (they have no spaces)."""
    return len(_WORDS.findall(text))


def normalise_text(text: str) -> str:
    """Lower case, punctuation and symbols removed, whitespace collapsed: the exact-dedup key."""
    text = unicodedata.normalize("NFKC", text).lower()
    kept = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return collapse(kept)


def text_hash(text: str) -> str:
    return hashlib.sha1(normalise_text(text).encode("utf-8")).hexdigest()


def sha1_hex(value: str) -> str:
    return hashlib.sha1(value.encode("utf-8", errors="replace")).hexdigest()
