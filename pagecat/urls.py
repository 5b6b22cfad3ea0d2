"""URLs as every stage compares them: one canonical form, and the site a host belongs to.

``canonicalize`` makes equal what a server treats as equal (and what trackers make differ), so
a URL is fetched once per crawl::

    canonicalize("HTTP://WWW.Example.com:80/a/./b/../c?utm_source=x&b=2&a=1#top")
    -> "http://www.example.com/a/c?a=1&b=2"

``registered_domain`` ("site") is the public-suffix domain of a host: www.cs.cornell.edu ->
cornell.edu. It uses tldextract's bundled suffix-list snapshot and never downloads one.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import unquote, urlsplit, urlunsplit

HTTP_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Query parameters that only say where a click came from: dropped, so one page is one URL.
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid",
    "ref", "ref_src", "ref_url", "_hsenc", "_hsmi", "_ga", "_gl", "mkt_tok", "oly_anon_id", "oly_enc_id",
    "vero_id", "spm", "s_cid", "trk", "twclid", "ttclid", "li_fat_id",
})
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_")

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
# Characters left as they are in a path / a query component; anything else is percent-encoded.
_PATH_SAFE = frozenset("!$&'()*+,;=:@/%") | _UNRESERVED
_QUERY_SAFE = frozenset("!$'()*+,;:@/?%") | _UNRESERVED  # & and = delimit query pairs
# Most URLs need no change: a part made only of safe characters, with no escape, is kept as it is
# without the character loop (the crawler canonicalises every link it finds).
_ALREADY_NORMAL = {safe: re.compile("[" + re.escape("".join(sorted(safe - {"%"}))) + "]*").fullmatch
                   for safe in (_PATH_SAFE, _QUERY_SAFE)}
_TRIMMED = "".join(map(chr, range(33)))  # spaces and C0 controls, trimmed from both ends
_CONTROL = re.compile(r"[\x00-\x1f]")
_BAD_HOST_CHAR = re.compile(r"[ /\\@%<>\"'{}|^`]")


class MalformedURL(ValueError):
    """A URL that cannot be parsed into scheme, host, port and path."""


def _normalize_escapes(part: str, safe: frozenset[str]) -> str:
    """RFC 3986 normalisation: unreserved escapes decoded (%7E -> ~), other escapes upper-cased,
    unsafe characters (spaces, non-ASCII, a stray %) encoded as UTF-8 escapes."""
    if "%" not in part and _ALREADY_NORMAL[safe](part):
        return part

    def fix(m: re.Match) -> str:
        ch = chr(int(m.group(1), 16))
        return ch if ch in _UNRESERVED else "%" + m.group(1).upper()

    part = _PCT.sub(fix, part)
    out = []
    for i, ch in enumerate(part):
        if ch == "%" and not _PCT.match(part, i):
            out.append("%25")
        elif ch in safe:
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
    return "".join(out)


def _remove_dot_segments(path: str) -> str:
    """/a/./b/../c -> /a/c (RFC 3986 section 5.2.4)."""
    if "/." not in path and not path.startswith("."):  # no dot segment
        return path if path.startswith("/") else "/" + path
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    result = "/".join(out)
    return result if result.startswith("/") else "/" + result


def _is_tracking(key: str) -> bool:
    k = unquote(key).lower()
    return k in TRACKING_PARAMS or k.startswith(TRACKING_PREFIXES)


def _host(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if not host:
        raise MalformedURL("no host")
    if ":" in host:  # an IPv6 literal (urlsplit already removed the brackets)
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            raise MalformedURL(f"bad IPv6 host {host!r}") from None
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise MalformedURL(f"bad host {host!r}") from None
    if _BAD_HOST_CHAR.search(host) or ".." in host:
        raise MalformedURL(f"bad host {host!r}")
    return host


def canonicalize(url: str) -> str:
    """The canonical form of an absolute URL (str -> str); raises MalformedURL.

    Lower-cased scheme and host, default port and credentials dropped, dot segments resolved,
    escapes normalised, tracking parameters (utm_*, fbclid, gclid, ref, ...) dropped, query pairs
    sorted by key (values of a repeated key keep their order), fragment dropped. Non-HTTP URLs
    (mailto:, javascript:) come back with only the scheme lower-cased and the fragment dropped.
    """
    # As browsers do (WHATWG URL): trim spaces and controls, drop tabs and newlines inside.
    url = url.strip(_TRIMMED).replace("\t", "").replace("\n", "").replace("\r", "")
    if _CONTROL.search(url):
        raise MalformedURL("control character in URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise MalformedURL(str(e)) from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise MalformedURL("no scheme")
    if scheme not in HTTP_SCHEMES:
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))
    host = _host(parts.hostname or "")
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = _remove_dot_segments(_normalize_escapes(parts.path or "/", _PATH_SAFE))
    pairs = []
    for item in parts.query.split("&"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if _is_tracking(key):
            continue
        pairs.append(_normalize_escapes(key, _QUERY_SAFE) + eq + _normalize_escapes(value, _QUERY_SAFE))
    pairs.sort(key=lambda p: p.partition("=")[0])
    return urlunsplit((scheme, netloc, path, "&".join(pairs), ""))


# URLs that ``canonicalize`` returns unchanged (RE2 syntax, for Arrow's vectorised match): a
# lower-case http(s) scheme and host, no user, port, query or fragment, and a path of characters
# kept as they are (no escapes) without "." or ".." segments. Most crawled URLs are such.
_PATH_CHARS = r"A-Za-z0-9\-_~!$&'()*+,;=:@"  # but "." and "%"
_SEGMENT = rf"(?:[{_PATH_CHARS}][.{_PATH_CHARS}]*|\.[{_PATH_CHARS}][.{_PATH_CHARS}]*|\.\.[.{_PATH_CHARS}]+)?"
CANONICAL_URL = rf"^https?://[a-z0-9_-]+(?:\.[a-z0-9_-]+)*(?:/{_SEGMENT})+$"


def canonicalize_array(urls):
    """``canonicalize`` over a pyarrow string array: a string array of the canonical URLs, null
    where a URL is missing or malformed. The URLs ``CANONICAL_URL`` matches (one vectorised test)
    are kept as they are, never copied out of Arrow; only the others go through ``canonicalize``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    urls = urls.cast(pa.string())
    others = np.asarray(pc.invert(pc.fill_null(pc.match_substring_regex(urls, CANONICAL_URL), False)), bool)
    if not others.any():
        return urls
    fixed = []
    for url in urls.filter(pa.array(others)).to_pylist():
        try:
            fixed.append(canonicalize(url) if url else None)
        except MalformedURL:
            fixed.append(None)
    return pc.replace_with_mask(urls, pa.array(others), pa.array(fixed, pa.string()))


