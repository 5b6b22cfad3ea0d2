"""Main text and metadata of an HTML page, on the lexbor HTML5 parser (selectolax).

Why lexbor and not lxml: lexbor parses a typical 170 KB news page in about a third of the time
libxml2 takes, and libxml2's parse alone would use the whole per-page budget of the speed goal.
lexbor is an HTML5 tree builder: it never resolves DTD entities (no entity-expansion tricks),
never opens a connection, and walks trees iteratively (a page nested 100,000 levels deep does
not overflow a stack).

The tree work has two implementations with the same output: a compiled walk (``_lexwalk``, from
_lexwalk.c) that reads lexbor's tree in place by node address, and pure Python on selectolax's
API, the reference and the fallback where the module is not built. The compiled walk keeps the
page's nodes in document order in arrays (subtree ends, parents, removal flags, text lengths
summed bottom-up), so each rule below is a loop over ints instead of a Python step per element:
it halves the time per page, of which lexbor's parse is then about half.

1. One walk over the elements collects what never holds text (script, style, widgets ...), the
   furniture candidates (navigation, footers, sidebars, cookie banners, share bars: by tag, ARIA
   role, hidden markers or class/id words, each distinct class/id value decided once), headings,
   captions and outlinks. Metadata comes from ``<head>``'s children.
2. Non-text elements go; full text is read; captions go; furniture goes unless an element holds
   more than half of the page's text and is not mostly links (a wrapper, not furniture), or holds
   a quarter and an article body's mark (a blog theme's widget around the post). Every verdict is
   taken on the page as it was, before anything is removed.
3. The main container is found as Readability does: each paragraph scores its parent and
   grandparent by length and commas; class/id words add or subtract; the best container,
   weighed by its link density, wins; it climbs while it holds less than half of the page's
   paragraph text (passing through wrappers that add none) and its parent is not a wall of
   links; siblings scoring nearly as well join.
4. A page without such a container (a business home page, a list of courses) keeps all its
   blocks left after furniture, so it never comes out empty.

Text comes out one block per line, whitespace collapsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser

from .furniture import ALWAYS_FURNITURE, attrs_furniture, marked_furniture, word_flags

# Elements that never hold readable content.
NON_TEXT_TAGS = frozenset({"script", "style", "noscript", "iframe", "svg", "math", "template", "object", "embed",
                           "canvas", "select", "option", "button", "input", "textarea", "map", "audio", "video",
                           "picture", "source", "dialog", "head"})
# Readability's class/id weights: words of content, words of everything else.
POSITIVE = re.compile(r"article|body|content|entry|hentry|h-entry|main|page|pagination|post|text|blog|story",
                      re.IGNORECASE)
NEGATIVE = re.compile(r"-ad-|hidden|^hid$| hid$| hid |^hid |banner|combx|comment|com-|contact|foot|footer|"
                      r"footnote|gdpr|masthead|media|meta|outbrain|promo|related|scroll|share|shoutbox|sidebar|"
                      r"skyscraper|sponsor|shopping|tags|tool|widget", re.IGNORECASE)
_TAG_WEIGHT = {"div": 5, "article": 10, "main": 10, "section": 3, "pre": 3, "td": 3, "blockquote": 3,
               "ol": -3, "ul": -3, "dl": -3, "dd": -3, "dt": -3, "li": -3, "form": -3,
               "h1": -5, "h2": -5, "h3": -5, "h4": -5, "h5": -5, "h6": -5, "th": -5, "address": -3}
# Elements whose text votes for its container; a <div> votes with its own text only.
PARAGRAPH_SELECTOR = "p,pre,td,blockquote,div"
# Marks of an article's body (schema.org, microformats, common theme classes); comments excepted.
ARTICLE_BODY_SELECTOR = ('[itemprop="articleBody" i],article:not([class*=comment i]),[class*=post-body i],'
                         '[class*=entry-content i],[class*=article-body i],[class~=hentry i],[class~=h-entry i]')
_WRAPPER_FLOOR = 0.5  # of the wrapper limit: half of that share of the page's text, at least
HEADING_TAGS = frozenset({"h1", "h2", "h3"})
# Furniture is looked for in containers only: links, images and inline tags are most of a
# page's elements, and a furniture word on one of them rarely marks more than itself.
CONTAINER_TAGS = frozenset({"div", "section", "nav", "footer", "aside", "header", "form", "menu", "ul", "ol",
                            "dl", "table", "p", "span", "li", "td", "tr", "tbody", "a"})
BLOCK_TAGS = frozenset({
    "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
    "blockquote", "table", "tr", "section", "article", "main", "br", "hr", "address", "figcaption",
    "caption", "center", "body", "title", "fieldset", "legend", "details", "summary", "figure", "header",
    "footer", "nav", "aside", "form", "tbody", "thead", "tfoot",
})
CELL_TAGS = frozenset({"td", "th"})
_NOT_OUTLINK = ("#", "javascript:", "mailto:", "tel:")
_BREAK = "\x00"  # block boundary while text is assembled: lexbor turns NUL in text into U+FFFD
_ASCII_SPACE = ("\n", "\t", "\r", "\x0b", "\x0c")


class ExtractRejected(ValueError):
    """A page the extractor refuses, with the reason for ``rejects/`` as its message."""


# Nesting: lexbor's tree builder checks the stack of open elements per tag, so its time grows
# with the square of the depth (100,000 levels: ~10 s). Pages with many tags are checked first.
MAX_DEPTH = 3000
_DEPTH_CHECK_TAGS = 20_000  # fewer "<" than this cannot nest deep enough to be slow
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)[^>]*?(/?)>")
# No end tag (void) or an end tag the parser implies: they do not deepen the stack.
_FLAT_TAGS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                        "track", "wbr", "p", "li", "dt", "dd", "option", "tr", "td", "th", "thead", "tbody",
                        "tfoot", "rt", "rp", "optgroup", "colgroup", "caption", "html", "head", "body"})


def max_depth_estimate(html: str, stop_at: int = MAX_DEPTH) -> int:
    """Deepest nesting of explicit open/close tags (void and implied-end tags skipped); stops at ``stop_at``."""
    depth = deepest = 0
    for m in _TAG.finditer(html):
        closing, name, self_closing = m.groups()
        if self_closing or name.lower() in _FLAT_TAGS:
            continue
        if closing:
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest >= stop_at:
                    break
    return deepest


@dataclass
class Extracted:
    """What ``HtmlExtractor.extract`` finds in one page."""

    title: str | None
    text: str                         # main text: one block per line; "" when there is none
    full_text: str = ""               # all visible text, furniture included, whitespace collapsed
    description: str | None = None    # <meta name=description content>
    canonical: str | None = None      # <link rel=canonical href>, as written
    lang: str | None = None           # <html lang>, as written
    headings: list[str] = field(default_factory=list)  # h1-h3 text, in document order
    outlinks: int = 0                 # <a href> that lead to a page (not #, javascript:, mailto:)


def collapse(text: str) -> str:
    """Whitespace runs to one space, ends stripped. ASCII text (most pages) has its whitespace
    turned to spaces and runs of spaces halved until none is left: C string calls, no word list."""
    if text.isascii():
        for ws in _ASCII_SPACE:
            if ws in text:
                text = text.replace(ws, " ")
        while "  " in text:
            text = text.replace("  ", " ")
        return text.strip(" ")
    return " ".join(text.split())


def _tag_ids(names) -> frozenset[int]:
    """lexbor's ids of standard tag names: the walk compares ints, not names."""
    maker = LexborHTMLParser("").create_node
    return frozenset(maker(name).tag_id for name in names)


