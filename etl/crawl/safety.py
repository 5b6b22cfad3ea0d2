"""Target-address safety: a crawler must not be turned against the network it runs in.

Unless ``crawl.allow_private``, a URL whose host is (or resolves to) a loopback, private,
link-local, reserved, multicast or shared (CGN) address is refused. IP literals are checked
before any request (``is_public_address``); host names by ``SafeResolver`` when aiohttp
connects, so DNS cannot answer one address to a check and another to the connection.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for loopback, private, link-local, reserved, multicast, unspecified, shared (CGN)."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


class PrivateAddressError(OSError):
    """Raised by SafeResolver; aiohttp wraps it in ClientConnectorDNSError.os_error."""


class SafeResolver(AbstractResolver):
    """A resolver that refuses a host if any of its addresses is not public."""

    def __init__(self):
        self._resolver = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        results = await self._resolver.resolve(host, port, family)
        for r in results:
            if not is_public_address(ipaddress.ip_address(r["host"])):
                raise PrivateAddressError(f"{host} resolves to {r['host']}")
        return results

    async def close(self) -> None:
        await self._resolver.close()


