"""The crawl stage: seeds -> ``raw/<part>/seg-*.warc.gz`` + ``crawl_log/<part>/seg-*.parquet``.

Parts are shards: seeds grouped by registered domain (so every host of a site is crawled by one
worker and per-host politeness holds on any number of workers), hashed into ``crawl.shards``
buckets. ``plan`` has no cluster to ask for its size, so ``crawl.shards: 0`` means one shard per
registered domain, at most AUTO_SHARDS: enough parts to keep that many workers busy, each
part still mixing many domains when there are many. Empty buckets make no part.

Per part (shard ``shard-NNNN``), in segments completed atomically (see ``segments``):

- ``raw/shard-NNNN/seg-NNNNN.warc.gz``: request + response records of every fetched HTML page
  (see ``pagecat.etl.crawl.warc``);
- ``crawl_log/shard-NNNN/seg-NNNNN.parquet`` (CRAWL_LOG): one row per URL queued; ``warc_file``
  is the WARC's path relative to the run directory;
- ``rejects/crawl/shard-NNNN/seg-NNNNN.parquet`` (REJECTS): the rows not fetched, reason
  ``<outcome>:<reason>``, source the referring page (or the seeds file for a seed);
- the shard's frontier, ``crawl_state/shard-NNNN.sqlite`` (or under ``crawl.state_dir``).

A shard killed in the middle (the whole process group, SIGKILL) resumes when the stage runs
again: it keeps its complete segments, deletes the rest, and continues from its frontier, so
no stored page is fetched again and none is lost. Without its frontier file (another machine,
a remote run directory and no ``state_dir``) a shard starts over.

Counts: in = URLs queued, out = fetched, rejected = failed + skipped + filtered, dropped = 0,
plus failed, skipped, filtered, bytes (HTML bytes kept) and retries.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from pagecat.config import Config
from pagecat.errors import UsageError
from pagecat.etl.crawl.progress import CrawlProgress
from pagecat.etl.crawl.render import find_browser
from pagecat.etl.crawl.seeds import check_seeds, read_seeds, seed_site, shard_of
from pagecat.etl.crawl.shard import crawl_part
from pagecat.runs import Manifest, RunDir
from pagecat.stage import Part, Stage

log = logging.getLogger("pagecat.crawl")
AUTO_SHARDS = 16


def shard_count(cfg: Config, sites: int) -> int:
    """``crawl.shards`` when set, else min(registered domains, AUTO_SHARDS), at least 1."""
    return cfg.crawl.shards if cfg.crawl.shards > 0 else max(1, min(sites, AUTO_SHARDS))


class CrawlStage(Stage):
    name = "crawl"
    sections = ("crawl",)
    upstream = ()
    outputs = ("raw", "crawl_log", "crawl_state")
    unit = "URLs"

    def external_inputs(self, cfg: Config, run: RunDir) -> list[str]:
        return [cfg.crawl.seeds] if cfg.crawl.seeds else []

    def check(self, cfg: Config, run: RunDir) -> None:
        check_seeds(cfg.crawl)
        for key in ("segment_pages", "segment_seconds", "render_timeout"):
            if getattr(cfg.crawl, key) <= 0:
                raise UsageError(f"config field crawl.{key}: must be positive, got {getattr(cfg.crawl, key)}")
        if cfg.crawl.render_js:
            find_browser(cfg.crawl)

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        """One part per non-empty shard, the shards with the most seeds first: parts start in this
        order, so the longest ones do not start last and keep one worker busy while the rest wait."""
        seeds = read_seeds(cfg.crawl)
        n = shard_count(cfg, len({seed_site(s) for s in seeds}))
        sizes = collections.Counter(shard_of(s, n) for s in seeds)
        order = sorted(sizes, key=lambda i: (-sizes[i], i))
        return [Part(id=f"shard-{i:04d}", inputs=self.external_inputs(cfg, run), args={"shard": i, "shards": n})
                for i in order]

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        return crawl_part(cfg, run, part.id, part.args["shard"], part.args["shards"])

    @staticmethod
    def live_status(client, parts: list[Part]) -> CrawlProgress:
        """A context manager the runner may wrap the part loop in: one status line every few
        seconds (pages, pages/s, errors, queue size), from the shards' progress events."""
        return CrawlProgress(client, total_shards=len(parts))

    def finish(self, cfg: Config, run: RunDir, client: Any, manifest: Manifest) -> dict[str, Any]:
        """Manifest extras: the WARC files, and URLs per outcome and per reason."""
        outcomes: collections.Counter = collections.Counter()
        reasons: collections.Counter = collections.Counter()
        for path in run.list_files("crawl_log", suffix=".parquet"):
            t = run.read_part(path, columns=["outcome", "reason"])
            outcomes.update(t.column("outcome").to_pylist())
            reasons.update(r for r in t.column("reason").to_pylist() if r)
        raw = run.path("raw") + "/"
        return {"warc_files": ["raw/" + p[len(raw):] for p in run.list_files("raw", suffix=".warc.gz")],
                "outcomes": dict(outcomes), "reasons": dict(reasons.most_common())}

