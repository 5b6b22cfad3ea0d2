"""Resume after SIGKILL: a real ``pagecat crawl`` process group killed mid-shard, then run again.

The loopback site lives in this process and counts requests per path, so "fetched again" is
measured at the server. Two registered domains (127.0.0.1 and localhost) make two shards on two
Dask workers; small segments make several complete before the kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from fastwarc.warc import ArchiveIterator as FastArchiveIterator
from fastwarc.warc import WarcRecordType
from warcio.archiveiterator import ArchiveIterator

from pagecat.config import CrawlSettings
from pagecat.etl.crawl.engine import crawl_shard
from pagecat.etl.crawl.replay import BackgroundServer
from pagecat.etl.crawl.seeds import Seed
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import CRAWL_LOG

SITES = 3  # seeds per host
PAGES = 24  # links on each seed page
LATENCY = 0.08  # seconds per page: slow enough to kill the crawl in the middle


class SlowSite:
    """/s<k>/ links to /s<k>/p<i> (each links back, to a sibling and offsite); counts requests."""

    def __init__(self):
        self.hits: Counter = Counter()
        self.app = web.Application(middlewares=[self._count])
        self.app.router.add_get("/robots.txt", lambda r: web.Response(text="User-agent: *\nDisallow: /s0/p3\n"))
        self.app.router.add_get("/s{k}/", self._seed)
        self.app.router.add_get("/s{k}/p{i}", self._page)

    @web.middleware
    async def _count(self, request, handler):
        self.hits[f"{request.host.split(':')[0]}{request.path_qs}"] += 1
        return await handler(request)

    @staticmethod
    def _html(body: str) -> web.Response:
        return web.Response(text=f"<html><body>{body}</body></html>", content_type="text/html")

    async def _seed(self, request):
        await asyncio.sleep(LATENCY)
        k = request.match_info["k"]
        return self._html("".join(f'<a href="/s{k}/p{i}">page {i}</a>' for i in range(PAGES)))

    async def _page(self, request):
        await asyncio.sleep(LATENCY)
        k, i = request.match_info["k"], int(request.match_info["i"])
        return self._html(f'<p>page {i}</p><a href="/s{k}/">home</a><a href="/s{k}/p{i + 100}">deeper</a>'
                          f'<a href="http://elsewhere.example/{i}">out</a>')


def _settings(port: int) -> dict:
    return {"seeds": None, "urls": [f"http://{host}:{port}/s{k}/" for host in ("127.0.0.1", "localhost")
                                    for k in range(SITES)],
            "max_depth": 2, "max_pages_per_site": 20, "concurrency": 8, "per_host_concurrency": 2,
            "allow_private": True, "timeout_total": 5.0, "retries": 0, "shards": 2,
            "segment_pages": 6, "segment_seconds": 30.0}


def _crawl(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pagecat", "crawl", "-c", str(config)],
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _complete_segments(run: RunDir) -> list[str]:
    return run.list_files("crawl_log", suffix=".parquet")


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    site = SlowSite()
    with BackgroundServer(site.app) as server:
        cfg = {"run": {"dir": str(tmp / "run")}, "crawl": _settings(server.port),
               "cluster": {"n_workers": 2, "threads_per_worker": 1, "dashboard_address": ":0"}}
        config = tmp / "pagecat.yaml"
        config.write_text(yaml.safe_dump(cfg))
        run = RunDir(cfg["run"]["dir"])

        first = _crawl(config)
        deadline = time.monotonic() + 60
        while len(_complete_segments(run)) < 4 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, f"the crawl ended before it could be killed:\n{first.stdout.read()}"
        os.killpg(first.pid, signal.SIGKILL)  # scheduler, workers and all
        first.wait()
        time.sleep(0.5)  # let the server finish requests the dead crawler sent
        before = run.read_dataset("crawl_log", schema=CRAWL_LOG).to_pylist()
        hits_before = Counter(site.hits)

        second = _crawl(config)
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 0, out

        # the same crawl, never interrupted, in this process: what the resumed one must equal
        ref_site = SlowSite()
        with BackgroundServer(ref_site.app) as ref_server:
            settings = _settings(ref_server.port)
            urls = settings.pop("urls")
            ref_rows, _ = crawl_shard([Seed(f"s{i}", u) for i, u in enumerate(urls)], CrawlSettings(**settings))
    return {"run": run, "site": site, "before": before, "hits_before": hits_before, "port": server.port,
            "ref_port": ref_server.port, "ref_rows": ref_rows, "output": out}


def test_killed_crawl_resumes_without_refetching_stored_pages(resumed):
    run, hits = resumed["run"], resumed["site"].hits
    log = run.read_dataset("crawl_log", schema=CRAWL_LOG).to_pylist()
    stored_before = [r for r in resumed["before"] if r["outcome"] == "fetched"]
    assert stored_before, "no page was stored before the kill"
    assert len(log) > len(resumed["before"]), "the second run did no work"

    def path(url: str) -> str:
        return url.split("://", 1)[1].replace(f":{resumed['port']}", "")

    for r in stored_before:  # a page stored before the kill was never requested again
        assert hits[path(r["url"])] == 1, r["url"]
    again = [p for p, n in hits.items() if n > 1 and not p.endswith("/robots.txt")]
    # only pages in flight or in the open segment at the kill: at most a segment + the requests in flight
    assert len(again) <= 6 + 8 * 2, again
    assert "resuming" in resumed["output"] or Manifest.load(run, "crawl").status == "complete"


def test_every_url_has_one_outcome_and_matches_an_uninterrupted_crawl(resumed):
    log = resumed["run"].read_dataset("crawl_log", schema=CRAWL_LOG).to_pylist()
    keys = Counter((r["url"], r["seed_id"]) for r in log)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
    seeds = {f"s{i}": u for i, u in enumerate(_settings(0)["urls"])}
    ids = {r["url"]: r["seed_id"] for r in log if r["depth"] == 0}

    def norm(url: str, port: int) -> str:
        return url.replace(f":{port}", ":PORT")

    got = {(norm(r["url"], resumed["port"]), r["outcome"], r["reason"], r["depth"]) for r in log}
    want = {(norm(r["url"], resumed["ref_port"]), r["outcome"], r["reason"], r["depth"]) for r in resumed["ref_rows"]}
    assert got == want
    assert len(ids) == len(seeds) and all(r["seed_id"] for r in log)
    m = Manifest.load(resumed["run"], "crawl")
    assert m.status == "complete" and m.counts["in"] == len(log) == m.counts["out"] + m.counts["rejected"]
    assert m.counts["out"] == sum(r["outcome"] == "fetched" for r in log)


def test_warc_segments_valid_after_kill(resumed):
    run = resumed["run"]
    log = run.read_dataset("crawl_log", schema=CRAWL_LOG).to_pylist()
    fetched = {(r["warc_file"], r["warc_offset"]): r["url"] for r in log if r["outcome"] == "fetched"}
    files = run.list_files("raw", suffix=".warc.gz")
    assert len(files) >= 4 and all("/shard-" in f and "/seg-" in f for f in files)
    seen = {}
    for f in files:
        rel = "raw/" + f.split("/raw/", 1)[1]
        with open(f, "rb") as fh:
            it = ArchiveIterator(fh)
            for rec in it:  # warcio reads every record to the end
                if rec.rec_type == "response":
                    rec.content_stream().read()
                    seen[(rel, it.get_record_offset())] = rec.rec_headers.get_header("WARC-Target-URI")
        with open(f, "rb") as fh:
            n = sum(1 for _ in FastArchiveIterator(fh, record_types=WarcRecordType.response))
        assert n == sum(1 for k in seen if k[0] == rel)
    assert seen == fetched  # every stored page has its row and every fetched row its record
