"""Join keys: how a labels-file value and a page are compared (URL, seed id, registered domain)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from pagecat.urls import MalformedURL, canonicalize, host_of, registered_domain


def canonical_url(url: str | None) -> str | None:
    """The URL as the labels join compares it: the crawler's canonical form (``pagecat.urls``),
    less a trailing slash. ``HTTP://Ex.com:80/a/#x`` -> ``http://ex.com/a``."""
    if not url or not url.strip():
        return None
    try:
        parts = urlsplit(canonicalize(url.strip()))
    except MalformedURL:
        return url.strip()
    return urlunsplit(parts._replace(path=parts.path.rstrip("/")))


def domain_key(value: str | None) -> str | None:
    """A registered domain from a domain, host or URL: ``https://www.Ex.co.uk/a`` -> ``ex.co.uk``."""
    if not value or not value.strip():
        return None
    value = value.strip()
    host = host_of(value) if "://" in value else value.split("/")[0].split(":")[0].lower()
    return registered_domain(host) if host else None


def plain_key(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


# join_on -> how a labels-file value becomes a key, and the pages column it is compared with.
KEYS = {"url": (canonical_url, "url"), "url_id": (plain_key, "seed_id"), "domain": (domain_key, "domain")}
