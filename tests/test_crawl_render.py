"""JavaScript rendering with headless chromium: a page that builds its content in a script."""

from __future__ import annotations

import io
import shutil

import pytest
from aiohttp import web
from warcio.archiveiterator import ArchiveIterator

from pagecat.config import CrawlSettings, config_from_dict
from pagecat.errors import UsageError
from pagecat.etl.crawl.engine import crawl_shard
from pagecat.etl.crawl.render import BROWSER_NAMES, find_browser
from pagecat.etl.crawl.replay import BackgroundServer
from pagecat.etl.crawl.seeds import Seed
from pagecat.etl.crawl.stage import CrawlStage

SCRIPTED = """<!doctype html><html><head><title>app</title></head><body><div id="app"></div>
<script>
  document.getElementById("app").textContent = "Rendered by a script: we make bicycles";
  var a = document.createElement("a"); a.href = "/about-us"; a.textContent = "About us";
  document.body.appendChild(a);
</script></body></html>"""

needs_chromium = pytest.mark.skipif(not any(shutil.which(n) for n in BROWSER_NAMES),
                                    reason="no chromium on PATH (Debian: apt-get install chromium)")


def _app(hits=None) -> web.Application:
    @web.middleware
    async def count(request, handler):
        if hits is not None:
            hits[request.path] = hits.get(request.path, 0) + 1
        return await handler(request)

    app = web.Application(middlewares=[count])
    app.router.add_get("/", lambda r: web.Response(text=SCRIPTED, content_type="text/html"))
    app.router.add_get("/about-us", lambda r: web.Response(text="<html><body><p>about</p></body></html>",
                                                           content_type="text/html"))
    return app


def _crawl(base: str, render_js: bool) -> tuple[list[dict], list]:
    cfg = CrawlSettings(max_depth=1, allow_private=True, obey_robots=False, render_js=render_js,
                        timeout_total=5.0, render_timeout=15.0)
    out = io.BytesIO()
    rows, _ = crawl_shard([Seed("app", base + "/")], cfg, out, "raw/test.warc.gz")
    return rows, list(_records(out.getvalue()))


def _records(data: bytes):
    for rec in ArchiveIterator(io.BytesIO(data)):
        yield rec.rec_type, rec.rec_headers, rec.content_stream().read()


@needs_chromium
def test_rendered_dom_goes_to_the_warc_and_its_links_are_followed():
    hits = {}
    with BackgroundServer(_app(hits)) as server:
        rows, records = _crawl(server.url, render_js=True)
        assert hits == {"/": 1, "/about-us": 1}  # the browser was given the page, not sent to fetch it
        plain_rows, plain_records = _crawl(server.url, render_js=False)
    by_url = {r["url"]: r for r in rows}
    assert by_url[server.url + "/about-us"]["outcome"] == "fetched"  # a link only the script makes
    assert by_url[server.url + "/about-us"]["link_text"] == "About us"
    conversions = [(h, body) for kind, h, body in records if kind == "conversion"]
    responses = {h.get_header("WARC-Record-ID"): body for kind, h, body in records if kind == "response"}
    home = next((h, body) for h, body in conversions if h.get_header("WARC-Target-URI") == server.url + "/")
    assert b'<div id="app">Rendered by a script: we make bicycles</div>' in home[1]
    assert b'<div id="app"></div>' in responses[home[0].get_header("WARC-Refers-To")]  # the raw page kept as sent
    assert home[0].get_header("WARC-Pagecat-Rendered") == "chromium"
    # without rendering: no conversion records, and the script's link is never seen
    assert [r["url"] for r in plain_rows] == [server.url + "/"]
    assert not [k for k, _, _ in plain_records if k == "conversion"]


def test_missing_browser_is_a_usage_error(tmp_path):
    cfg = config_from_dict({"crawl": {"urls": ["http://example.org/"], "render_js": True,
                                      "browser_path": str(tmp_path / "no-chromium")}})
    with pytest.raises(UsageError, match="crawl.browser_path .*no-chromium: not found"):
        CrawlStage().check(cfg, None)
    with pytest.raises(UsageError, match="crawl.browser_path"):
        find_browser(cfg.crawl)
