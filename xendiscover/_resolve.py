"""Names for the hosts found: reverse (PTR) lookups with ``aiodns``.

Only hits are looked up, concurrently, each within a deadline. When the
nameserver proves unreachable or silent, the resolver says so once and stops
asking, so a dead DNS costs one wait per scan rather than one per host.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from typing import Protocol

import aiodns
import aiodns.error
import pycares

from xendiscover._errors import TargetError

__all__ = ["DNSNameResolver", "NameResolver", "parse_nameserver"]

_log = logging.getLogger("xendiscover")

#: Answers that mean the nameserver cannot be reached at all, not "no name".
#: (A REFUSED or SERVFAIL is about one name: the next may still resolve.)
_SERVER_DOWN = frozenset({aiodns.error.ARES_ETIMEOUT, aiodns.error.ARES_ECONNREFUSED})


class NameResolver(Protocol):
    """Turns an address into a host name; swap it to test without DNS."""

    async def reverse(self, address: str) -> str | None:
        """The name of ``address``, or ``None`` when it has none."""
        ...

    async def aclose(self) -> None:
        """Release the resolver's sockets and threads."""
        ...


def parse_nameserver(text: str) -> str:
    """Check a ``--nameserver`` value: ``IP``, ``IP:PORT`` or ``[IPv6]:PORT``.

    Returns:
        The value in the form c-ares takes.

    Raises:
        TargetError: ``text`` is not an address with an optional port.
    """
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise TargetError(f"invalid nameserver {text!r}")
            port = rest[1:]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise TargetError(f"invalid nameserver {text!r}: not an IP address") from None
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise TargetError(f"invalid nameserver {text!r}: bad port")
    if not port:
        return str(address)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


class DNSNameResolver:
    """Reverse lookups through ``aiodns`` (c-ares).

    Args:
        nameservers: Servers to ask (``IP`` or ``IP:PORT``); the system's
            resolver configuration (``/etc/resolv.conf``) when empty.
        timeout: Seconds one lookup may take in all.
    """

    def __init__(self, nameservers: Sequence[str] = (), *, timeout: float = 2.0) -> None:
        self._nameservers = [parse_nameserver(n) for n in nameservers]
        self._timeout = timeout
        self._resolver: aiodns.DNSResolver | None = None
        self._down = False

    def _channel(self) -> aiodns.DNSResolver:
        if self._resolver is None:
            self._resolver = aiodns.DNSResolver(
                nameservers=self._nameservers or None,
                loop=asyncio.get_running_loop(),
                timeout=self._timeout / 2,
                tries=2,
            )
        return self._resolver

    async def reverse(self, address: str) -> str | None:
        """The PTR name of ``address``, or ``None`` (no name, or no DNS)."""
        if self._down:
            return None
        query = ipaddress.ip_address(address).reverse_pointer
        try:
            async with asyncio.timeout(self._timeout + 0.5):
                result = await self._channel().query_dns(query, "PTR")
        except TimeoutError:
            self._give_up(address, "no answer")
            return None
        except aiodns.error.DNSError as exc:
            code = exc.args[0] if exc.args else None
            if code in _SERVER_DOWN:
                self._give_up(address, str(exc.args[-1]))
            return None
        for record in result.answer:
            if record.type == pycares.QUERY_TYPE_PTR and isinstance(
                record.data, pycares.PTRRecordData
            ):
                return record.data.dname.rstrip(".") or None
        return None

    def _give_up(self, address: str, why: str) -> None:
        if not self._down:
            self._down = True
            _log.warning("reverse DNS failed (%s, looking up %s); showing addresses", why, address)

    async def aclose(self) -> None:
        """Close the c-ares channel."""
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
