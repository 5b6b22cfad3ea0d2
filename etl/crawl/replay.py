"""A replay proxy: archived pages served to the crawler as if the web still had them.

Set ``crawl.proxy`` to ``ReplayProxy(records).url`` and the crawler's requests for
``http://www.cs.cornell.edu/info/`` come here (as ``GET http://www.cs.cornell.edu/info/ HTTP/1.1``)
and are answered with the archived response: its headers (less the hop-by-hop and
length/encoding ones) and body. Anything not archived, /robots.txt included, is a 404. URLs
match in their canonical form (the crawler's own ``canonicalize``), with or without a trailing
slash. It is plain HTTP on 127.0.0.1, so crawlers in other processes (Dask workers) can use it::

    with ReplayProxy(load_sample()) as proxy:
        cfg.crawl.proxy = proxy.url
        ...
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict

from pagecat.data.webkb import split_http_response
from pagecat.urls import MalformedURL, canonicalize

DROPPED_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "content-encoding",
                             "keep-alive", "proxy-connection", "upgrade", "te", "trailer"})
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class BackgroundServer:
    """An aiohttp ``web.Application`` (or a bare ``handler(request) -> response`` coroutine, which
    sees every request, routed or not) served from a thread with its own event loop.

    ``start()`` returns once it listens; ``url`` is ``http://host:port`` (port 0 = a free port).
    """

    def __init__(self, app: web.Application | Callable, host: str = "127.0.0.1", port: int = 0):
        self.app, self.host, self.port = app, host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _listen(self) -> None:
        if isinstance(self.app, web.Application):
            self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0,
                                         handler_cancellation=True)
        else:
            server = web.Server(self.app, access_log=None, handler_cancellation=True)
            self._runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> BackgroundServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            self._loop = loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as e:  # noqa: BLE001 - handed to the starting thread
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"server-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _keys(url: str) -> list[str]:
    """Lookup keys of a URL: its canonical form, then the same with the path's trailing slash
    added or removed."""
    try:
        c = canonicalize(url)
    except MalformedURL:
        return [url]
    base, q, query = c.partition("?")
    if urlsplit(c).path == "/":  # the site root has one form
        return [c]
    other = base[:-1] if base.endswith("/") else base + "/"
    return [c, other + q + query]


def _response_parts(raw: bytes) -> tuple[list[tuple[str, str]], bytes]:
    headers, body = split_http_response(raw)
    kept = [(k, v) for k, v in headers.items()
            if k.lower() not in DROPPED_HEADERS and _TOKEN.match(k) and v.isprintable()]
    if not any(k.lower() == "content-type" for k, _ in kept):
        kept.append(("Content-Type", "text/html"))
    return kept, body


class ReplayProxy(BackgroundServer):
    """An HTTP proxy on 127.0.0.1 that answers from an archive.

    ``records``: iterable of ``{"url": str, "raw": bytes}`` (raw = archived HTTP headers, a
    blank line, then the body; bare HTML also works). Counters: ``served`` (archived responses
    sent) and ``not_found`` (404s). Only GET and HEAD; a CONNECT (https) is refused with 405.
    """

    def __init__(self, records: Iterable[dict], host: str = "127.0.0.1", port: int = 0):
        self.archive: dict[str, bytes] = {}
        for rec in records:
            for key in _keys(rec["url"]):
                self.archive.setdefault(key, rec["raw"])
        self.served = 0
        self.not_found = 0
        # A bare handler, not a routed app: 'GET http://host HTTP/1.1' has no path to route.
        super().__init__(self._handle, host, port)

    @staticmethod
    def target_url(request: web.BaseRequest) -> str:
        """The URL a proxied request asks for: the absolute-form target when the client sent
        one (``GET http://host/path``), else Host header + path."""
        raw = request.raw_path
        if raw.lower().startswith(("http://", "https://")):
            return raw
        return f"http://{request.headers.get('Host', request.host)}{raw}"

    def lookup(self, url: str) -> bytes | None:
        for key in _keys(url):
            if key in self.archive:
                return self.archive[key]
        return None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="replay proxy: GET only\n")
        raw = self.lookup(self.target_url(request))
        if raw is None:
            self.not_found += 1
            return web.Response(status=404, text="not archived\n", content_type="text/plain")
        self.served += 1
        headers, body = _response_parts(raw)
        return web.Response(status=200, body=body, headers=CIMultiDict(headers))