_NON_TEXT_IDS = _tag_ids(NON_TEXT_TAGS)
_HEADING_IDS = _tag_ids(HEADING_TAGS)
_CONTAINER_IDS = _tag_ids(CONTAINER_TAGS)
_ALWAYS_FURNITURE_IDS = _tag_ids(ALWAYS_FURNITURE)
_CELL_IDS = _tag_ids(CELL_TAGS)
(_A_ID,) = _tag_ids(["a"])
(_DIV_ID,) = _tag_ids(["div"])
(_HEADER_ID,) = _tag_ids(["header"])
(_TITLE_ID,) = _tag_ids(["title"])
(_META_ID,) = _tag_ids(["meta"])
(_LINK_ID,) = _tag_ids(["link"])
(_HTML_ID,) = _tag_ids(["html"])
(_FIGCAPTION_ID,) = _tag_ids(["figcaption"])
_ARTICLE_IDS = _tag_ids(["article", "main"])
_PAGE_IDS = _tag_ids(["body", "html"])
(_BODY_ID,) = _tag_ids(["body"])
(_P_ID,) = _tag_ids(["p"])
# The document node and <html>: never a main container.
_ABOVE_PAGE_IDS = frozenset({*_tag_ids(["html"]), LexborHTMLParser("").root.parent.tag_id})
_TAG_WEIGHT_IDS = {i: w for name, w in _TAG_WEIGHT.items() for i in _tag_ids([name])}
_BLOCK_IDS = _tag_ids(BLOCK_TAGS)
_PARAGRAPH_IDS = _tag_ids(PARAGRAPH_SELECTOR.split(","))


