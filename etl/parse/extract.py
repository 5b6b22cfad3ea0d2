"""Main text and metadata of an HTML page, on the lexbor HTML5 parser (selectolax).

Why lexbor and not lxml: lexbor parses a typical 170 KB news page in about a third of the time
libxml2 takes, and libxml2's parse alone would use the whole per-page budget of the speed goal.
lexbor is an HTML5 tree builder: it never resolves DTD entities (no entity-expansion tricks),
never opens a connection, and walks trees iteratively (a page nested 100,000 levels deep does
not overflow a stack).

Per page, Python visits each element once (tag and attributes, no text) and otherwise leaves
the work to C: text reads, tag selections.

1. One walk over the elements collects what never holds text (script, style, widgets ...), the
   furniture candidates (navigation, footers, sidebars, cookie banners, share bars: by tag, ARIA
   role, hidden markers or class/id words, decided once per distinct attribute set), headings
   and outlinks. Metadata comes from ``<head>``.
2. Non-text elements go; furniture goes, innermost first, unless an element holds more than
   half of the page's text and is not mostly links (a wrapper, not furniture).
3. The main container is found as Readability does: each paragraph scores its parent and
   grandparent by length and commas; class/id words add or subtract; the best container,
   weighed by its link density, wins; it climbs while it holds less than half of the page's
   paragraph text and its parent is not a wall of links; siblings scoring nearly as well join.
4. A page without such a container (a business home page, a list of courses) keeps all its
   blocks left after furniture, so it never comes out empty.

Text comes out one block per line, whitespace collapsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser

from .furniture import FURNITURE_TAGS, furniture_verdict

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
_SPACE = re.compile(r"[\s\u00a0\u200b\ufeff\u2000-\u200a\u3000]+")


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
    return " ".join(text.split())


def block_text(node) -> str:
    """The text under ``node``: each block element on its own line, whitespace collapsed."""
    parts: list[str] = []
    add = parts.append
    for n in node.traverse(include_text=True):  # whitespace-only text separates inline words
        tag = n.tag
        if tag not in BLOCK_TAGS:
            prev = n.prev  # what follows a block (text, an inline element) starts a new line
            if prev is not None and prev.tag in BLOCK_TAGS:
                add(_BREAK)
        if tag == "-text":
            add(n.text_content)
        elif tag in BLOCK_TAGS:
            add(_BREAK)
        elif tag in CELL_TAGS:
            add(" ")
    # Newlines in the source are spaces; only block boundaries break lines.
    lines = _SPACE.sub(" ", "".join(parts)).split(_BREAK)
    return "\n".join(line for line in (x.strip() for x in lines) if line)


def _following_id(node, root) -> int:
    """mem_id of the first element after ``node``'s subtree in document order (-1: none within ``root``)."""
    n = node
    while n is not None and n.mem_id != root.mem_id:
        nxt = n.next
        while nxt is not None and nxt.tag == "-text":
            nxt = nxt.next
        if nxt is not None:
            return nxt.mem_id
        n = n.parent
    return -1


def _in_article(node) -> bool:
    n = node.parent
    while n is not None:
        if n.tag in ("article", "main"):
            return True
        n = n.parent
    return False


def _class_weight(node) -> int:
    attrs = node.attributes
    weight = 0
    for value in (attrs.get("class"), attrs.get("id")):
        if value:
            if NEGATIVE.search(value):
                weight -= 25
            if POSITIVE.search(value):
                weight += 25
    return weight


