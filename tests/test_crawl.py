"""The crawler against a real aiohttp site on 127.0.0.1, and through the WebKB replay proxy.

The test site (one host) has a page for every case the crawl log must tell apart: links,
a 404, a 500-then-503-then-200 page, a page slower than the timeout, a redirect loop, a
redirect, a PDF, an image, a robots.txt-disallowed page, an offsite link, tracking-parameter and
fragment duplicates, a self link, a malformed href, a mailto: link, an over-long body, a 20 MB
body, a connection reset in the middle of a body, and pages with bad and mixed encodings.
It counts requests in flight, so per-host concurrency is measured, not assumed.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import itertools
import time
from collections import Counter
from urllib.parse import unquote
from urllib.request import ProxyHandler, build_opener

import aiohttp
import pyarrow as pa
import pytest
import yarl
from aiohttp import web
from distributed import Client, LocalCluster
from fastwarc.warc import ArchiveIterator as FastArchiveIterator
from fastwarc.warc import WarcRecordType
from warcio.archiveiterator import ArchiveIterator

from pagecat.config import CrawlSettings, config_from_dict
from pagecat.data.webkb import load_sample
from pagecat.errors import UsageError
from pagecat.etl.crawl.engine import crawl_shard
from pagecat.etl.crawl.links import HtmlLinkExtractor, LinkRanker
from pagecat.etl.crawl.politeness import retry_after_seconds
from pagecat.etl.crawl.replay import BackgroundServer, ReplayProxy
from pagecat.etl.crawl.seeds import Seed, read_seeds, shard_of
from pagecat.etl.crawl.stage import CrawlStage
from pagecat.runs import Manifest, RunDir
from pagecat.schemas import CRAWL_LOG, REJECTS
from pagecat.stage import execute
from pagecat.urls import MalformedURL, canonicalize, registered_domain

SLOW_SECONDS = 2.0
C_PAGES = 20  # links on the /c/ page: more than max_pages_per_site allows
HUGE = 20 * 2**20  # bytes the /huge page would send


def html(body: str) -> web.Response:
    return web.Response(text=f"<!doctype html><html><head><title>t</title></head><body>{body}</body></html>",
                        content_type="text/html")


INDEX = """
<a href="/about?utm_source=news&utm_medium=mail">Über uns – about</a>
<a href="/about#team">Team</a>
<a href="/missing">Gone</a>
<a href="/flaky">Flaky</a>
<a href="/slow">Slow</a>
<a href="/loop-a">Loop</a>
<a href="/doc.pdf">Report</a>
<a href="/private/secret">Secret</a>
<a href="http://other.example/page">Elsewhere</a>
<a href="/">Home</a>
<a href="http://[::1">Broken</a>
<a href="/big">Big</a>
<a href="mailto:someone@example.org">Mail</a>
<a href="/moved">Moved</a>
<a href="/services">Our services</a>
<a href="/r/0">Chain</a>
<a href="/away">Away</a>
<a href="/logo.png">Logo</a>
<a href="/reset">Reset</a>
<a href="/huge">Huge</a>
"""


class LocalSite:
    """An aiohttp app with one route per crawl case; counts hits and requests in flight."""

    def __init__(self):
        self.hits: Counter = Counter()
        self.times: dict[str, list[float]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.app = web.Application(middlewares=[self._track])
        r = self.app.router
        r.add_get("/robots.txt", lambda req: web.Response(text="User-agent: *\nDisallow: /private/\n"))
        r.add_get("/", lambda req: html(INDEX))
        r.add_get("/c/", lambda req: html("".join(f'<a href="/c/{i}">p{i}</a>' for i in range(C_PAGES))))
        r.add_get("/c/{n}", self._slow_page)
        for path in ("/about", "/services", "/landing", "/private/secret"):
            r.add_get(path, lambda req: html(f"<p>{req.path}</p>"))
        r.add_get("/flaky", self._flaky)
        r.add_get("/slow", self._slow)
        r.add_get("/loop-a", lambda req: web.HTTPFound("/loop-b"))
        r.add_get("/loop-b", lambda req: web.HTTPFound("/loop-a"))
        r.add_get("/moved", lambda req: web.HTTPMovedPermanently("/landing"))
        r.add_get("/away", lambda req: web.HTTPFound("http://other.example/landing"))
        r.add_get("/r/{n}", lambda req: web.HTTPFound(f"/r/{int(req.match_info['n']) + 1}"))
        r.add_get("/doc.pdf", lambda req: web.Response(body=b"%PDF-1.4 fake", content_type="application/pdf"))
        r.add_get("/big", lambda req: html("<p>" + "x" * 300_000 + "</p>"))
        r.add_get("/logo.png", lambda req: web.Response(body=b"\x89PNG\r\n\x1a\n" + bytes(200),
                                                         content_type="image/png"))
        r.add_get("/reset", self._reset)
        r.add_get("/huge", self._huge)
        # bad and mixed encodings: a charset nobody knows, and UTF-8 declared with Latin-1 bytes in it
        r.add_get("/enc-bad", lambda req: web.Response(
            body=b'<html><body><a href="/enc-target">\xff\xfe caf\xe9</a></body></html>',
            headers={"Content-Type": "text/html; charset=x-no-such-charset"}))
        r.add_get("/enc-mixed", lambda req: web.Response(
            body='<html><body><a href="/über">Über uns</a> <a href="/enc-target2">caf'.encode() + b"\xe9</a>"
                 + b"</body></html>", headers={"Content-Type": "text/html; charset=utf-8"}))
        r.add_get("/enc-target", lambda req: html("<p>target</p>"))
        r.add_get("/enc-target2", lambda req: html("<p>target 2</p>"))
        r.add_get("/über", lambda req: html("<p>über</p>"))

    @web.middleware
    async def _track(self, request, handler):
        self.hits[request.path] += 1
        self.times.setdefault(request.path, []).append(time.monotonic())
        # /slow outlives the client's timeout, so it would count a request the client gave up.
        counted = request.path != "/slow"
        if counted:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            if counted:
                self.in_flight -= 1

    async def _slow_page(self, request):
        await asyncio.sleep(0.15)
        return html(f"<p>page {request.match_info['n']}</p>")

    async def _flaky(self, request):
        n = self.hits["/flaky"]
        if n == 1:
            return web.Response(status=500, text="boom")
        if n == 2:
            return web.Response(status=503, text="busy", headers={"Retry-After": "1"})
        return html("<p>recovered</p>")

    async def _reset(self, request):
        resp = web.StreamResponse(headers={"Content-Type": "text/html", "Content-Length": "100000"})
        await resp.prepare(request)
        await resp.write(b"<html><body>" + b"x" * 2000)
        await asyncio.sleep(0.05)
        request.transport.abort()  # the connection drops 2 KB into a 100 KB body
        return resp

    async def _huge(self, request):
        resp = web.StreamResponse(headers={"Content-Type": "text/html", "Content-Length": str(HUGE)})
        await resp.prepare(request)
        chunk = b"<p>" + b"y" * (2**16 - 7) + b"</p>"
        self.huge_sent = 0
        try:
            while self.huge_sent < HUGE:
                await resp.write(chunk)
                self.huge_sent += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the crawler hung up once it had max_bytes
        return resp

    async def _slow(self, request):
        await asyncio.sleep(SLOW_SECONDS)
        return html("<p>too late</p>")


def settings(**kw) -> dict:
    """CrawlSettings fields for a fast crawl of a loopback site: small timeouts and backoff."""
    return {"max_depth": 1, "max_pages_per_site": 16, "per_host_concurrency": 2, "concurrency": 8,
            "timeout_connect": 0.5, "timeout_read": 0.5, "timeout_total": 1.5, "retries": 2, "backoff": 0.05,
            "max_bytes": 100_000, "allow_private": True, **kw}


# -- the main crawl, through the stage runner on a LocalCluster ---------------------------
@pytest.fixture(scope="module")
def crawled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crawl")
    site = LocalSite()
    with BackgroundServer(site.app) as server:
        base = server.url
        seeds = tmp / "seeds.csv"
        with open(seeds, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["url_id", "url", "name", "label"])
            w.writerow(["site", base + "/", "Test site", "demo"])
            w.writerow(["pages", base + "/c/", "Pages", "demo"])
            w.writerow(["dup", base + "/?utm_campaign=x", "Same as site", "demo"])
            w.writerow(["ftp", "ftp://example.org/file", "Not http", "demo"])
        cfg = config_from_dict({"run": {"dir": str(tmp / "run")},
                                "crawl": settings(seeds=str(seeds))})
        run = RunDir(cfg.run.dir)
        status = io.StringIO()
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
                Client(lc) as client:
            stage = CrawlStage()
            with stage.live_status(client, stage.plan(cfg, run)) as live:
                live.stream = status
                manifest = execute(stage, cfg, run, client, progress=False)
                deadline = time.monotonic() + 10  # the last events may arrive after the part's result
                while "1/1 shards done" not in live.line() and time.monotonic() < deadline:
                    time.sleep(0.05)
    log = run.read_dataset("crawl_log", schema=CRAWL_LOG)
    rows = {r["url"]: r for r in log.to_pylist() if r["reason"] != "duplicate_seed"}
    return {"base": base, "site": site, "run": run, "manifest": manifest, "log": log, "rows": rows,
            "status": status.getvalue()}


def test_crawl_log_outcomes(crawled):
    b, rows = crawled["base"], crawled["rows"]
    got = {url.removeprefix(b): (r["outcome"], r["reason"]) for url, r in rows.items()}
    assert got["/"] == ("fetched", None)
    assert got["/about"] == ("fetched", None)
    assert got["/services"] == ("fetched", None)
    assert got["/missing"] == ("failed", "http_404")
    assert got["/flaky"] == ("fetched", None)
    assert got["/slow"] == ("failed", "timeout")
    assert got["/loop-a"] == ("failed", "redirect_loop")
    assert got["/doc.pdf"] == ("skipped", "content_type:application/pdf")
    assert got["/private/secret"] == ("skipped", "robots")
    assert got["http://other.example/page"] == ("filtered", "offsite")
    assert got["http://[::1"] == ("filtered", "malformed_url")
    assert got["mailto:someone@example.org"] == ("filtered", "scheme")
    assert got["/moved"] == ("fetched", None)  # its page is /landing, which got no row of its own
    assert "/landing" not in got and "/loop-b" not in got
    assert got["ftp://example.org/file"] == ("filtered", "scheme")
    assert got["/r/0"] == ("failed", "too_many_redirects")
    assert got["/away"] == ("filtered", "offsite")  # the redirect's target was checked, not fetched
    assert got["/logo.png"] == ("skipped", "content_type:image/png")
    assert got["/reset"] == ("failed", "connection_error")
    seed_ids = {r["seed_id"]: (r["outcome"], r["reason"]) for r in crawled["log"].to_pylist() if r["depth"] == 0}
    assert seed_ids["dup"] == ("filtered", "duplicate_seed")
    assert Counter(r["reason"] for r in rows.values() if r["url"].startswith(b + "/c/"))["max_pages"] == \
        C_PAGES - 15  # the /c/ site may fetch 16 URLs: its seed and 15 links
    # one row per URL: self link, fragment and utm variants are not queued again
    assert len(crawled["log"]) == len(rows) + 1  # + the duplicate seed's row
    site = crawled["site"]
    assert site.hits["/about"] == 1 and site.hits["/"] == 1 and site.hits["/private/secret"] == 0
    assert [site.hits[f"/r/{i}"] for i in range(7)] == [1, 1, 1, 1, 1, 1, 0]  # max_redirects: 5
    big = rows[b + "/big"]
    assert big["outcome"] == "fetched" and big["truncated"] and big["bytes"] == 100_000
    huge = rows[b + "/huge"]  # 20 MB offered: max_bytes kept, the rest never read
    assert huge["outcome"] == "fetched" and huge["truncated"] and huge["bytes"] == 100_000
    assert site.hits["/huge"] == 1 and site.huge_sent < HUGE // 4
    about = rows[b + "/about"]
    assert (about["depth"], about["referrer"], about["link_text"]) == (1, b + "/", "Über uns – about")
    assert rows[b + "/"]["status"] == 200 and rows[b + "/missing"]["status"] == 404


def test_retries_backoff_and_retry_after(crawled):
    site, rows, b = crawled["site"], crawled["rows"], crawled["base"]
    assert site.hits["/flaky"] == 3
    t = site.times["/flaky"]
    assert t[2] - t[1] >= 0.95  # Retry-After: 1 was honoured
    assert site.hits["/slow"] == 3 and rows[b + "/slow"]["status"] == 0
    assert site.hits["/missing"] == 1  # a 404 is not retried
    assert site.hits["/reset"] == 3  # a connection reset is retried, then fails
    assert crawled["manifest"].counts["retries"] == 6


def test_ranking_by_link_priorities(crawled):
    rows, b = crawled["rows"], crawled["base"]
    assert rows[b + "/"]["rank"] == 0
    assert rows[b + "/about"]["rank"] == 1  # "about" is the first priority
    assert rows[b + "/services"]["rank"] == 2  # "services" comes next among the links
    assert rows[b + "/missing"]["rank"] == 3  # then document order


def test_per_host_concurrency_never_exceeded(crawled):
    assert crawled["site"].max_in_flight == 2


def test_live_status_line(crawled):
    lines = crawled["status"].splitlines()
    fetched = crawled["manifest"].counts["out"]
    assert lines and lines[-1].startswith("[crawl] 1/1 shards done") and f"{fetched:,} pages" in lines[-1]
    assert "pages/s" in lines[-1] and "errors" in lines[-1] and "queued" in lines[-1]


def test_counts_and_manifest(crawled):
    m, log = crawled["manifest"], crawled["log"]
    c = m.counts
    outcomes = Counter(log.column("outcome").to_pylist())
    assert c["in"] == len(log) == c["out"] + c["rejected"] + c["dropped"]
    assert (c["out"], c["failed"], c["skipped"], c["filtered"]) == (
        outcomes["fetched"], outcomes["failed"], outcomes["skipped"], outcomes["filtered"])
    assert m.extra["outcomes"] == dict(outcomes) and m.extra["reasons"]["max_pages"] == C_PAGES - 15
    rejects = crawled["run"].read_dataset("rejects", "crawl", schema=REJECTS)
    assert len(rejects) == c["rejected"]
    assert "failed:http_404" in rejects.column("reason").to_pylist()
    assert Manifest.load(crawled["run"], "crawl").status == "complete"


def test_warc_readable_by_warcio(crawled):
    run, rows = crawled["run"], crawled["rows"]
    (path,) = run.list_files("raw", suffix=".warc.gz")
    with open(path, "rb") as f:
        data = f.read()
    records = list(ArchiveIterator(io.BytesIO(data)))
    types = Counter(r.rec_type for r in records)
    fetched = [r for r in crawled["log"].to_pylist() if r["outcome"] == "fetched"]
    assert types == {"warcinfo": 1, "response": len(fetched), "request": len(fetched)}
    for row in fetched:  # warc_offset points at the row's response record
        rec = next(iter(ArchiveIterator(io.BytesIO(data[row["warc_offset"]:]))))
        assert rec.rec_type == "response"
        assert rec.rec_headers.get_header("WARC-Pagecat-Seed-Id") == row["seed_id"]
        assert int(rec.rec_headers.get_header("WARC-Pagecat-Rank")) == row["rank"]
        assert int(rec.rec_headers.get_header("WARC-Pagecat-Depth")) == row["depth"]
        assert unquote(rec.rec_headers.get_header("WARC-Pagecat-Link-Text")) == (row["link_text"] or "")
        assert row["warc_file"] == "raw/shard-0000.warc.gz" or row["warc_file"].startswith("raw/")
        body = rec.content_stream().read()
        assert len(body) == row["bytes"]
        assert rec.rec_headers.get_header("WARC-Payload-Digest").startswith("sha1:")
    moved = next(iter(ArchiveIterator(io.BytesIO(data[rows[crawled["base"] + "/moved"]["warc_offset"]:]))))
    assert moved.rec_headers.get_header("WARC-Target-URI") == crawled["base"] + "/landing"
    big = next(iter(ArchiveIterator(io.BytesIO(data[rows[crawled["base"] + "/big"]["warc_offset"]:]))))
    assert big.rec_headers.get_header("WARC-Truncated") == "length"


def test_warc_readable_by_fastwarc(crawled):
    (path,) = crawled["run"].list_files("raw", suffix=".warc.gz")
    seen = Counter()
    with open(path, "rb") as f:
        for rec in FastArchiveIterator(f, record_types=WarcRecordType.request | WarcRecordType.response):
            kind = "response" if rec.record_type == WarcRecordType.response else "request"
            seen[kind] += 1
            if kind == "response":
                assert rec.headers["WARC-Pagecat-Seed-Id"] in ("site", "pages")
                assert rec.headers["WARC-Pagecat-Depth"] in ("0", "1")
                assert "WARC-Pagecat-Link-Text" in rec.headers
                assert rec.http_headers.status_code == 200
    n = sum(1 for r in crawled["log"].to_pylist() if r["outcome"] == "fetched")
    assert seen == {"response": n, "request": n}


# -- safety, politeness details, engine called directly ----------------------------------
def test_private_addresses_refused_unless_allowed():
    site = LocalSite()
    with BackgroundServer(site.app) as server:
        port = server.port
        seeds = [Seed("ip", f"http://127.0.0.1:{port}/about"), Seed("name", f"http://localhost:{port}/services")]
        rows, counts = crawl_shard(seeds, CrawlSettings(**settings(allow_private=False, max_depth=0)))
        assert {r["seed_id"]: (r["outcome"], r["reason"]) for r in rows} == {
            "ip": ("filtered", "private_address"), "name": ("filtered", "private_address")}
        assert sum(site.hits.values()) == 0  # not even robots.txt
        rows, counts = crawl_shard(seeds, CrawlSettings(**settings(allow_private=True, max_depth=0)))
        assert [r["outcome"] for r in rows] == ["fetched", "fetched"] and counts["out"] == 2


def test_bad_and_mixed_encodings():
    site = LocalSite()
    with BackgroundServer(site.app) as server:
        seeds = [Seed("bad", server.url + "/enc-bad"), Seed("mixed", server.url + "/enc-mixed")]
        rows, counts = crawl_shard(seeds, CrawlSettings(**settings()))
    got = {r["url"].removeprefix(server.url): r for r in rows}
    assert got["/enc-bad"]["outcome"] == got["/enc-mixed"]["outcome"] == "fetched"
    for path in ("/enc-target", "/enc-target2", "/%C3%BCber"):  # their links were read and followed
        assert got[path]["outcome"] == "fetched", path
    assert got["/%C3%BCber"]["link_text"] == "Über uns" and got["/enc-target2"]["link_text"].startswith("caf")
    assert site.hits["/über"] == 1


def test_delay_between_requests_to_one_host():
    site = LocalSite()
    with BackgroundServer(site.app) as server:
        cfg = CrawlSettings(**settings(delay=0.25, max_pages_per_site=4, obey_robots=False))
        _, counts = crawl_shard([Seed("s", server.url + "/c/")], cfg)
    assert counts["out"] == 4
    starts = sorted(t for path, ts in site.times.items() for t in ts)
    assert len(starts) == 4
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.2


# -- the replay proxy -------------------------------------------------------------------
def _webkb_records(n: int = 30) -> list[dict]:
    """n archived pages of the sample's best-represented host, so some links stay in the archive."""
    sample = load_sample()
    host = Counter(canonicalize(r["url"]).split("/")[2] for r in sample).most_common(1)[0][0]
    return [r for r in sample if canonicalize(r["url"]).split("/")[2] == host][:n]


