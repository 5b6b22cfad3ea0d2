"""Live progress of a distributed crawl: shards publish counters, the client prints one line.

Each shard's crawler calls ``publish(stats)`` every few seconds on its Dask worker; it becomes
an event of topic TOPIC on the scheduler (``Worker.log_event``). ``CrawlProgress`` subscribes
the client to that topic and keeps the latest counters of every shard, printing::

    [crawl] 3/8 shards done  12,345 pages  231.4 pages/s  17 errors  4,210 queued

Used as ``with CrawlProgress(client): ...`` around the part loop (``CrawlStage.live_status``).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

TOPIC = "pagecat-crawl-progress"
PRINT_EVERY = 2.0  # seconds between printed lines at most


def publish(stats: dict) -> None:
    """Send ``stats`` (a dict of str/int/float) as a progress event, when on a Dask worker."""
    if "distributed" not in sys.modules:  # not a Dask worker's process: importing Dask here would cost 20 MB
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not on a worker: a direct call, a test
        return
    worker.log_event(TOPIC, stats)


class CrawlProgress:
    """Client side: the latest stats per shard, and a status line printed to ``stream``.

    ``total_shards`` is for the 'done' count; ``line()`` gives the current line.
    """

    def __init__(self, client, total_shards: int = 0, stream: TextIO | None = None,
                 every: float = PRINT_EVERY):
        self.client, self.total_shards, self.every = client, total_shards, every
        self.stream = stream if stream is not None else sys.stderr
        self.shards: dict[str, dict] = {}
        self.lines: list[str] = []  # lines printed, newest last
        self._lock = threading.Lock()
        self._last_print = 0.0
        self._started = time.monotonic()

    def _on_event(self, event) -> None:
        _, msg = event  # (timestamp, msg)
        if not isinstance(msg, dict) or "shard" not in msg:
            return
        with self._lock:
            self.shards[msg["shard"]] = msg
            now = time.monotonic()
            if now - self._last_print >= self.every or msg.get("done"):
                self._last_print = now
                self._print(self.line())

    def _print(self, line: str) -> None:
        self.lines.append(line)
        print(line, file=self.stream, flush=True)

    def line(self) -> str:
        st = list(self.shards.values())
        done = sum(1 for s in st if s.get("done"))
        pages = sum(s.get("pages", 0) for s in st)
        # pages over the time the crawl has run: shards that finished between two lines still count
        elapsed = time.monotonic() - self._started
        rate = pages / elapsed if elapsed > 0 else 0.0
        errors = sum(s.get("errors", 0) for s in st)
        queued = sum(s.get("queued", 0) for s in st if not s.get("done"))
        total = self.total_shards or len(st)
        return (f"[crawl] {done}/{total} shards done  {pages:,} pages  {rate:.1f} pages/s  "
                f"{errors:,} errors  {queued:,} queued")

    def __enter__(self) -> CrawlProgress:
        self._started = time.monotonic()
        self.client.subscribe_topic(TOPIC, self._on_event)
        return self

    def __exit__(self, *exc) -> None:
        self.client.unsubscribe_topic(TOPIC)
