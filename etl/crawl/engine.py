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

Fetching and politeness are the ``Fetcher``'s; what a page links to is the ``links`` callable's.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from typing import BinaryIO

from pagecat.config import CrawlSettings
from pagecat.etl.crawl.fetch import Fetcher, FetchResult
from pagecat.etl.crawl.links import HtmlLinkExtractor, Link, LinkExtractor, LinkRanker
from pagecat.etl.crawl.seeds import Seed
from pagecat.etl.crawl.warc import WarcShardWriter
from pagecat.urls import MalformedURL, canonicalize, is_http, site_of

log = logging.getLogger("pagecat.crawl")
LOG_EVERY = 5.0  # seconds between progress lines
OUTCOMES = ("fetched", "failed", "skipped", "filtered")


@dataclass
class Visit:
    """A URL queued for a site."""

    url: str  # canonical (or the raw href, for a malformed one)
    seed_id: str
    depth: int
    rank: int
    referrer: str | None = None
    link_text: str | None = None


class _Site:
    def __init__(self, seed: Seed, url: str):
        self.seed = seed
        self.url = url
        self.domain = site_of(url)
        self.logged: set[str] = {url}  # URLs with a row for this site
        self.next_rank = 1


class ShardCrawler:
    """Crawls a list of seeds; ``run(seeds) -> list[dict]`` crawl-log rows (one per URL queued).

    Parameters: ``settings`` (CrawlSettings); ``warc`` (where fetched pages go, None to keep no
    pages); ``warc_name`` (the file name rows record); ``links`` (page -> links, default
    HtmlLinkExtractor); ``ranker`` (default LinkRanker(settings.link_priorities)); ``name`` for
    progress lines.
    """

    def __init__(self, settings: CrawlSettings, warc: WarcShardWriter | None = None, warc_name: str = "",
                 links: LinkExtractor | None = None, ranker: LinkRanker | None = None, name: str = "crawl"):
        self.settings = settings
        self.warc = warc
        self.warc_name = warc_name
        self.links = links or HtmlLinkExtractor()
        self.ranker = ranker or LinkRanker(settings.link_priorities)
        self.name = name
        self.rows: list[dict] = []
        self.tally: collections.Counter = collections.Counter()  # rows per outcome, for progress lines
        self.claimed: set[str] = set()  # URLs fetched or being fetched in this shard
        self.retries = 0
        self.fetcher: Fetcher | None = None

    # -- rows ----------------------------------------------------------------------------
    def _row(self, v: Visit, outcome: str, reason: str | None, res: FetchResult | None = None) -> dict:
        resp = res.response if res else None
        row = {"seed_id": v.seed_id, "url": v.url, "outcome": outcome, "reason": reason,
               "status": res.status if res else 0, "bytes": len(resp.body) if resp else 0,
               "truncated": bool(resp and resp.truncated), "seconds": res.seconds if res else 0.0,
               "fetched_at": res.fetched_at if res else None, "depth": v.depth, "rank": v.rank,
               "referrer": v.referrer, "link_text": v.link_text, "warc_file": None, "warc_offset": None}
        self.rows.append(row)
        self.tally[outcome] += 1
        return row

    # -- one URL -------------------------------------------------------------------------
    async def _visit(self, site: _Site, v: Visit) -> list[Link]:
        def on_redirect(target: str) -> tuple[str, str] | None:
            if not is_http(target):
                return ("filtered", "scheme")
            if site_of(target) != site.domain:
                return ("filtered", "offsite")
            if target in self.claimed:
                return ("skipped", "redirect_duplicate")
            self.claimed.add(target)
            return None

        res = await self.fetcher.fetch(v.url, on_redirect)
        self.retries += res.retries
        row = self._row(v, res.outcome, res.reason, res)
        if res.outcome != "fetched":
            return []
        resp = res.response
        if self.warc is not None:
            row["warc_file"] = self.warc_name
            row["warc_offset"] = self.warc.write_page(resp, res.fetched_at, seed_id=v.seed_id, depth=v.depth,
                                                      rank=v.rank, link_text=v.link_text or "")
        if v.depth >= self.settings.max_depth:
            return []
        return self.links(resp.url, resp.body, resp.header("Content-Type") or "")

    # -- one site ------------------------------------------------------------------------
    def _next_wave(self, site: _Site, fetched: list[tuple[Visit, list[Link]]]) -> list[Visit]:
        """Rank the links of one depth's pages, log the ones that cannot be queued, and return
        the rest as the next depth's visits (in rank order)."""
        found = sorted(((self.ranker.priority(link), parent.rank, link.position), link, parent)
                       for parent, links in fetched for link in links)
        wave = []
        for _, link, parent in found:
            try:
                url, reason = canonicalize(link.url), None
            except MalformedURL:
                url, reason = link.url, "malformed_url"
            if url in site.logged or url in self.claimed:
                continue
            site.logged.add(url)
            if reason is None and not is_http(url):
                reason = "scheme"
            elif reason is None and site_of(url) != site.domain:
                reason = "offsite"
            v = Visit(url, site.seed.url_id, parent.depth + 1, site.next_rank, parent.url, link.text)
            site.next_rank += 1
            if reason:
                self._row(v, "filtered", reason)
            else:
                wave.append(v)
        return wave

    async def _crawl_site(self, site: _Site) -> None:
        wave = [Visit(site.url, site.seed.url_id, 0, 0)]
        budget = self.settings.max_pages_per_site
        for depth in range(self.settings.max_depth + 1):
            admitted = []
            for v in wave:
                if budget > 0:
                    budget -= 1
                    self.claimed.add(v.url)  # _next_wave checked `claimed` with no await since
                    admitted.append(v)
                else:
                    self._row(v, "skipped", "max_pages")
            if not admitted:
                return
            links = await asyncio.gather(*(self._visit(site, v) for v in admitted))
            if depth < self.settings.max_depth:
                wave = self._next_wave(site, list(zip(admitted, links)))

    # -- the shard -----------------------------------------------------------------------
    def _start_sites(self, seeds: list[Seed]) -> list[_Site]:
        """Canonicalise the seeds; the ones that cannot be crawled get their row here."""
        sites = []
        for seed in seeds:
            v = Visit(seed.url, seed.url_id, 0, 0)
            try:
                v.url = canonicalize(seed.url)
            except MalformedURL:
                self._row(v, "filtered", "malformed_url")
                continue
            if not is_http(v.url):
                self._row(v, "filtered", "scheme")
            elif v.url in self.claimed:
                self._row(v, "filtered", "duplicate_seed")
            else:
                self.claimed.add(v.url)  # before any site starts, so no link can take a seed's URL
                sites.append(_Site(seed, v.url))
        return sites

    async def _progress(self, t0: float) -> None:
        while True:
            await asyncio.sleep(LOG_EVERY)
            fetched, dt = self.tally["fetched"], time.perf_counter() - t0
            log.info("%s: %d URLs done, %d pages (%.1f pages/s), %d failed, %d retries", self.name,
                     len(self.rows), fetched, fetched / dt, self.tally["failed"], self.retries)

    async def run(self, seeds: list[Seed]) -> list[dict]:
        t0 = time.perf_counter()
        sites = self._start_sites(seeds)
        queue: asyncio.Queue[_Site] = asyncio.Queue()
        for site in sites:
            queue.put_nowait(site)

        async def worker() -> None:
            while not queue.empty():
                await self._crawl_site(queue.get_nowait())

        async with Fetcher(self.settings) as self.fetcher:
            progress = asyncio.create_task(self._progress(t0))
            try:
                await asyncio.gather(*(worker() for _ in range(min(self.settings.concurrency, len(sites)))))
            finally:
                progress.cancel()
        c = counts(self.rows)
        log.info("%s: %d URLs, %d fetched, %d failed, %d skipped, %d filtered in %.1fs", self.name,
                 c["in"], c["out"], c["failed"], c["skipped"], c["filtered"], time.perf_counter() - t0)
        return self.rows


