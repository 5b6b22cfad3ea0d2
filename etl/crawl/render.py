"""Optional JavaScript rendering: headless chromium driven over the DevTools protocol.

Some sites build their pages in the browser; their HTML has no text until scripts run. With
``crawl.render_js`` each fetched page is also loaded in headless chromium (Debian's
``chromium``, or ``crawl.browser_path``), and the DOM after load is written to the WARC as a
``conversion`` record linked to the page's response (``WARC-Refers-To``); the crawl follows the
rendered page's links. The browser does not fetch the page again: its request for the page is
answered with the response the crawler already has (``Fetch.fulfillRequest``), so a URL is still
requested once. Its subresource requests (scripts, styles, XHR) are the browser's own: they go
through ``crawl.proxy`` when set and, unless ``crawl.allow_private``, only to public addresses;
they bypass the per-host gates.

No new dependency: the protocol is JSON over a websocket, spoken with aiohttp.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import itertools
import json
import logging
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from pagecat.config import CrawlSettings
from pagecat.errors import UsageError
from pagecat.etl.crawl.safety import is_public_address

log = logging.getLogger("pagecat.crawl")
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--remote-debugging-port=0")
TABS = 4  # pages rendered at once
SETTLE = 0.3  # seconds after the load event, for scripts that run on a timer
START_TIMEOUT = 30.0


def find_browser(settings: CrawlSettings) -> str:
    """The browser's executable; UsageError (one line, naming the fix) when there is none."""
    if settings.browser_path:
        if Path(settings.browser_path).is_file():
            return settings.browser_path
        raise UsageError(f"crawl.browser_path {settings.browser_path}: not found; point it at chromium's "
                         "executable, or set crawl.render_js: false")
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise UsageError("crawl.render_js: no chromium found; install it (Debian: apt-get install chromium), "
                     "set crawl.browser_path, or set crawl.render_js: false")


