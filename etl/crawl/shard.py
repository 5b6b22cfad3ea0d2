"""One shard of the crawl stage, start to finish, in the calling process.

``crawl_part`` is what ``CrawlStage.run_part`` runs on a Dask worker, and what a single process
runs without Dask: it imports nothing of Dask itself (a shard on a worker publishes progress
through the worker it finds), so a crawl process carries only what crawling needs.

Memory follows the work in flight, not the shard's size: the frontier is on disk, rows and
pages go out a segment at a time (``segments``), and the counts are summed one crawl-log
segment at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from pagecat.config import Config
from pagecat.etl.crawl.engine import ShardCrawler, counts
from pagecat.etl.crawl.frontier import Frontier
from pagecat.etl.crawl.progress import publish
from pagecat.etl.crawl.seeds import Seed, read_seeds, shard_of
from pagecat.etl.crawl.segments import SegmentedOutput
from pagecat.runs import RunDir

log = logging.getLogger("pagecat.crawl")


def state_path(cfg: Config, run: RunDir, part_id: str) -> Path:
    """Where a shard's frontier lives: a local file (sqlite needs one)."""
    if cfg.crawl.state_dir:
        key = hashlib.sha1(run.root.encode()).hexdigest()[:12]
        return Path(cfg.crawl.state_dir) / key / f"{part_id}.sqlite"
    if run.is_local:
        return Path(run.path("crawl_state", f"{part_id}.sqlite"))
    key = hashlib.sha1(run.root.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "pagecat-crawl-state" / key / f"{part_id}.sqlite"


def shard_seeds(cfg: Config, shard: int, shards: int) -> list[Seed]:
    return [s for s in read_seeds(cfg.crawl) if shard_of(s, shards) == shard]


def _log_rows(run: RunDir, files: list[str]) -> Iterator[dict]:
    """The outcome and bytes of the crawl-log segments ``files``' rows, one segment in memory at a time."""
    for path in files:
        yield from run.read_part(path, columns=["outcome", "bytes"]).to_pylist()


def log_counts(run: RunDir, files: list[str]) -> dict[str, int]:
    """Stage counts (``engine.counts``) of the crawl-log segments ``files``, read one at a time."""
    return counts(_log_rows(run, files))


@contextlib.contextmanager
def system_arrow_pool():
    """Arrow allocates from the C library's heap while the shard runs (then the pool before is
    restored). Its mimalloc pool (Arrow's default on Linux) keeps freed pages resident: after a
    crawl's many small tables (seeds, segment logs, Parquet encoding) about 15-30 MB more for the
    rest of the crawl, where glibc's are handed back by ``segments.release_free_memory``. Buffers
    remember their pool, so work of other tasks in the process is unaffected but for speed."""
    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)


def crawl_part(cfg: Config, run: RunDir, part_id: str, shard: int, shards: int) -> dict[str, int]:
    """Crawl shard ``shard`` of ``shards`` into ``run`` (resuming it when it was cut short);
    returns its counts, ``retries`` included."""
    with system_arrow_pool():
        return _crawl_part(cfg, run, part_id, shard, shards)


def _crawl_part(cfg: Config, run: RunDir, part_id: str, shard: int, shards: int) -> dict[str, int]:
    state = state_path(cfg, run, part_id)
    fresh = not state.exists()
    state.parent.mkdir(parents=True, exist_ok=True)
    frontier = Frontier(state)
    output = SegmentedOutput(run, part_id, cfg.crawl.seeds or "crawl.urls", cfg.crawl.segment_pages,
                             cfg.crawl.segment_seconds)
    try:
        last_seg, config = int(frontier.get("last_seg", -1)), cfg.section_hash("crawl")
        if output.last_complete() not in (last_seg, last_seg - 1) or frontier.get("config", config) != config:
            fresh = True  # frontier and segments disagree (outputs cleared, another config): start over
        if fresh and frontier.get("seeded"):
            frontier.close()
            state.unlink()
            frontier = Frontier(state)
        frontier.set("config", config)
        last = output.recover(fresh=fresh)
        if not frontier.get("complete"):
            if not fresh:
                log.info("crawl %s: resuming after segment %d", part_id, last)
            asyncio.run(_crawl(cfg, shard, shards, frontier, output, part_id, last))
        retries = int(frontier.get("retries", 0))
    finally:
        frontier.close()
        output.close()
    return {**log_counts(run, output.log_files()), "retries": retries}


async def _crawl(cfg: Config, shard: int, shards: int, frontier: Frontier, output: SegmentedOutput, name: str,
                 last: int) -> None:
    crawler = ShardCrawler(cfg.crawl, frontier, output, on_progress=publish, name=name)
    crawler.resume(last)
    if not frontier.get("seeded"):  # the seeds go to the frontier; the list is not kept for the crawl
        crawler.seed(shard_seeds(cfg, shard, shards))
    await crawler.run([])