# The lexbor whose struct layouts _lexwalk.c reads (selectolax 1.0.2 bundles it).
LEXWALK_LEXBOR_VERSION = (3, 1)


def _configure_lexwalk():
    """The compiled walk (``_lexwalk``, built from _lexwalk.c) told lexbor's ids of the tags and
    attributes the rules name; None when it was not built, or selectolax bundles another lexbor
    than the one whose structs it reads: the pure-Python path does the same work."""
    import selectolax.lexbor

    try:
        from . import _lexwalk
    except ImportError:
        return None
    lexbor = (selectolax.lexbor.LEXBOR_VERSION_MAJOR, selectolax.lexbor.LEXBOR_VERSION_MINOR)
    if lexbor != LEXWALK_LEXBOR_VERSION:
        return None
    names = ["class", "id", "href", "role", "hidden", "aria-hidden", "style", "itemprop", "name", "content",
             "rel", "lang"]
    probe = LexborHTMLParser("<div " + " ".join(f'{n}="x"' for n in names) + ">x</div>").css_first("div")
    if list(probe.attributes) != names:
        return None
    # Names outside lexbor's static table are interned per document: the walk compares their text.
    attribute_ids = {n: (i if i < 65536 else -1) for n, i in zip(names, _lexwalk.attribute_ids(probe.mem_id))}
    tag_ids = {name: next(iter(_tag_ids([name]))) for name in ("a", "header", "figcaption", "body", "html", "p",
                                                               "div", "title", "meta", "link", "article")}
    tag_ids["#text"] = probe.child.tag_id
    tag_sets = {"non_text": _NON_TEXT_IDS, "container": _CONTAINER_IDS, "always_furniture": _ALWAYS_FURNITURE_IDS,
                "heading": _HEADING_IDS, "block": _BLOCK_IDS, "cell": _CELL_IDS, "paragraph": _PARAGRAPH_IDS,
                "article": _ARTICLE_IDS, "page": _PAGE_IDS, "above_page": _ABOVE_PAGE_IDS}
    try:
        _lexwalk.configure(tag_ids, tag_sets, _TAG_WEIGHT_IDS, attribute_ids, word_flags, value_weight)
    except (KeyError, ValueError):  # ids outside the walk's tables: another lexbor
        return None
    # The probe read back as selectolax reads it, or no compiled walk.
    (_, div_tag, _, _, attrs), (_, text_tag, parent, text, _) = _lexwalk.nodes(probe.mem_id)
    if (div_tag, text_tag, parent, text, attrs) != (probe.tag_id, probe.child.tag_id, probe.mem_id, "x",
                                                     dict.fromkeys(names, "x")):
        return None
    return _lexwalk


def block_text(node) -> str:
    """The text under ``node``: each block element on its own line, whitespace collapsed.

    Marks block boundaries in the tree (a NUL text node before and after each block, a space
    before each table cell), then reads the whole subtree's text in one C call: one Python step
    per element instead of one per text node. The marks stay in the tree: call it last.
    """
    for b in node.traverse():
        tid = b.tag_id
        if tid in _BLOCK_IDS:
            b.insert_before(_BREAK)
            after = b.next  # a block before another block needs no second mark
            if after is not None and after.tag_id not in _BLOCK_IDS:
                b.insert_after(_BREAK)
        elif tid in _CELL_IDS:
            b.insert_before(" ")
    return lines_of(node.text())


