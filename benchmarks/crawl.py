"""Crawl speed and memory against Scrapy, on the WebKB replay site on loopback; frontier memory.

Both crawlers fetch the same seeds (every archived WebKB page is a seed, like one business of
a directory) through the same replay proxy (its own process, on 127.0.0.1), with the same
settings: max_depth 1, 5 pages per site, no delay, the same global and per-host concurrency,
robots.txt obeyed, cookies off, one retry. pagecat writes WARC segments and a crawl log;
Scrapy writes every page (url, status, body) to a gzipped JSON-lines feed.

Rows: pagecat on 2 Dask workers and on 1 (peak memory: the workers' peak RSS, summed; and
idle_worker_rss, what the same workers held before the crawl, bare Dask), pagecat's shard
crawler alone in one process (``crawl_part``, no Dask: the crawler itself against Scrapy's
process), Scrapy in one process; pages/s = 2xx HTML pages stored per second of crawl. Peak
RSS is each process's own high-water mark (VmHWM), shared libraries included, the same for
both crawlers (not ru_maxrss, which a child inherits from this script); the Dask rows leave out
the client process (scheduler, nannies), which does none of the crawl's work. Then the RSS a
frontier of N queued URLs adds (N = 1,000,000; 200,000 with --quick, which also crawls only the
first QUICK_SEEDS seeds of the bundled sample).

    python benchmarks/crawl.py [--quick] [--json FILE]
"""

from __future__ import annotations

import csv
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

if __package__ in (None, ""):  # run as a script (python benchmarks/crawl.py): the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import Result, Timer, own_peak_rss_mb, parse_args, report

SETTINGS = {"max_depth": 1, "max_pages_per_site": 5, "concurrency": 64, "per_host_concurrency": 16,
            "delay": 0.0, "retries": 1, "timeout_total": 15.0, "obey_robots": True,
            "user_agent": "pagecat-bench/0.1"}
QUICK_SEEDS = 500  # --quick: the first seeds of the bundled sample


# -- the replay site, in its own process ----------------------------------------------------
def _serve(source: str, ready, stop) -> None:
    from pagecat.data.webkb import load_sample, read_archive
    from pagecat.etl.crawl.replay import ReplayProxy

    records = load_sample() if source == "sample" else list(read_archive(source))
    with ReplayProxy(records) as proxy:
        ready.put((proxy.url, [r["url"] for r in records]))
        stop.wait()


class ReplaySite:
    def __init__(self, source: str):
        ctx = mp.get_context("spawn")
        self._ready, self._stop = ctx.Queue(), ctx.Event()
        self._proc = ctx.Process(target=_serve, args=(source, self._ready, self._stop), daemon=True)

    def __enter__(self):
        self._proc.start()
        self.url, self.urls = self._ready.get(timeout=300)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._proc.join(10)


# -- pagecat ------------------------------------------------------------------------------------
def _config(tmp: Path, seeds: Path, proxy: str, name: str, **extra) -> dict:
    return {"run": {"dir": str(tmp / name)}, "crawl": {**SETTINGS, "seeds": str(seeds), "proxy": proxy, **extra}}


def run_pagecat_dask(tmp: Path, seeds: Path, proxy: str, workers: int) -> tuple[float, int, float, float]:
    """(seconds, pages, summed worker peak RSS MB, summed idle worker RSS MB before the crawl) of
    the crawl stage on ``workers`` workers, on the LocalCluster ``pagecat crawl`` starts."""
    from pagecat.cluster import connect
    from pagecat.config import config_from_dict
    from pagecat.etl.crawl.stage import CrawlStage
    from pagecat.runs import RunDir
    from pagecat.stage import execute

    cfg = config_from_dict({**_config(tmp, seeds, proxy, f"dask{workers}"),
                            "cluster": {"n_workers": workers, "threads_per_worker": 1, "dashboard_address": ":0"}})
    with connect(cfg, quiet=True) as client, client.cluster:
        idle = client.run(own_peak_rss_mb)  # a bare Dask worker, before any crawl module is imported
        with Timer() as t:
            m = execute(CrawlStage(), cfg, RunDir(cfg.run.dir), client, progress=False)
        peaks = client.run(own_peak_rss_mb)
    return t.seconds, m.counts["out"], sum(peaks.values()), sum(idle.values())