def is_http(url: str) -> bool:
    return url.split(":", 1)[0].lower() in HTTP_SCHEMES


def host_of(url: str) -> str:
    """The host (no port, no trailing dot) of a URL; '' when it has none or cannot be parsed."""
    try:
        return (urlsplit(url.strip()).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def origin_of(url: str) -> str:
    """scheme://host[:port] of a canonical URL: what one robots.txt and one politeness gate cover."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}"


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=1)
def _extractor():
    import tldextract

    # suffix_list_urls=(): the snapshot bundled with tldextract, never a download; no disk cache.
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@functools.lru_cache(maxsize=65536)
def registered_domain(host: str) -> str:
    """The site a host belongs to: public suffix + one label (www.cs.cornell.edu -> cornell.edu).

    An IP address is its own site; a name under no known suffix (other.example, localhost)
    keeps its last two labels.
    """
    host = host.lower().rstrip(".")
    if ip_literal(host) is not None:
        return host.strip("[]")
    r = _extractor()(host)
    top = getattr(r, "top_domain_under_public_suffix", None)
    if top is None:
        top = f"{r.domain}.{r.suffix}" if r.domain and r.suffix else ""
    return top or ".".join(host.split(".")[-2:])


def site_of(url: str) -> str:
    """registered_domain of a URL's host ('' when it has none)."""
    host = host_of(url)
    return registered_domain(host) if host else ""