def lines_of(text: str) -> str:
    """Text with NUL block marks to one block per line; newlines in the source are spaces.

    C string calls throughout, no Python step per word or line: ASCII text has its whitespace
    turned to spaces and runs of spaces halved until none is left (few passes); other text is
    split on any Unicode space and joined.
    """
    text = collapse(text.replace("\u200b", " ").replace("\ufeff", " "))
    text = text.replace(" " + _BREAK, _BREAK).replace(_BREAK + " ", _BREAK)
    return "\n".join(filter(None, text.split(_BREAK)))


def _in_article(node) -> bool:
    n = node.parent
    while n is not None:
        if n.tag_id in _ARTICLE_IDS:
            return True
        n = n.parent
    return False


def value_weight(value: str) -> int:
    """Readability's weight of one class or id value: -25 for a word of everything else, +25 for one of content."""
    return (-25 if NEGATIVE.search(value) else 0) + (25 if POSITIVE.search(value) else 0)


def _class_weight(node) -> int:
    attrs = node.attributes
    return sum(value_weight(value) for value in (attrs.get("class"), attrs.get("id")) if value)


def link_density(node) -> float:
    """Share of ``node``'s text that sits inside links (1.0 for a node with no text)."""
    total = len(node.text())
    if total == 0:
        return 1.0
    return min(1.0, sum(len(a.text()) for a in node.css("a")) / total)


_lexwalk = _configure_lexwalk()


def _tag_count(data: bytes) -> int:
    """The "<" in ``data``, up to one past the depth check's bar: memchr when the walk is built."""
    if _lexwalk is not None:
        return _lexwalk.tag_count(data, _DEPTH_CHECK_TAGS + 1)
    return data.count(b"<")


