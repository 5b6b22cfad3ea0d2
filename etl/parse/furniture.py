"""Which elements are page furniture (navigation, footers, sidebars, cookie banners, share bars).

An element is furniture by its tag (``nav``, ``footer``, ``aside``, ``menu``), its ARIA role,
a hidden marker (``hidden``, ``aria-hidden``, ``display: none``) or a class/id word. Words match
whole or as a prefix/suffix of a longer word ("mainnav", "footerlinks"), and lose to a content
word in the same attribute (Readability's rule: "article-body pagination-first" is content).
An article's own ``<header>`` holds its title, so a ``<header>`` inside ``<article>``/``<main>`` is
judged by its attributes only (the caller tells). A ``<form>`` that
wraps a whole ASP.NET page is saved by the extractor's wrapper rule, not here.

Pages of one site repeat their class and id values hundreds of times, so each distinct value
is decided once and remembered (a bounded cache shared by the process).
"""

from __future__ import annotations

import re

ALWAYS_FURNITURE = frozenset({"nav", "footer", "aside", "menu", "form"})
FURNITURE_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search", "menu",
                             "menubar", "dialog", "alertdialog", "toolbar"})
FURNITURE_WORDS = frozenset({
    "nav", "navbar", "navigation", "menu", "menubar", "submenu", "footer", "cookie", "cookies", "consent",
    "gdpr", "banner", "sidebar", "breadcrumb", "breadcrumbs", "share", "sharing", "social", "skip",
    "toolbar", "masthead", "pagination", "pager", "advert", "advertisement", "ads", "ad", "sponsor",
    "sponsored", "popup", "modal", "newsletter", "subscribe", "related", "widget", "widgets", "topbar",
    "comment", "comments", "disqus", "outbrain", "taboola", "promo", "recommended", "trending", "tags",
    "byline", "signup", "login", "rss", "sitemap", "copyright",
})
_AFFIXES = ("nav", "menu", "footer", "cookie", "sidebar", "breadcrumb", "banner", "comment", "share", "social",
            "related", "promo", "newsletter", "advert")
MAYBE_CONTENT = re.compile(r"article|body|column|content|main|story|entry|post-?text", re.IGNORECASE)
_SPLIT_WORDS = re.compile(r"[^a-z0-9]+")
FURNITURE_WORD, CONTENT_WORD = 1, 2
_CACHE_MAX = 50_000
_seen_flags: dict[str, int] = {}  # class or id value -> its flags


def words_are_furniture(value: str) -> bool:
    for w in _SPLIT_WORDS.split(value.lower()):
        if w in FURNITURE_WORDS or len(w) > 4 and (w.startswith(_AFFIXES) or w.endswith(_AFFIXES)):
            return True
    return False


def word_flags(value: str) -> int:
    """``FURNITURE_WORD | CONTENT_WORD`` bits of a class or id value. Pages of one site repeat their
    values hundreds of times, so each distinct value is decided once (a bounded cache per process)."""
    flags = _seen_flags.get(value)
    if flags is None:
        # Trailing digits number items (post-1234, ad2): the value without them decides, once.
        stem = value.rstrip("0123456789")
        flags = _seen_flags.get(stem) if stem != value else None
        if flags is None:
            flags = (FURNITURE_WORD if words_are_furniture(stem) else 0) | (
                CONTENT_WORD if MAYBE_CONTENT.search(stem) else 0)
            _seen_flags[stem] = flags
        if len(_seen_flags) >= _CACHE_MAX:
            _seen_flags.clear()
        _seen_flags[value] = flags
    return flags


def marked_furniture(attrs: dict) -> bool:
    """Furniture by ARIA role or a hidden marker (``hidden``, ``aria-hidden``, ``display: none``)."""
    role = attrs.get("role")
    if role and role.strip().lower() in FURNITURE_ROLES:
        return True
    if "hidden" in attrs or (attrs.get("aria-hidden") or "").strip().lower() == "true":
        return True
    style = attrs.get("style")
    if style:
        style = style.lower().replace(" ", "")
        return "display:none" in style or "visibility:hidden" in style
    return False


def attrs_furniture(attrs: dict) -> bool:
    """Furniture by attributes alone: a class/id furniture word with no content word, an ARIA role or a
    hidden marker. The extractor's walk asks this of every container that has attributes."""
    cls = attrs.get("class")
    ident = attrs.get("id")
    flags = (word_flags(cls) if cls else 0) | (word_flags(ident) if ident else 0)
    return flags == FURNITURE_WORD or marked_furniture(attrs)


def judge(tag: str, attrs: dict) -> bool:
    """Whether an element with this tag and these attributes (a dict, values may be None) is furniture.

    A ``<header>`` is judged by its attributes only: the caller decides whether it sits in an article.
    """
    return tag in ALWAYS_FURNITURE or attrs_furniture(attrs)