def link_density(node) -> float:
    """Share of ``node``'s text that sits inside links (1.0 for a node with no text)."""
    total = len(node.text())
    if total == 0:
        return 1.0
    return min(1.0, sum(len(a.text()) for a in node.css("a")) / total)


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
    """

    def __init__(self, max_furniture_share: float = 0.5, min_paragraph_chars: int = 25,
                 min_article_chars: int = 200, sibling_share: float = 0.2, climb_share: float = 0.5,
                 max_climb: int = 4):
        self.max_furniture_share = max_furniture_share
        self.min_paragraph_chars = min_paragraph_chars
        self.min_article_chars = min_article_chars
        self.sibling_share = sibling_share
        self.climb_share = climb_share
        self.max_climb = max_climb

    def extract(self, html: str | bytes) -> Extracted:
        """``html``: decoded ``str``, or UTF-8 ``bytes``."""
        data = html.encode("utf-8", "replace") if isinstance(html, str) else html
        if data.count(b"<") > _DEPTH_CHECK_TAGS:
            depth = max_depth_estimate(data.decode("utf-8", "replace"))
            if depth >= MAX_DEPTH:
                raise ExtractRejected(f"too_deep (tags nested over {MAX_DEPTH} levels)")
        tree = LexborHTMLParser(data)
        out = Extracted(title=None, text="")
        self._head_metadata(tree, out)
        root = tree.body or tree.root
        if root is None:
            return out
        non_text, headings = [], []
        # Furniture candidates as a forest: (node, nested candidates). ``open_`` holds the
        # candidates whose subtree the walk is in, each with the id of the element after it.
        furniture: list[tuple] = []
        open_: list[tuple] = []
        outlinks = 0
        for node in root.traverse():
            nid = node.mem_id
            while open_ and open_[-1][0] == nid:
                open_.pop()
            tag = node.tag
            if tag in NON_TEXT_TAGS:
                non_text.append(node)
                continue
            attrs = node.attributes
            if tag == "a":
                href = (attrs.get("href") or "").lstrip().lower()
                outlinks += bool(href) and not href.startswith(_NOT_OUTLINK)
            elif tag in HEADING_TAGS:
                headings.append(node)
            if tag in CONTAINER_TAGS and (attrs or tag in FURNITURE_TAGS) and furniture_verdict(
                    tag, attrs, tag == "header" and _in_article(node)):
                entry = (node, [])
                (open_[-1][1][1] if open_ else furniture).append(entry)
                open_.append((_following_id(node, root), entry))
        for node in non_text:
            node.decompose(recursive=False)  # unlinked, not freed: nodes already in hand stay valid
        out.outlinks = outlinks
        out.headings = [h for h in (collapse(n.text()) for n in headings) if h][:50]
        if out.title is None and out.headings:
            out.title = out.headings[0]
        out.full_text = collapse(root.text(separator=" "))
        total = len(out.full_text)
        if total == 0:
            return out
        self._drop_furniture(furniture, self.max_furniture_share * total)
        best = self._main_container(root)
        if best is not None:
            text = "\n".join(t for t in (block_text(n) for n in best) if t)
        else:
            text = block_text(root)
        out.text = text or block_text(root) or out.full_text
        return out

    @staticmethod
    def _drop_furniture(candidates: list[tuple], limit: float) -> None:
        """Unlink furniture, outermost first; a big element that is not mostly links is a
        wrapper: it stays, and the candidates inside it are judged in turn."""
        stack = list(reversed(candidates))
        while stack:
            node, nested = stack.pop()
            if node.tag not in ("body", "html") and (len(node.text()) <= limit or link_density(node) > 0.5):
                node.decompose(recursive=False)
            else:
                stack.extend(reversed(nested))

    @staticmethod
    def _head_metadata(tree, out: Extracted) -> None:
        scope = tree.head or tree.root
        if scope is None:
            return
        node = scope.css_first("title")
        if node is not None:
            out.title = collapse(node.text()) or None
        node = scope.css_first('meta[name="description" i]')
        if node is not None:
            out.description = collapse(node.attributes.get("content") or "") or None
        node = scope.css_first('link[rel~="canonical" i]')
        if node is not None:
            out.canonical = (node.attributes.get("href") or "").strip() or None
        node = tree.css_first("html[lang]")
        if node is not None:
            out.lang = (node.attributes.get("lang") or "").strip() or None

    def _main_container(self, root) -> list | None:
        """The nodes holding the main text, in order; None for a page with no main container."""
        scores: dict[int, float] = {}
        nodes: dict[int, object] = {}
        para_chars: dict[int, int] = {}  # paragraph -> its length, for the climb
        for p in root.css(PARAGRAPH_SELECTOR):
            text = p.text(deep=False) if p.tag == "div" else p.text()
            n = len(text.strip())
            if n < self.min_paragraph_chars:
                continue
            para_chars[p.mem_id] = n
            score = 1 + text.count(",") + text.count("\uff0c") + min(n // 100, 3)
            parent = p.parent
            for level, node in enumerate((parent, parent.parent if parent is not None else None)):
                if node is None or node.tag in (None, "-document", "html"):
                    break
                key = node.mem_id
                if key not in scores:
                    nodes[key] = node
                    scores[key] = _TAG_WEIGHT.get(node.tag, 0) + _class_weight(node)
                scores[key] += score if level == 0 else score / 2
        if not scores:
            return None
        # Link density only for the leading candidates: it costs a walk of each one's links.
        leading = sorted(scores, key=scores.__getitem__, reverse=True)[:8]
        final = {key: scores[key] * (1 - link_density(nodes[key])) for key in leading}
        top_key = max(final, key=final.__getitem__)
        top, top_score = nodes[top_key], final[top_key]
        total = sum(para_chars.values())

        def held(node) -> int:
            return sum(para_chars.get(p.mem_id, 0) for p in node.css(PARAGRAPH_SELECTOR))

        inside = held(top)
        for _ in range(self.max_climb):
            if inside >= self.climb_share * total:
                break
            parent = top.parent
            if parent is None or parent.tag in (None, "body", "html", "-document"):
                break
            parent_inside = held(parent)
            if parent_inside <= inside or link_density(parent) > 0.35:
                break
            top, top_key, inside = parent, parent.mem_id, parent_inside
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
            elif sib.tag == "p" and len(sib.text()) > 80 and link_density(sib) < 0.25:
                chosen.append(sib)
        return chosen