class HtmlExtractor:
    """Title, main text and metadata of an HTML document.

    Parameters
    ----------
    max_furniture_share : float
        An element that looks like furniture is kept when it holds more than this share of the
        page's text and is not mostly links (a ``<form>`` around an ASP.NET page, a
        ``class="has-sidebar"`` wrapper), so removing furniture never empties a page.
    min_paragraph_chars : int
        Shorter paragraphs do not vote for their container.
    min_article_chars : int
        A best container with less text than this is no main text: the page keeps all blocks.
    sibling_share : float
        Siblings of the best container scoring at least this share of its score join it.
    climb_share, max_climb : float, int
        The container climbs (at most ``max_climb`` levels) while it holds less than
        ``climb_share`` of the page's paragraph text.
    compiled : bool
        Do the tree work in the compiled walk when it is built (the same output, in about half the
        time); False: always the pure-Python path.
    """

    def __init__(self, max_furniture_share: float = 0.5, min_paragraph_chars: int = 25,
                 min_article_chars: int = 200, sibling_share: float = 0.2, climb_share: float = 0.5,
                 max_climb: int = 6, compiled: bool = True):
        self.max_furniture_share = max_furniture_share
        self.min_paragraph_chars = min_paragraph_chars
        self.min_article_chars = min_article_chars
        self.sibling_share = sibling_share
        self.climb_share = climb_share
        self.max_climb = max_climb
        self.compiled = compiled and _lexwalk is not None

    def extract(self, html: str | bytes) -> Extracted:
        """``html``: decoded ``str``, or UTF-8 ``bytes``."""
        data = html.encode("utf-8", "replace") if isinstance(html, str) else html
        if len(data) > 3 * _DEPTH_CHECK_TAGS and _tag_count(data) > _DEPTH_CHECK_TAGS:
            depth = max_depth_estimate(data.decode("utf-8", "replace"))
            if depth >= MAX_DEPTH:
                raise ExtractRejected(f"too_deep (tags nested over {MAX_DEPTH} levels)")
        tree = LexborHTMLParser(data)
        # The compiled walk counts characters in lexbor's UTF-8: bytes that are not UTF-8 take the Python path.
        if self.compiled and (isinstance(html, str) or _lexwalk.utf8_valid(data)):
            out = self._extract_compiled(tree)
            if out is not None:
                return out
        return self._extract_python(tree)

    def _extract_compiled(self, tree) -> Extracted | None:
        """``extract`` by the compiled walk; None for a page it leaves to the Python path (the tree unchanged)."""
        root = tree.body or tree.root
        if root is None:
            return None
        head, html = tree.head, tree.root
        page, outlinks, headings, full, titles, descriptions, canonicals, lang = _lexwalk.walk(
            root.mem_id, head.mem_id if head is not None else None, html.mem_id if html is not None else None)
        # Texts come collapsed (block texts as lines_of() gives them); empty titles and headings left out.
        out = Extracted(title=titles[0] if titles else None, text="", full_text=full,
                        description=next(filter(None, descriptions), None),
                        canonical=next(filter(None, (c.strip() for c in canonicals)), None),
                        lang=(lang or "").strip() or None, headings=headings[:50], outlinks=outlinks)
        if out.title is None and out.headings:
            out.title = out.headings[0]
        total = len(full)
        if total == 0:
            return out
        best = _lexwalk.main_text(page, self.max_furniture_share * total, total >= self.min_article_chars,
                                  self.min_paragraph_chars, self.min_article_chars, self.sibling_share,
                                  self.climb_share, self.max_climb)
        if best is False:
            return None
        text = "\n".join(filter(None, best)) if best is not None else ""
        out.text = text or _lexwalk.page_text(page) or full
        return out

    def _extract_python(self, tree) -> Extracted:
        """``extract`` in Python on selectolax's API (the tree is changed: nodes are unlinked, marks inserted)."""
        out = Extracted(title=None, text="")
        self._head_metadata(tree, out)
        root = tree.body or tree.root
        if root is None:
            return out
        # One walk over the elements, tag ids only; attributes are read for links and containers.
        non_text, headings, furniture, captions = [], [], [], []
        outlinks = 0
        for node in root.traverse():
            tid = node.tag_id
            if tid in _NON_TEXT_IDS:
                non_text.append(node)
            elif tid in _CONTAINER_IDS:
                attrs = node.attributes
                if tid == _A_ID:
                    href = attrs.get("href")
                    if href:
                        href = href.lstrip().lower()
                        outlinks += bool(href) and not href.startswith(_NOT_OUTLINK)
                if (tid in _ALWAYS_FURNITURE_IDS or attrs and attrs_furniture(attrs)
                        or tid == _HEADER_ID and not _in_article(node)):
                    furniture.append(node)
            elif tid in _HEADING_IDS:
                headings.append(node)
            elif tid == _FIGCAPTION_ID:
                captions.append(node)
        for node in non_text:
            node.decompose(recursive=False)  # unlinked, not freed: nodes already in hand stay valid
        out.outlinks = outlinks
        out.headings = [h for h in (collapse(n.text()) for n in headings) if h][:50]
        if out.title is None and out.headings:
            out.title = out.headings[0]
        out.full_text = collapse(root.text(separator=" "))
        # Captions and photo credits are visible text but not the article's running text.
        for node in captions:
            node.decompose(recursive=False)
        total = len(out.full_text)
        if total == 0:
            return out
        self._drop_furniture(furniture, self.max_furniture_share * total)
        # A page with less text than a main container needs keeps all its blocks.
        best = self._main_container(root) if total >= self.min_article_chars else None
        text = "\n".join(t for t in (block_text(n) for n in best) if t) if best is not None else ""
        out.text = text or block_text(root) or out.full_text
        return out

    @staticmethod
    def _drop_furniture(candidates: list, limit: float) -> None:
        """Unlink furniture; a big element that is not mostly links is a wrapper: it stays, and the
        candidates inside it are judged in turn. So does a fair-sized one that is not mostly links and
        holds the mark of an article body (a blog theme's ``<div class="widget Blog">`` around its
        post), unless its tag, role or a hidden marker made it furniture. All are judged on the page
        as it was before any removal, then removed: a verdict never depends on what went from inside."""
        doomed = []
        for node in candidates:
            if node.tag_id in _PAGE_IDS:
                continue
            size = len(node.text())
            if size > limit:
                if link_density(node) > 0.5:
                    doomed.append(node)
            elif not (size > limit * _WRAPPER_FLOOR and node.tag_id not in _ALWAYS_FURNITURE_IDS
                      and not marked_furniture(node.attributes) and link_density(node) <= 0.5
                      and node.css_first(ARTICLE_BODY_SELECTOR) is not None):
                doomed.append(node)
        for node in doomed:
            node.decompose(recursive=False)

    @staticmethod
    def _head_metadata(tree, out: Extracted) -> None:
        """Title, description, canonical link from ``<head>``'s children; language from ``<html>``."""
        head = tree.head
        for node in head.iter() if head is not None else ():
            tid = node.tag_id
            if tid == _TITLE_ID:
                if out.title is None:
                    out.title = collapse(node.text()) or None
            elif tid == _META_ID:
                attrs = node.attributes
                if out.description is None and (attrs.get("name") or "").strip().lower() == "description":
                    out.description = collapse(attrs.get("content") or "") or None
            elif tid == _LINK_ID:
                attrs = node.attributes
                if out.canonical is None and "canonical" in (attrs.get("rel") or "").lower().split():
                    out.canonical = (attrs.get("href") or "").strip() or None
        html = tree.root
        if html is not None and html.tag_id == _HTML_ID:
            out.lang = (html.attributes.get("lang") or "").strip() or None

    def _main_container(self, root) -> list | None:
        """The nodes holding the main text, in order; None for a page with no main container."""
        scores: dict[int, float] = {}
        nodes: dict[int, object] = {}
        para_chars: dict[int, int] = {}  # paragraph -> its length, for the climb
        min_chars = self.min_paragraph_chars
        for p in root.css(PARAGRAPH_SELECTOR):
            text = p.text(deep=False) if p.tag_id == _DIV_ID else p.text()
            n = len(text.strip())
            if n < min_chars:
                continue
            para_chars[p.mem_id] = n
            score = 1 + text.count(",") + text.count("\uff0c") + min(n // 100, 3)
            node = p.parent
            for share in (1.0, 0.5):  # the parent gets the score, the grandparent half of it
                if node is None or node.tag_id in _ABOVE_PAGE_IDS:
                    break
                key = node.mem_id
                old = scores.get(key)
                if old is None:
                    nodes[key] = node
                    old = _TAG_WEIGHT_IDS.get(node.tag_id, 0) + _class_weight(node)
                scores[key] = old + score * share
                node = node.parent
        if not scores:
            return None
        # Link density, a walk of each one's links, only for the leading candidates; it only lowers a
        # positive score: once the next score is no higher than the best weighed one, no one after it
        # can win, and their links are not counted.
        top_key, top_score = None, float("-inf")
        for key in sorted(scores, key=scores.__getitem__, reverse=True)[:8]:
            score = scores[key]
            if 0 <= score <= top_score:
                break
            score *= 1 - link_density(nodes[key])
            if score > top_score:
                top_key, top_score = key, score
        top = nodes[top_key]
        total = sum(para_chars.values())

        def held(node) -> int:
            return sum(para_chars.get(p.mem_id, 0) for p in node.css(PARAGRAPH_SELECTOR))

        # Climb while the container holds less than ``climb_share`` of the paragraph text: a parent
        # that adds none (a <ul> around an <li>) is passed through, not a stop; a wall of links is.
        inside = held(top)
        node = top
        for _ in range(self.max_climb):
            if inside >= self.climb_share * total:
                break
            node = node.parent
            if node is None or node.tag_id in _ABOVE_PAGE_IDS or node.tag_id == _BODY_ID:
                break
            node_inside = held(node)
            if node_inside <= inside:
                continue
            if link_density(node) > 0.35:
                break
            top, top_key, inside = node, node.mem_id, node_inside
        if len(top.text()) < self.min_article_chars:
            return None
        parent = top.parent
        if parent is None:
            return [top]
        threshold = max(10.0, top_score * self.sibling_share)
        chosen = []
        for sib in parent.iter():
            key = sib.mem_id
            if key == top_key:
                chosen.append(sib)
            elif scores.get(key, 0.0) >= threshold and link_density(sib) < 0.5:
                chosen.append(sib)
            elif sib.tag_id == _P_ID and len(sib.text()) > 80 and link_density(sib) < 0.25:
                chosen.append(sib)
        return chosen
