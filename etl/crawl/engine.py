"""Crawling the sites of one shard: what to fetch, in which order, and what is logged.

For each seed (a "site": the seed's registered domain) the crawl goes breadth first: the seed
(depth 0), then the same-site links of the pages fetched at depth d become depth d + 1, up to
``max_depth``. Within a depth the links are ordered by ``LinkRanker`` (priority keyword, then
the parent's rank, then document order), and a site fetches at most ``max_pages_per_site`` URLs
(every fetch attempt counts, so a site full of dead links costs no more). ``rank`` is a URL's
position in its site's order: 0 for the seed.

Every URL queued gets one crawl-log row (``pagecat.schemas.CRAWL_LOG``) with one outcome:
fetched, failed, skipped (robots, content_type:*, max_pages, redirect_duplicate) or filtered
(scheme, offsite, private_address, malformed_url, duplicate_seed). A URL is fetched once per
shard (shards are whole registered domains, so once per crawl); a link to a URL already queued
is not queued again and gets no row. Rows that fetch nothing are per site: two sites of a shard
may both log the same offsite link.

State (sites, queued URLs, found links, fetched URLs) lives in a ``Frontier`` (sqlite), so memory
holds only the waves in flight, and rows and pages go to an output (``segments``) that completes
a segment at a time together with the frontier's transaction: a shard killed at any moment
resumes where its last complete segment ended.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import BinaryIO

from pagecat.config import CrawlSettings
from pagecat.etl.crawl.fetch import Fetcher, FetchResult
from pagecat.etl.crawl.frontier import DONE, Frontier, SiteRef, Visit
from pagecat.etl.crawl.links import HtmlLinkExtractor, LinkExtractor, LinkRanker
from pagecat.etl.crawl.render import open_renderer
from pagecat.etl.crawl.seeds import Seed
from pagecat.etl.crawl.segments import MemoryOutput
from pagecat.urls import MalformedURL, canonicalize, is_http, site_of

log = logging.getLogger("pagecat.crawl")
PROGRESS_EVERY = 2.0  # seconds between progress reports
SITE_BATCH = 1000  # pending sites read from the frontier at a time
# Sites crawled at once, per request slot of ``concurrency``. A site has one request (its seed) in
# its first wave and waits on robots.txt and its host's gate, so with one site per slot, slots sit
# idle while sites wait; requests in flight stay capped at ``concurrency`` by the fetcher.
SITES_PER_SLOT = 4
OUTCOMES = ("fetched", "failed", "skipped", "filtered")
LINK_CACHE = 4096  # canonical forms of recent links kept (about 1.5 MB)

__all__ = ["OUTCOMES", "ShardCrawler", "Visit", "counts", "crawl_shard"]


@functools.lru_cache(maxsize=LINK_CACHE)
def link_target(url: str) -> tuple[str, str | None, str]:
    """(canonical URL, why it cannot be queued or None, its registered domain) of a link's
    absolute URL; a malformed one stays as it is. Cached: a site's pages share their navigation
    links (a fifth of the links in the WebKB benchmark crawl were seen before)."""
    try:
        url = canonicalize(url)
    except MalformedURL:
        return url, "malformed_url", ""
    if not is_http(url):
        return url, "scheme", ""
    return url, None, site_of(url)


class ShardCrawler:
    """Crawls a shard's seeds into ``output`` (MemoryOutput or SegmentedOutput), with its state
    in ``frontier``.

    Parameters: ``settings`` (CrawlSettings); ``frontier`` (default: in memory); ``output``
    (default: MemoryOutput keeping rows only); ``links`` (page -> links, default
    HtmlLinkExtractor); ``ranker`` (default LinkRanker(settings.link_priorities)); ``renderer``
    (an async ``render(url) -> html`` run on every fetched page; default: a ChromiumRenderer when
    ``settings.render_js``);
    ``on_progress(stats)`` called every PROGRESS_EVERY seconds and at the end with pages, rows,
    errors, queued, pages_per_s; ``name`` for log lines.
    """

    def __init__(self, settings: CrawlSettings, frontier: Frontier | None = None, output=None,
                 links: LinkExtractor | None = None, ranker: LinkRanker | None = None, renderer=None,
                 on_progress: Callable[[dict], None] | None = None, name: str = "crawl"):
        self.settings = settings
        self.frontier = frontier or Frontier()
        self.output = output or MemoryOutput()
        self.links = links or HtmlLinkExtractor()
        self.ranker = ranker or LinkRanker(settings.link_priorities)
        self.renderer = renderer
        self.on_progress = on_progress
        self.name = name
        self.tally: collections.Counter = collections.Counter()  # rows per outcome in this run
        self.retries = 0
        self.fetcher: Fetcher | None = None
        self._t0 = time.perf_counter()

    # -- rows and segments -----------------------------------------------------------------
    def _row(self, v: Visit, outcome: str, reason: str | None, res: FetchResult | None = None) -> dict:
        resp = res.response if res else None
        row = {"seed_id": v.seed_id, "url": v.url, "outcome": outcome, "reason": reason,
               "status": res.status if res else 0, "bytes": len(resp.body) if resp else 0,
               "truncated": bool(resp and resp.truncated), "seconds": res.seconds if res else 0.0,
               "fetched_at": res.fetched_at if res else None, "depth": v.depth, "rank": v.rank,
               "referrer": v.referrer, "link_text": v.link_text, "warc_file": None, "warc_offset": None}
        self.tally[outcome] += 1
        return row

    def _log_unfetched(self, v: Visit, outcome: str, reason: str, how=Frontier.log_unfetched) -> None:
        how(self.frontier, v, outcome, reason, self.output.seg)
        self.output.add_row(self._row(v, outcome, reason))

    def _commit(self) -> None:
        f = self.frontier
        f.set("last_seg", self.output.seg)
        f.set("retries", int(f.get("retries", 0)) + self.retries)
        self.retries = 0
        f.commit()

    def flush(self) -> None:
        """Complete the open segment together with the frontier's state."""
        self.output.flush(self._commit)

    # -- one URL -----------------------------------------------------------------------------
    async def _visit(self, site: SiteRef, v: Visit) -> None:
        def on_redirect(target: str) -> tuple[str, str] | None:
            if not is_http(target):
                return ("filtered", "scheme")
            if site_of(target) != site.domain:
                return ("filtered", "offsite")
            if not self.frontier.claim(target, v.owner):
                return ("skipped", "redirect_duplicate")
            return None

        res = await self.fetcher.fetch(v.url, on_redirect)
        self.retries += res.retries
        rendered = None
        if res.outcome == "fetched" and self.renderer is not None:
            resp = res.response
            rendered = await self.renderer.render(resp.url, resp.body, resp.header("Content-Type") or "text/html")
        # No await from here on: the page, its row and its links go to the same segment.
        row = self._row(v, res.outcome, res.reason, res)
        if res.outcome == "fetched":
            resp = res.response
            row["warc_file"], row["warc_offset"] = self.output.write_page(
                resp, res.fetched_at, seed_id=v.seed_id, depth=v.depth, rank=v.rank, link_text=v.link_text or "")
            if rendered is not None and row["warc_file"] is not None:
                self.output.write_conversion(resp.url, rendered, res.fetched_at, self.output.warc.last_response_id)
            if v.depth < self.settings.max_depth:
                body = rendered.encode("utf-8") if rendered is not None else resp.body
                ctype = "text/html; charset=utf-8" if rendered is not None else (resp.header("Content-Type") or "")
                found = self.links(resp.url, body, ctype)
                self.frontier.add_links(v, [(self.ranker.priority(k), k.position, k.url, k.text) for k in found],
                                        self.output.seg)
        self.frontier.log_fetched(v, res.outcome, res.reason, self.output.seg)
        self.output.add_row(row)
        if self.output.due():
            self.flush()

    # -- one site ----------------------------------------------------------------------------
    def _rank_wave(self, site: SiteRef, depth: int) -> None:
        """Turn the links found at ``depth`` into depth + 1's queue (in rank order); log the
        ones that cannot be queued."""
        f = self.frontier
        rank = f.next_rank(site.id)
        for url, text, referrer, _ in f.take_links(site.id, depth):
            url, reason, domain = link_target(url)
            if f.known(site.id, url):
                continue
            if reason is None and domain != site.domain:
                reason = "offsite"
            v = Visit(url, site.seed_id, depth + 1, rank, referrer, text, site.id)
            rank += 1
            if reason:
                self._log_unfetched(v, "filtered", reason, Frontier.log_new)
            else:
                f.enqueue(v)
        f.set_next_rank(site.id, rank)

    async def _crawl_site(self, site: SiteRef) -> None:
        f, s = self.frontier, self.settings
        while True:
            depth = f.lowest_queued_depth(site.id)
            if depth is None:
                break
            used = f.attempts(site.id)
            admitted = []
            for v in f.queued_at(site.id, depth, site.seed_id):
                if used >= s.max_pages_per_site:
                    self._log_unfetched(v, "skipped", "max_pages", Frontier.log_queued)
                elif not f.claim(v.url, v.owner):
                    f.drop(v)  # another site fetched it since it was queued (only after a resume)
                else:
                    used += 1
                    f.start(v)
                    admitted.append(v)
            await asyncio.gather(*(self._visit(site, v) for v in admitted))
            if depth < s.max_depth:
                self._rank_wave(site, depth)
        f.site_done(site.id, self.output.seg)

    # -- the shard ---------------------------------------------------------------------------
    def seed(self, seeds: list[Seed]) -> None:
        """Sites for the seeds, once per shard; the seeds that cannot be crawled get their row.
        ``run`` does it too; called first, the caller need not keep the seeds for the crawl."""
        f = self.frontier
        if f.get("seeded"):
            return
        for seed in seeds:
            v = Visit(seed.url, seed.url_id, 0, 0)
            try:
                v.url, reason = canonicalize(seed.url), None
            except MalformedURL:
                reason = "malformed_url"
            if reason is None and not is_http(v.url):
                reason = "scheme"
            elif reason is None and f.is_claimed(v.url):
                reason = "duplicate_seed"
            if reason:
                v.site = f.add_site(seed.url_id, v.url, "", status=DONE)
                self._log_unfetched(v, "filtered", reason)
            else:
                v.site = f.add_site(seed.url_id, v.url, site_of(v.url))
                f.claim(v.url, v.owner)  # before any site starts, so no link can take a seed's URL
                f.enqueue(v)
        f.set("seeded", 1)

    def resume(self, last_complete: int) -> None:
        """Reconcile the frontier with the output's complete segments (see Frontier.recover)."""
        for site, seed_id, url, depth, rank, ref, text, outcome, reason in self.frontier.recover(last_complete):
            self.output.add_row(self._row(Visit(url, seed_id, depth, rank, ref, text, site), outcome, reason))

    def stats(self) -> dict:
        dt = max(time.perf_counter() - self._t0, 1e-9)
        fetched = self.tally["fetched"]
        return {"shard": self.name, "pages": fetched, "rows": sum(self.tally.values()),
                "errors": self.tally["failed"], "queued": self.frontier.queued,
                "seconds": round(dt, 2), "pages_per_s": round(fetched / dt, 2)}

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            st = self.stats()
            if self.on_progress is not None:
                self.on_progress(st)
            log.debug("%s: %d pages (%.1f/s), %d errors, %d queued", self.name, st["pages"], st["pages_per_s"],
                      st["errors"], st["queued"])
            if self.output.due():  # a quiet shard still completes a segment every segment_seconds
                self.flush()

    async def run(self, seeds: list[Seed]) -> None:
        self._t0 = time.perf_counter()
        self.seed(seeds)
        next_after = 0
        batch: collections.deque[SiteRef] = collections.deque()

        def next_site() -> SiteRef | None:
            nonlocal next_after
            if not batch:
                batch.extend(self.frontier.pending_sites(next_after, SITE_BATCH))
                if batch:
                    next_after = batch[-1].id
            return batch.popleft() if batch else None

        async def worker() -> None:
            while (site := next_site()) is not None:
                await self._crawl_site(site)

        async with Fetcher(self.settings) as self.fetcher, contextlib.AsyncExitStack() as stack:
            if self.renderer is None and self.settings.render_js:
                self.renderer = await stack.enter_async_context(open_renderer(self.settings))
            progress = asyncio.create_task(self._progress())
            try:
                await asyncio.gather(*(worker() for _ in range(self.settings.concurrency * SITES_PER_SLOT)))
            finally:
                progress.cancel()
        self.frontier.set("complete", 1)
        self.flush()
        if self.on_progress is not None:
            self.on_progress({**self.stats(), "done": True})