def test_replay_proxy_serves_archived_pages():
    records = _webkb_records(2)
    url = records[0]["url"]  # http://www.cs.wisc.edu: no path at all
    tilde = next(r for r in load_sample() if "/~" in r["url"] and r not in records)
    records.append(tilde)
    bare = {"url": "http://bare.example/x/", "raw": b"<html><body>bare</body></html>"}
    with ReplayProxy(records + [bare]) as proxy:
        opener = build_opener(ProxyHandler({"http": proxy.url}))
        with opener.open(url) as r:  # absolute-form request target
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
            assert r.headers["Content-Encoding"] is None
            body = r.read()
        assert body and body in records[0]["raw"]
        with opener.open("http://bare.example/x") as r:  # trailing slash added
            assert r.headers["Content-Type"] == "text/html" and r.read() == b"<html><body>bare</body></html>"

        async def host_header_form():  # origin-form target + Host header, ~ sent as %7E
            tail = tilde["url"].split("/", 3)[3].replace("~", "%7E")
            target = yarl.URL(f"{proxy.url}/{tail}", encoded=True)
            async with aiohttp.ClientSession() as s, s.get(target, headers={"Host": tilde["url"].split("/")[2]}) as r:
                return r.status
        assert asyncio.run(host_header_form()) == 200
        with pytest.raises(Exception, match="404"):
            opener.open(url.split("/", 3)[0] + "//" + url.split("/")[2] + "/robots.txt")
        assert proxy.served == 3 and proxy.not_found == 1


