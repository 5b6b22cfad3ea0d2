"""The crawl stage: seeds -> ``raw/<part>.warc.gz`` + ``crawl_log/<part>.parquet``.

Parts are shards: seeds grouped by registered domain (so every host of a site is crawled by one
worker and per-host politeness holds on any number of workers), hashed into ``crawl.shards``
buckets. ``plan`` has no cluster to ask for its size, so ``crawl.shards: 0`` means one shard per
registered domain, at most AUTO_SHARDS: enough parts to keep that many workers busy, each
part still mixing many domains when there are many. Empty buckets make no part.

Per part (shard ``shard-NNNN``):

- ``raw/shard-NNNN.warc.gz``: request + response records of every fetched HTML page
  (see ``pagecat.etl.crawl.warc``), written to a local temporary file while crawling, then
  copied to ``<name>.tmp-<random>`` in the run directory and renamed;
- ``crawl_log/shard-NNNN.parquet`` (CRAWL_LOG): one row per URL queued; ``warc_file`` is the
  WARC's path relative to the run directory (``raw/shard-NNNN.warc.gz``);
- ``rejects/crawl/shard-NNNN.parquet`` (REJECTS): the rows not fetched, reason
  ``<outcome>:<reason>``, source the referring page (or the seeds file for a seed).

Counts: in = URLs queued, out = fetched, rejected = failed + skipped + filtered, dropped = 0,
plus failed, skipped, filtered, bytes (HTML bytes kept) and retries.
"""

from __future__ import annotations

import collections
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pagecat.config import Config
from pagecat.etl.crawl.engine import crawl_shard
from pagecat.etl.crawl.seeds import check_seeds, read_seeds, seed_site, shard_of
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import CRAWL_LOG, REJECTS, table
from pagecat.stage import Part, Stage

AUTO_SHARDS = 16


def shard_count(cfg: Config, sites: int) -> int:
    """``crawl.shards`` when set, else min(registered domains, AUTO_SHARDS), at least 1."""
    return cfg.crawl.shards if cfg.crawl.shards > 0 else max(1, min(sites, AUTO_SHARDS))


class CrawlStage(Stage):
    name = "crawl"
    sections = ("crawl",)
    upstream = ()
    outputs = ("raw", "crawl_log")
    unit = "URLs"

    def external_inputs(self, cfg: Config, run: RunDir) -> list[str]:
        return [cfg.crawl.seeds] if cfg.crawl.seeds else []

    def check(self, cfg: Config, run: RunDir) -> None:
        check_seeds(cfg.crawl)

    def plan(self, cfg: Config, run: RunDir) -> list[Part]:
        seeds = read_seeds(cfg.crawl)
        n = shard_count(cfg, len({seed_site(s) for s in seeds}))
        used = sorted({shard_of(s, n) for s in seeds})
        return [Part(id=f"shard-{i:04d}", inputs=self.external_inputs(cfg, run), args={"shard": i, "shards": n})
                for i in used]

    @staticmethod
    def run_part(part: Part, cfg: Config, run: RunDir) -> dict[str, int]:
        shard, shards = part.args["shard"], part.args["shards"]
        seeds = [s for s in read_seeds(cfg.crawl) if shard_of(s, shards) == shard]
        warc_name = f"raw/{part.id}.warc.gz"
        with tempfile.TemporaryDirectory(prefix="pagecat-crawl-") as tmp:
            local = Path(tmp) / f"{part.id}.warc.gz"
            with open(local, "wb") as out:
                rows, counts = crawl_shard(seeds, cfg.crawl, out, warc_name, name=f"crawl {part.id}")
            dest = run.path("raw", f"{part.id}.warc.gz")
            staging = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
            run.makedirs("raw")
            run.fs.put_file(str(local), staging)
            run.fs.mv(staging, dest)
        run.write_table(run.path("crawl_log", f"{part.id}.parquet"), table(rows, CRAWL_LOG))
        seeds_source = cfg.crawl.seeds or "crawl.urls"
        rejects = [{"source": r["referrer"] or seeds_source, "stage": "crawl",
                    "reason": f"{r['outcome']}:{r['reason']}", "record": r["url"]}
                   for r in rows if r["outcome"] != "fetched"]
        run.write_table(run.path("rejects", "crawl", f"{part.id}.parquet"), table(rejects, REJECTS))
        return counts

    def finish(self, cfg: Config, run: RunDir, client: Any, manifest: Manifest) -> dict[str, Any]:
        """Manifest extras: the WARC files, and URLs per outcome and per reason."""
        outcomes: collections.Counter = collections.Counter()
        reasons: collections.Counter = collections.Counter()
        for path in run.list_files("crawl_log", suffix=".parquet"):
            t = run.read_part(path, columns=["outcome", "reason"])
            outcomes.update(t.column("outcome").to_pylist())
            reasons.update(r for r in t.column("reason").to_pylist() if r)
        return {"warc_files": [f"raw/{Path(p).name}" for p in run.list_files("raw", suffix=".warc.gz")],
                "outcomes": dict(outcomes), "reasons": dict(reasons.most_common())}
