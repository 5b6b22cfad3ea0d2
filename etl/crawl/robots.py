"""robots.txt, fetched once per origin (scheme://host:port) and asked before every request.

A robots.txt that cannot be fetched (404, 5xx, timeout, not text) allows everything: the
crawl then relies on its own politeness (per-host concurrency, delay, Retry-After).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from protego import Protego

from pagecat.urls import origin_of

log = logging.getLogger("pagecat.crawl")

MAX_ROBOTS_BYTES = 512 * 1024  # RFC 9309: parse at least the first 500 KiB
MAX_CRAWL_DELAY = 30.0  # seconds; a longer Crawl-delay is capped, not obeyed to the letter

# fetch(robots_url) -> the body of a 2xx response, or None for anything else
RobotsFetch = Callable[[str], Awaitable[bytes | None]]


class RobotsCache:
    """``await allowed(url)``: whether ``user_agent`` may fetch ``url``.

    Concurrent first requests to one origin share one robots.txt fetch.
    """

    def __init__(self, fetch: RobotsFetch, user_agent: str):
        self.fetch = fetch
        self.user_agent = user_agent
        self._rules: dict[str, asyncio.Future] = {}

    async def _load(self, origin: str) -> Protego | None:
        try:
            body = await self.fetch(origin + "/robots.txt")
        except Exception as e:  # noqa: BLE001 - any failure means no rules, as documented
            log.debug("robots.txt of %s: %s", origin, e)
            body = None
        if body is None:
            return None
        try:
            return Protego.parse(body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace"))
        except Exception as e:  # noqa: BLE001 - an unparseable file is no file
            log.debug("robots.txt of %s unparseable: %s", origin, e)
            return None

    async def rules(self, origin: str) -> Protego | None:
        fut = self._rules.get(origin)
        if fut is None:
            fut = self._rules[origin] = asyncio.ensure_future(self._load(origin))
        return await asyncio.shield(fut)

    async def allowed(self, url: str) -> bool:
        rules = await self.rules(origin_of(url))
        return rules is None or rules.can_fetch(url, self.user_agent)

    async def crawl_delay(self, origin: str) -> float:
        """The origin's Crawl-delay in seconds (0 when none), capped at MAX_CRAWL_DELAY."""
        rules = await self.rules(origin)
        delay = rules.crawl_delay(self.user_agent) if rules is not None else None
        return min(float(delay or 0.0), MAX_CRAWL_DELAY)
