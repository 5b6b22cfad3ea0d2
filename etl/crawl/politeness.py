"""Politeness per origin (scheme://host:port): how many requests at once, how far apart,
and how long to wait when the server says so (Retry-After)."""

from __future__ import annotations

import asyncio
import email.utils
import time
from contextlib import asynccontextmanager


class HostGate:
    """Politeness for one origin: at most ``concurrency`` requests at once, request starts
    spaced ``delay`` seconds apart, and no start before ``not_before`` (Retry-After)."""

    def __init__(self, concurrency: int, delay: float):
        self.delay = delay
        self.not_before = 0.0
        self.robots_checked = False
        self._slots = asyncio.Semaphore(concurrency)
        self._start = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        self.not_before = max(self.not_before, time.monotonic() + seconds)

    @asynccontextmanager
    async def slot(self):
        async with self._slots:
            async with self._start:
                wait = self.not_before - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.not_before = time.monotonic() + self.delay
            yield


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time()) if when is not None else None