def test_crawl_through_replay_proxy(tmp_path):
    records = _webkb_records(30)
    seeds = [Seed(f"s{i}", r["url"]) for i, r in enumerate(records)]
    with ReplayProxy(records) as proxy:
        cfg = CrawlSettings(**settings(proxy=proxy.url, allow_private=False, max_pages_per_site=3,
                                       per_host_concurrency=8, concurrency=16))
        out = io.BytesIO()
        rows, counts = crawl_shard(seeds, cfg, out, "raw/replay.warc.gz")
    by_seed = {r["seed_id"]: r for r in rows if r["depth"] == 0}
    assert len(by_seed) == 30
    assert all(r["outcome"] == "fetched" and r["status"] == 200 for r in by_seed.values()), \
        [r for r in by_seed.values() if r["outcome"] != "fetched"]
    missing = [r for r in rows if r["depth"] == 1 and r["reason"] == "http_404"]
    assert missing and all(r["outcome"] == "failed" and r["status"] == 404 for r in missing)
    assert proxy.not_found >= len(missing) and proxy.served == counts["out"]
    assert counts["in"] == counts["out"] + counts["rejected"]
    responses = [r for r in ArchiveIterator(io.BytesIO(out.getvalue())) if r.rec_type == "response"]
    assert len(responses) == counts["out"]


