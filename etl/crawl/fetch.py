"""Fetching one URL politely and safely: the part of the crawler that talks HTTP.

``Fetcher.fetch(url)`` -> ``FetchResult`` with exactly one outcome:

- ``fetched``: a 2xx HTML response (body capped at ``max_bytes``, ``truncated`` when cut);
- ``failed``: ``http_<status>``, ``timeout``, ``connection_error``, ``dns_error``,
  ``too_many_redirects``, ``redirect_loop``, ``bad_redirect``, ``bad_response``, ``proxy_http_<status>``;
- ``skipped``: ``robots``, ``content_type:<type>``, or whatever ``on_redirect`` says;
- ``filtered``: ``scheme``, ``private_address``, ``malformed_url``, or ``on_redirect``'s reason.

Politeness, in the order a request meets it: robots.txt (once per origin), the origin's gate
(``per_host_concurrency`` requests at once, ``delay`` or the robots Crawl-delay between starts,
a pause after Retry-After), then the worker-wide ``concurrency`` limit. 429 and 5xx responses,
timeouts and connection errors are retried ``retries`` times after ``backoff`` seconds, doubled
each time, or after Retry-After when that is longer. Redirects are followed by hand so that each
hop is checked again (scheme, address, robots, and the caller's scope).

Safety: only http(s); unless ``allow_private``, no target on a loopback, private, link-local,
reserved or multicast address: IP literals are refused before any request, host names at
connection time by ``SafeResolver`` (so DNS cannot change its answer between check and use).
With a ``proxy`` the crawler resolves no target host: the proxy fetches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Self
from urllib.parse import urljoin

import aiohttp

from pagecat.config import CrawlSettings
from pagecat.etl.crawl.politeness import HostGate, retry_after_seconds
from pagecat.etl.crawl.robots import MAX_ROBOTS_BYTES, RobotsCache
from pagecat.etl.crawl.safety import PrivateAddressError, SafeResolver, is_public_address
from pagecat.urls import MalformedURL, canonicalize, host_of, ip_literal, is_http, origin_of

HTML_TYPES = ("text/html", "application/xhtml+xml")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
CHUNK = 64 * 1024
SNIFF_BYTES = 1024
DRAIN_BYTES = 16 * 1024  # an unwanted body up to this size is read anyway, so the connection is reused
MAX_ROBOTS_REDIRECTS = 5
# An idle keep-alive connection is closed after this long. A site's pages are fetched in waves
# a fraction of a second apart, so this keeps reuse within a site; aiohttp's default (15 s) kept
# one idle connection (socket, parser, buffers) for every host of the last 15 s: thousands in a
# crawl of many small sites, and through a proxy just as many, since aiohttp pools per target host.
KEEPALIVE_SECONDS = 2.0

# on_redirect(target) -> (outcome, reason) to stop at a hop, or None to follow it
RedirectCheck = Callable[[str], "tuple[str, str] | None"]


@dataclass
class HttpResponse:
    """One HTTP exchange as the WARC keeps it. Header lists keep order and repeats."""

    url: str
    status: int
    reason: str
    version: str  # "HTTP/1.1"
    headers: list[tuple[str, str]]
    request_headers: list[tuple[str, str]]
    body: bytes = b""
    truncated: bool = False
    mime: str = ""  # the Content-Type's media type, lower case ('' when absent)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


@dataclass
class FetchResult:
    url: str  # the URL asked for (canonical)
    outcome: str  # fetched | failed | skipped | filtered
    reason: str | None = None
    status: int = 0
    response: HttpResponse | None = None  # the final hop's response, when fetched
    seconds: float = 0.0
    fetched_at: str = ""
    retries: int = 0
    redirects: list[str] = field(default_factory=list)  # hop targets followed, in order


class _Failure(Exception):
    def __init__(self, outcome: str, reason: str, retryable: bool = False):
        super().__init__(reason)
        self.outcome, self.reason, self.retryable = outcome, reason, retryable


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Fetcher:
    """Fetches URLs under ``settings`` (a CrawlSettings). Use as ``async with Fetcher(s) as f``."""

    def __init__(self, settings: CrawlSettings):
        self.settings = settings
        self.session: aiohttp.ClientSession | None = None
        self.robots = RobotsCache(self._fetch_robots, settings.user_agent)
        self._gates: dict[str, HostGate] = {}
        self._in_flight = asyncio.Semaphore(settings.concurrency)

    async def __aenter__(self) -> Self:
        s = self.settings
        # Our own gates limit per host; the connector's per-host limit would throttle a proxy.
        resolver = SafeResolver() if not (s.allow_private or s.proxy) else None
        connector = aiohttp.TCPConnector(limit=s.concurrency, limit_per_host=0, resolver=resolver,
                                         ttl_dns_cache=300, keepalive_timeout=KEEPALIVE_SECONDS)
        timeout = aiohttp.ClientTimeout(total=s.timeout_total, connect=s.timeout_connect,
                                        sock_connect=s.timeout_connect, sock_read=s.timeout_read)
        headers = {"User-Agent": s.user_agent, "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"}
        headers.update(s.headers)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers,
                                             cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
        return self

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()

    def gate(self, url: str) -> HostGate:
        origin = origin_of(url)
        g = self._gates.get(origin)
        if g is None:
            g = self._gates[origin] = HostGate(self.settings.per_host_concurrency, self.settings.delay)
        return g

    def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be requested at all ('scheme', 'private_address'), or None."""
        if not is_http(url):
            return "scheme"
        if not self.settings.allow_private and not self.settings.proxy:
            ip = ip_literal(host_of(url))
            if ip is not None and not is_public_address(ip):
                return "private_address"
        return None

    # -- one request ---------------------------------------------------------------------
    async def _request(self, url: str, max_bytes: int, any_type: bool = False) -> HttpResponse:
        """One GET, no redirects followed; raises _Failure. Reads the body only when it is kept:
        2xx HTML (or anything when ``any_type``); the rest of an over-long body is dropped."""
        try:
            async with self.gate(url).slot(), self._in_flight, \
                    self.session.get(url, allow_redirects=False, proxy=self.settings.proxy) as r:
                v = r.version
                resp = HttpResponse(
                    url=url, status=r.status, reason=r.reason or "",
                    version=f"HTTP/{v.major}.{v.minor}" if v else "HTTP/1.1",
                    headers=[(k.decode("latin-1"), val.decode("latin-1")) for k, val in r.raw_headers],
                    request_headers=list(r.request_info.headers.items()),
                    mime=(r.headers.get("Content-Type") or "").split(";")[0].strip().lower(),
                )
                if not 200 <= r.status < 300 or not (any_type or resp.mime in ("", *HTML_TYPES)):
                    if (r.content_length or DRAIN_BYTES + 1) <= DRAIN_BYTES:
                        await r.read()  # a short body read keeps the connection for the next request
                    return resp
                body = bytearray()
                async for chunk in r.content.iter_chunked(CHUNK):
                    body += chunk
                    if len(body) > max_bytes:
                        resp.truncated = True
                        break  # leaving the block closes the connection: the rest is never read
                resp.body = bytes(body[:max_bytes])
                return resp
        except TimeoutError:
            raise _Failure("failed", "timeout", retryable=True) from None
        except aiohttp.ClientConnectorDNSError as e:
            if isinstance(e.os_error, PrivateAddressError):
                raise _Failure("filtered", "private_address") from None
            raise _Failure("failed", "dns_error", retryable=True) from None
        except (aiohttp.InvalidURL, ValueError, UnicodeError):  # a URL aiohttp/yarl will not send
            raise _Failure("filtered", "malformed_url") from None
        except aiohttp.ClientHttpProxyError as e:  # the proxy refused (e.g. CONNECT for https)
            raise _Failure("failed", f"proxy_http_{e.status}") from None
        except aiohttp.ClientResponseError:  # a response aiohttp could not parse
            raise _Failure("failed", "bad_response") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError):
            raise _Failure("failed", "connection_error", retryable=True) from None
        except aiohttp.ClientError:
            raise _Failure("failed", "client_error") from None

    async def _request_with_retries(self, url: str, result: FetchResult) -> HttpResponse:
        s = self.settings
        for attempt in range(s.retries + 1):
            wait = s.backoff * 2**attempt
            try:
                resp = await self._request(url, s.max_bytes)
            except _Failure as f:
                if not f.retryable or attempt == s.retries:
                    raise
                last = f
            else:
                if resp.status != 429 and resp.status < 500:
                    return resp
                result.status = resp.status
                last = _Failure("failed", f"http_{resp.status}")
                retry_after = retry_after_seconds(resp.header("Retry-After"))
                if retry_after is not None:
                    if retry_after > s.max_retry_after or attempt == s.retries:
                        raise last
                    self.gate(url).pause(retry_after)  # the whole host waits, not just this URL
                    wait = max(wait, retry_after)
                elif attempt == s.retries:
                    raise last
            result.retries += 1
            await asyncio.sleep(wait)
        raise last  # not reached: the loop returns or raises

    # -- robots.txt ----------------------------------------------------------------------
    async def _fetch_robots(self, url: str) -> bytes | None:
        for _ in range(MAX_ROBOTS_REDIRECTS + 1):
            if self.refusal(url):
                return None
            try:
                resp = await self._request(url, MAX_ROBOTS_BYTES, any_type=True)
            except _Failure:
                return None
            if resp.status in REDIRECT_STATUSES and resp.header("Location"):
                try:
                    url = canonicalize(urljoin(url, resp.header("Location")))
                except (MalformedURL, ValueError):
                    return None
                continue
            return resp.body if 200 <= resp.status < 300 else None
        return None

    async def _allowed_by_robots(self, url: str) -> bool:
        gate = self.gate(url)
        if not gate.robots_checked:
            gate.robots_checked = True
            gate.delay = max(self.settings.delay, await self.robots.crawl_delay(origin_of(url)))
        return await self.robots.allowed(url)

    # -- one URL, with its redirects -----------------------------------------------------
    async def fetch(self, url: str, on_redirect: RedirectCheck | None = None) -> FetchResult:
        """Fetch canonical ``url`` following up to ``max_redirects`` redirects; never raises
        for anything the server or network does."""
        s = self.settings
        result = FetchResult(url=url, outcome="failed")
        t0 = time.perf_counter()
        chain = [url]
        current = url
        try:
            while True:
                refused = self.refusal(current)
                if refused:
                    raise _Failure("filtered", refused)
                if s.obey_robots and not await self._allowed_by_robots(current):
                    raise _Failure("skipped", "robots")
                resp = await self._request_with_retries(current, result)
                result.status = resp.status
                if resp.status in REDIRECT_STATUSES and resp.header("Location"):
                    try:
                        target = canonicalize(urljoin(current, resp.header("Location")))
                    except (MalformedURL, ValueError):
                        raise _Failure("failed", "bad_redirect") from None
                    if target in chain:
                        raise _Failure("failed", "redirect_loop")
                    if len(chain) > s.max_redirects:
                        raise _Failure("failed", "too_many_redirects")
                    stop = on_redirect(target) if on_redirect else None
                    if stop:
                        raise _Failure(*stop)
                    chain.append(target)
                    result.redirects.append(target)
                    current = target
                    continue
                if not 200 <= resp.status < 300:
                    raise _Failure("failed", f"http_{resp.status}")
                if resp.mime not in HTML_TYPES:
                    head = resp.body[:SNIFF_BYTES].lower()
                    if resp.mime or not (b"<html" in head or b"<!doctype html" in head):
                        raise _Failure("skipped", f"content_type:{resp.mime or 'unknown'}")
                result.outcome, result.response = "fetched", resp
                break
        except _Failure as f:
            result.outcome, result.reason = f.outcome, f.reason
        result.seconds = round(time.perf_counter() - t0, 4)
        result.fetched_at = _now_iso()
        return result