PLAIN = textwrap.dedent("""
    import json, resource, sys, time
    from pagecat.config import config_from_dict
    from pagecat.etl.crawl.shard import crawl_part
    from pagecat.runs import RunDir
    cfg = config_from_dict(json.loads(sys.argv[1]))
    t0 = time.perf_counter()
    counts = crawl_part(cfg, RunDir(cfg.run.dir), "shard-0000", 0, 1)
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
    print(json.dumps({"seconds": time.perf_counter() - t0, "pages": counts["out"], "rss": hwm,
                      "cpu": sum(resource.getrusage(resource.RUSAGE_SELF)[:2])}))
""")


def run_pagecat_plain(tmp: Path, seeds: Path, proxy: str) -> tuple[float, int, float]:
    cfg = _config(tmp, seeds, proxy, "plain", shards=1)
    out = subprocess.run([sys.executable, "-c", PLAIN, json.dumps(cfg)], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  cpu {r['cpu']:.1f}s", file=sys.stderr)
    return r["seconds"], r["pages"], r["rss"]


# -- Scrapy -------------------------------------------------------------------------------------
SPIDER = textwrap.dedent("""
    import collections, json, resource, sys
    import scrapy
    from scrapy.crawler import CrawlerProcess
    from scrapy.linkextractors import LinkExtractor
    from pagecat.urls import site_of

    seeds_file, feed, max_depth, max_pages, conc, per_host, ua, timeout, retries = sys.argv[1:10]
    max_depth, max_pages = int(max_depth), int(max_pages)

    class Bench(scrapy.Spider):
        name = "bench"

        async def start(self):
            self.used = collections.Counter()
            for i, url in enumerate(open(seeds_file).read().split()):
                self.used[i] += 1
                yield scrapy.Request(url, callback=self.parse, meta={"seed": i, "site": site_of(url)})

        def parse(self, response):
            if "html" not in response.headers.get("Content-Type", b"text/html").decode("latin-1").lower():
                return
            yield {"url": response.url, "status": response.status, "body": response.text}
            if response.meta["depth"] >= max_depth:
                return
            seed, site = response.meta["seed"], response.meta["site"]
            for link in LinkExtractor(allow_domains=[site]).extract_links(response):
                if self.used[seed] >= max_pages:
                    break
                self.used[seed] += 1
                yield response.follow(link.url, callback=self.parse, meta={"seed": seed, "site": site})

    process = CrawlerProcess({
        "CONCURRENT_REQUESTS": int(conc), "CONCURRENT_REQUESTS_PER_DOMAIN": int(per_host), "DOWNLOAD_DELAY": 0,
        "DEPTH_LIMIT": max_depth, "ROBOTSTXT_OBEY": True, "COOKIES_ENABLED": False, "USER_AGENT": ua,
        "RETRY_TIMES": int(retries), "DOWNLOAD_TIMEOUT": float(timeout), "AUTOTHROTTLE_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False, "LOG_LEVEL": "ERROR",
        "FEEDS": {feed: {"format": "jsonlines",
                         "postprocessing": ["scrapy.extensions.postprocessing.GzipPlugin"]}},
    })
    crawler = process.create_crawler(Bench)
    process.crawl(crawler)
    process.start()
    s = crawler.stats.get_stats()
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
    print(json.dumps({"seconds": s["elapsed_time_seconds"], "pages": s.get("item_scraped_count", 0), "rss": hwm,
                      "cpu": sum(resource.getrusage(resource.RUSAGE_SELF)[:2])}))
""")


def run_scrapy(tmp: Path, urls: list[str], proxy: str) -> tuple[float, int, float]:
    seeds = tmp / "scrapy-seeds.txt"
    seeds.write_text("\n".join(urls))
    s = SETTINGS
    # through the proxy for every request, robots.txt included
    env = {**os.environ, "http_proxy": proxy, "https_proxy": proxy, "no_proxy": ""}
    args = [str(seeds), str(tmp / "scrapy.jsonl.gz"), s["max_depth"], s["max_pages_per_site"], s["concurrency"],
            s["per_host_concurrency"], s["user_agent"], s["timeout_total"], s["retries"]]
    spider = tmp / "bench_spider.py"  # a file: Scrapy reads its callbacks' source
    spider.write_text(SPIDER)
    out = subprocess.run([sys.executable, str(spider), *map(str, args)], capture_output=True, text=True,
                         env=env, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  cpu {r['cpu']:.1f}s", file=sys.stderr)
    return r["seconds"], r["pages"], r["rss"]


# -- the frontier -------------------------------------------------------------------------------
FRONTIER = textwrap.dedent("""
    import json, os, sys, tempfile, time
    from pagecat.etl.crawl.frontier import Frontier, Visit

    def rss():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    n = int(sys.argv[1])
    with tempfile.TemporaryDirectory() as d:
        f = Frontier(os.path.join(d, "frontier.sqlite"))
        before, t0 = rss(), time.perf_counter()
        site = 0
        for i in range(n):
            if i % 10 == 0:
                host = f"site{i // 10}.example"
                site = f.add_site(f"seed{i}", f"http://{host}/", host)
            f.enqueue(Visit(f"http://{host}/products/item-{i}/about-the-company.html", f"seed{i}", 1, i % 10,
                            f"http://{host}/", "About our company", site))
            if i % 100_000 == 99_999:
                f.commit()
        f.commit()
        print(json.dumps({"added_mb": rss() - before, "seconds": time.perf_counter() - t0, "queued": f.queued}))
        f.close()
""")


def frontier_memory(n: int) -> dict:
    out = subprocess.run([sys.executable, "-c", FRONTIER, str(n)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args("crawl", __doc__.splitlines()[0])
    source = "sample" if args.quick else str(Path(args.data) / "webkb")
    if source != "sample" and not (Path(source) / "webkb_raw_html.tar.gz").is_file():
        print(f"{source}/webkb_raw_html.tar.gz not found: using the bundled sample", file=sys.stderr)
        source = "sample"
    dataset = f"webkb-sample-{QUICK_SEEDS}" if args.quick else "webkb-sample" if source == "sample" else "webkb"
    results = []
    with tempfile.TemporaryDirectory(prefix="pagecat-bench-crawl-") as d, ReplaySite(source) as site:
        tmp = Path(d)
        urls = site.urls[:QUICK_SEEDS] if args.quick else site.urls
        seeds = tmp / "seeds.csv"
        with open(seeds, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["url"])
            w.writerows([u] for u in urls)
        print(f"{len(urls)} seeds through the replay proxy at {site.url}", file=sys.stderr)
        runs = [("scrapy", lambda: run_scrapy(tmp, urls, site.url)),
                ("pagecat-2-workers", lambda: run_pagecat_dask(tmp, seeds, site.url, 2)),
                ("pagecat-1-worker", lambda: run_pagecat_dask(tmp, seeds, site.url, 1)),
                ("pagecat-1-process", lambda: run_pagecat_plain(tmp, seeds, site.url))]
        for system, fn in runs:
            seconds, pages, rss, *idle = fn()
            print(f"{system}: {pages} pages in {seconds:.1f}s, peak {rss:.0f} MB", file=sys.stderr)
            results += [Result(system, dataset, "pages_per_s", pages / seconds, "pages/s"),
                        Result(system, dataset, "pages", pages, "pages"),
                        Result(system, dataset, "peak_rss", rss, "MB")]
            if idle:  # what the Dask workers held before crawling: part of peak_rss, not the crawl's
                results.append(Result(system, dataset, "idle_worker_rss", idle[0], "MB"))
    n = 200_000 if args.quick else 1_000_000
    fr = frontier_memory(n)
    results += [Result("pagecat", f"frontier-{n}", "rss_added", fr["added_mb"], "MB"),
                Result("pagecat", f"frontier-{n}", "enqueue_per_s", n / fr["seconds"], "URLs/s")]
    report("crawl", results, args, ratios=[(s, "scrapy", m) for s in ("pagecat-2-workers", "pagecat-1-worker",
                                                                       "pagecat-1-process")
                                           for m in ("pages_per_s", "peak_rss")])


if __name__ == "__main__":
    main()