# -- units: URLs, links, seeds, Retry-After ------------------------------------------------
@pytest.mark.parametrize("url, want", [
    ("HTTP://WWW.Example.COM/a", "http://www.example.com/a"),
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/", "https://example.com/"),
    ("http://example.com:8080/a", "http://example.com:8080/a"),
    ("http://example.com/a#frag", "http://example.com/a"),
    ("http://example.com", "http://example.com/"),
    ("http://example.com/?b=2&a=1&c=3", "http://example.com/?a=1&b=2&c=3"),
    ("http://example.com/?utm_source=x&id=5&utm_campaign=y&fbclid=z&gclid=q&ref=home", "http://example.com/?id=5"),
    ("http://example.com/p?a=2&a=1", "http://example.com/p?a=2&a=1"),
    ("http://example.com/%7Euser/a%2fb", "http://example.com/~user/a%2Fb"),
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://example.com/a b", "http://example.com/a%20b"),
    ("http://user:pw@Example.com/", "http://example.com/"),
    ("http://bücher.de/", "http://xn--bcher-kva.de/"),
    (" http://example.com/long-\nname.html\t", "http://example.com/long-name.html"),  # as browsers do
])
def test_canonicalize(url, want):
    assert canonicalize(url) == want
    assert canonicalize(want) == want  # idempotent