class ChromiumRenderer:
    """``async with ChromiumRenderer(settings) as r: html = await r.render(url)``.

    ``render`` returns the page's DOM as HTML after its load event (plus SETTLE seconds), or
    None when it did not load within ``settings.render_timeout``.
    """

    def __init__(self, settings: CrawlSettings):
        self.settings = settings
        self.path = find_browser(settings)
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future] = {}
        self._waiters: dict[tuple[str, str], asyncio.Future] = {}
        self._tabs = asyncio.Semaphore(TABS)
        self._tasks: set[asyncio.Task] = set()
        self._documents: dict[str, tuple[str, bytes, str]] = {}  # session -> (url, body, content type)

    async def __aenter__(self) -> ChromiumRenderer:
        # chromium's helper processes may still write to the profile just after the browser exits
        self._profile = tempfile.TemporaryDirectory(prefix="pagecat-chromium-", ignore_cleanup_errors=True)
        args = [self.path, *BROWSER_FLAGS, f"--user-data-dir={self._profile.name}",
                f"--user-agent={self.settings.user_agent}"]
        if self.settings.proxy:
            args.append(f"--proxy-server={self.settings.proxy}")
        self.proc = subprocess.Popen([*args, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL)
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._stop()
                raise RuntimeError(f"chromium ({self.path}) did not start its DevTools endpoint")
            await asyncio.sleep(0.05)
        port, ws_path = port_file.read_text().split()[:2]
        self.http = aiohttp.ClientSession(trust_env=False)
        self.ws = await self.http.ws_connect(f"ws://127.0.0.1:{port}{ws_path}", max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        self._reader.cancel()
        with contextlib.suppress(Exception):
            await self.ws.close()
        await self.http.close()
        self._stop()

    def _stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for _ in range(10):  # let its helper processes finish writing to the profile, then remove it
            try:
                shutil.rmtree(self._profile.name)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)
        self._profile.cleanup()

    # -- the protocol ------------------------------------------------------------------------
    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._calls.pop(data["id"], None)
                if fut is not None and not fut.done():
                    if "error" in data:
                        fut.set_exception(RuntimeError(f"DevTools: {data['error'].get('message')}"))
                    else:
                        fut.set_result(data.get("result", {}))
                continue
            session, method = data.get("sessionId", ""), data.get("method", "")
            if method == "Fetch.requestPaused":
                task = asyncio.create_task(self._screen(session, data["params"]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            fut = self._waiters.pop((session, method), None)
            if fut is not None and not fut.done():
                fut.set_result(data.get("params", {}))

    async def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        i = next(self._ids)
        fut = self._calls[i] = asyncio.get_running_loop().create_future()
        msg = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send_str(json.dumps(msg))
        return await fut

    def _wait_for(self, session: str, method: str) -> asyncio.Future:
        fut = self._waiters[(session, method)] = asyncio.get_running_loop().create_future()
        return fut

    async def _screen(self, session: str, params: dict) -> None:
        """Answer the page's own request from what the crawler fetched; let other requests
        through only to a public address (safety, as the crawler's) unless allowed."""
        url, rid = params["request"]["url"], params["requestId"]
        doc = self._documents.get(session)
        if doc is not None and url == doc[0]:
            del self._documents[session]
            with contextlib.suppress(Exception):
                await self.call("Fetch.fulfillRequest", {
                    "requestId": rid, "responseCode": 200, "body": base64.b64encode(doc[1]).decode("ascii"),
                    "responseHeaders": [{"name": "Content-Type", "value": doc[2]}]}, session)
            return
        if urlsplit(url).path == "/favicon.ico":  # the browser's own fetch; it never changes the DOM
            ok = False
        else:
            ok = self.settings.allow_private or bool(self.settings.proxy) or await self._public(url)
        with contextlib.suppress(Exception):
            if ok:
                await self.call("Fetch.continueRequest", {"requestId": rid}, session)
            else:
                await self.call("Fetch.failRequest", {"requestId": rid, "errorReason": "AccessDenied"}, session)

    @staticmethod
    async def _public(url: str) -> bool:
        p = urlsplit(url)
        if p.scheme not in ("http", "https", "data", "blob"):
            return False
        if p.scheme in ("data", "blob"):
            return True
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(p.hostname, p.port or 80, type=socket.SOCK_STREAM)
        except OSError:
            return False
        return all(is_public_address(ipaddress.ip_address(info[4][0])) for info in infos)

    # -- one page ----------------------------------------------------------------------------
    async def render(self, url: str, body: bytes, content_type: str = "text/html") -> str | None:
        """The DOM of the page at ``url`` whose fetched response was ``body`` (and ``content_type``),
        after its scripts ran; None when it did not load in time."""
        async with self._tabs:
            target = (await self.call("Target.createTarget", {"url": "about:blank"}))["targetId"]
            session = ""
            try:
                session = (await self.call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
                self._documents[session] = (url, body, content_type or "text/html")
                await self.call("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session)
                await self.call("Page.enable", {}, session)
                loaded = self._wait_for(session, "Page.loadEventFired")
                await self.call("Page.navigate", {"url": url}, session)
                await asyncio.wait_for(loaded, self.settings.render_timeout)
                await asyncio.sleep(SETTLE)
                result = await self.call("Runtime.evaluate", {"expression": "document.documentElement.outerHTML",
                                                              "returnByValue": True}, session)
                return result.get("result", {}).get("value")
            except (TimeoutError, RuntimeError) as e:
                log.debug("render %s: %s", url, e)
                return None
            finally:
                self._waiters.pop((session, "Page.loadEventFired"), None)
                self._documents.pop(session, None)
                with contextlib.suppress(Exception):
                    await self.call("Target.closeTarget", {"targetId": target})


@contextlib.asynccontextmanager
async def open_renderer(settings: CrawlSettings):
    """A started ChromiumRenderer when ``settings.render_js``, else None."""
    if not settings.render_js:
        yield None
        return
    async with ChromiumRenderer(settings) as renderer:
        yield renderer