def counts(rows: list[dict]) -> dict[str, int]:
    """Stage counts of crawl-log rows: in = out + rejected (failed + skipped + filtered)."""
    by = {o: 0 for o in OUTCOMES}
    for r in rows:
        by[r["outcome"]] += 1
    return {"in": len(rows), "out": by["fetched"], "rejected": len(rows) - by["fetched"], "dropped": 0,
            "failed": by["failed"], "skipped": by["skipped"], "filtered": by["filtered"],
            "bytes": sum(r["bytes"] for r in rows if r["outcome"] == "fetched")}


def crawl_shard(seeds: list[Seed], settings: CrawlSettings, warc_out: BinaryIO | None = None,
                warc_name: str = "", name: str = "crawl", **kwargs) -> tuple[list[dict], dict[str, int]]:
    """Crawl ``seeds`` in a new event loop; pages go to ``warc_out`` (a binary file) when given.

    Returns (crawl-log rows, counts incl. ``retries``). ``kwargs`` go to ShardCrawler.
    """
    warc = WarcShardWriter(warc_out, warc_name) if warc_out is not None else None
    crawler = ShardCrawler(settings, warc, warc_name, name=name, **kwargs)
    rows = asyncio.run(crawler.run(seeds))
    return rows, {**counts(rows), "retries": crawler.retries}