@pytest.mark.parametrize("bad", ["http://[::1", "http://example.com:99999/", "/relative", "http:///nohost"])
def test_canonicalize_malformed(bad):
    with pytest.raises(MalformedURL):
        canonicalize(bad)


def test_registered_domain():
    assert registered_domain("www.cs.cornell.edu") == "cornell.edu"
    assert registered_domain("a.b.co.uk") == "b.co.uk"
    assert registered_domain("127.0.0.1") == "127.0.0.1"
    assert registered_domain("www.other.example") == "other.example"


def test_links_extracted_and_ranked():
    page = b"""<html><head><base href="http://ex.com/dir/"></head><body>
      <a href="x.html">X</a> <a href="/what-we-do">Work</a> <a href="contact">Contact</a>
      <a href="/team">About <b>us</b></a> <map><area href="/map" alt="Map"></map> <a>no href</a></body></html>"""
    links = HtmlLinkExtractor()("http://ex.com/", page, "text/html; charset=utf-8")
    assert [(link.url, link.text) for link in links] == [
        ("http://ex.com/dir/x.html", "X"), ("http://ex.com/what-we-do", "Work"),
        ("http://ex.com/dir/contact", "Contact"), ("http://ex.com/team", "About us"), ("http://ex.com/map", "Map")]
    ranked = LinkRanker(["about", "what we do"]).rank(links)
    assert [link.url.rsplit("/", 1)[1] for link in ranked] == ["team", "what-we-do", "x.html", "contact", "map"]