def counts(rows: Iterable[dict]) -> dict[str, int]:
    """Stage counts of crawl-log rows (read once, so a generator does): in = out + rejected
    (failed + skipped + filtered)."""
    by = dict.fromkeys(OUTCOMES, 0)
    kept = 0
    for r in rows:
        by[r["outcome"]] += 1
        if r["outcome"] == "fetched":
            kept += r["bytes"]
    n = sum(by.values())
    return {"in": n, "out": by["fetched"], "rejected": n - by["fetched"], "dropped": 0,
            "failed": by["failed"], "skipped": by["skipped"], "filtered": by["filtered"], "bytes": kept}


def crawl_shard(seeds: list[Seed], settings: CrawlSettings, warc_out: BinaryIO | None = None,
                warc_name: str = "", name: str = "crawl", **kwargs) -> tuple[list[dict], dict[str, int]]:
    """Crawl ``seeds`` in a new event loop, state in memory; pages go to ``warc_out`` (a binary
    file) when given. Returns (crawl-log rows, counts incl. ``retries``). ``kwargs`` go to
    ShardCrawler."""
    output = MemoryOutput(warc_out, warc_name)
    frontier = Frontier()
    crawler = ShardCrawler(settings, frontier, output, name=name, **kwargs)
    try:
        asyncio.run(crawler.run(seeds))
    finally:
        retries = int(frontier.get("retries", 0))
        frontier.close()
    return output.rows, {**counts(output.rows), "retries": retries}
