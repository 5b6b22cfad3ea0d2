"""Which elements are page furniture (navigation, footers, sidebars, cookie banners, share bars).

An element is furniture by its tag (``nav``, ``footer``, ``aside``, ``menu``), its ARIA role,
a hidden marker (``hidden``, ``aria-hidden``, ``display: none``) or a class/id word. Words match
whole or as a prefix/suffix of a longer word ("mainnav", "footerlinks"), and lose to a content
word in the same attribute (Readability's rule: "article-body pagination-first" is content).
An article's own ``<header>`` holds its title, so a ``<header>`` inside ``<article>``/``<main>`` is
judged by its attributes only (the caller tells, see ``furniture_verdict``). A ``<form>`` that
wraps a whole ASP.NET page is saved by the extractor's wrapper rule, not here.

Pages of one site repeat their attribute sets hundreds of times, so each distinct set is
decided once and remembered (a bounded cache shared by the process).
"""

from __future__ import annotations

import re

FURNITURE_TAGS = frozenset({"nav", "footer", "aside", "menu", "header", "form"})
_ALWAYS_FURNITURE = frozenset({"nav", "footer", "aside", "menu", "form"})
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
_CACHE_MAX = 50_000
_verdicts: dict[tuple, bool] = {}


def words_are_furniture(value: str) -> bool:
    for w in _SPLIT_WORDS.split(value.lower()):
        if w in FURNITURE_WORDS or len(w) > 4 and (w.startswith(_AFFIXES) or w.endswith(_AFFIXES)):
            return True
    return False


def _decide(tag: str, attrs: dict) -> bool:
    if tag in _ALWAYS_FURNITURE:  # a <header> gets here only from inside an article
        return True
    role = (attrs.get("role") or "").strip().lower()
    if role in FURNITURE_ROLES:
        return True
    if "hidden" in attrs or (attrs.get("aria-hidden") or "").strip().lower() == "true":
        return True
    style = (attrs.get("style") or "").lower().replace(" ", "")
    if "display:none" in style or "visibility:hidden" in style:
        return True
    words = f"{attrs.get('class') or ''} {attrs.get('id') or ''}"
    return words_are_furniture(words) and not MAYBE_CONTENT.search(words)


def furniture_verdict(tag: str, attrs: dict, in_article: bool = False) -> bool:
    """Whether an element with this tag and these attributes (a dict, values may be None) is furniture.

    ``in_article``: the element is inside ``<article>`` or ``<main>`` (matters for ``<header>``).
    """
    if tag == "header" and not in_article:
        return True
    key = (tag, attrs.get("class"), attrs.get("id"), attrs.get("role"), attrs.get("style"), "hidden" in attrs,
           attrs.get("aria-hidden"))
    verdict = _verdicts.get(key)
    if verdict is None:
        if len(_verdicts) >= _CACHE_MAX:
            _verdicts.clear()
        verdict = _verdicts[key] = _decide(tag, attrs)
    return verdict