def test_seeds_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="crawl.seeds .*missing.csv: file not found"):
        CrawlStage().check(config_from_dict({"crawl": {"seeds": str(tmp_path / "missing.csv")}}), None)
    nourl = tmp_path / "nourl.csv"
    nourl.write_text("id,link\n1,http://a.example/\n")
    with pytest.raises(UsageError, match="nourl.csv: no 'url' column"):
        CrawlStage().check(config_from_dict({"crawl": {"seeds": str(nourl)}}), None)
    with pytest.raises(UsageError, match="no seeds"):
        CrawlStage().check(config_from_dict({}), None)
    empty = tmp_path / "empty.csv"
    empty.write_text("url_id,url\n")
    with pytest.raises(UsageError, match="empty.csv: no rows"):
        CrawlStage().check(config_from_dict({"crawl": {"seeds": str(empty)}}), None)
    pq_path = tmp_path / "seeds.parquet"
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"url": ["http://a.example/"], "label": ["x"]}), pq_path)
    cfg = config_from_dict({"crawl": {"seeds": str(pq_path), "urls": ["http://b.example/"]}})
    got = read_seeds(cfg.crawl)
    assert [s.url for s in got] == ["http://a.example/", "http://b.example/"] and got[0].label == "x"
    assert len(got[0].url_id) == 16


def test_plan_starts_the_biggest_shards_first():
    # 1, 2 and 3 seeds on three domains, one shard each: the 3-seed shard must not start last
    urls = ["http://a.example/"] + [f"http://b.example/{i}" for i in range(2)] + \
        [f"http://c.example/{i}" for i in range(3)]
    cfg = config_from_dict({"crawl": {"urls": urls, "shards": 64}})
    parts = CrawlStage().plan(cfg, None)
    sizes = Counter(shard_of(s, 64) for s in read_seeds(cfg.crawl))
    assert [sizes[p.args["shard"]] for p in parts] == [3, 2, 1]


def test_retry_after_parsing():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("garbage") is None
    soon = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 <= retry_after_seconds(soon) <= 31


def test_warc_file_is_gzip_members(crawled):
    (path,) = crawled["run"].list_files("raw", suffix=".warc.gz")
    with open(path, "rb") as f:
        assert gzip.decompress(f.read()).startswith(b"WARC/1.1")
