"""Names for the hosts found: reverse (PTR) and forward (A/AAAA) lookups with ``aiodns``.

Only hits are looked up, concurrently, each within a deadline. A PTR name is
only trusted once its forward lookup, through the same nameservers, gives
the address back (forward-confirmed reverse DNS); the pipeline does that
check with :meth:`NameResolver.forward`.

When the nameserver proves unreachable (refused), or stays silent for
:data:`SILENT_LIMIT` lookups in a row, the resolver says so once and stops
asking, so a dead DNS costs a few waits per scan rather than one per host;
one slow reverse zone alone does not switch names off.
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

__all__ = ["SILENT_LIMIT", "DNSNameResolver", "NameResolver", "parse_nameserver"]

_log = logging.getLogger("xendiscover")

#: Answers that mean the nameserver cannot be reached at all, not "no name".
#: (A REFUSED or SERVFAIL is about one name: the next may still resolve.)
_SERVER_DOWN = frozenset({aiodns.error.ARES_ECONNREFUSED})
_SILENT = frozenset({aiodns.error.ARES_ETIMEOUT})

#: Lookups in a row that may go unanswered before the nameserver is taken
#: for dead: a zone whose server is slow fails alone, a dead server fails all.
SILENT_LIMIT = 3

#: The most addresses a forward lookup returns (a hostile zone may list many).
_MAX_ADDRESSES = 64


class NameResolver(Protocol):
    """Turns an address into a host name; swap it to test without DNS."""

    async def reverse(self, address: str) -> str | None:
        """The name of ``address``, or ``None`` when it has none."""
        ...

    async def forward(self, name: str) -> list[str]:
        """The addresses (A and AAAA) of ``name``; empty when it has none."""
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
    if "%" in host:  # a scope id would reach c-ares as given, whatever it holds
        raise TargetError(f"invalid nameserver {text!r}: no scope id (%) allowed")
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
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
        self._silent_in_a_row = 0

    def _channel(self) -> aiodns.DNSResolver:
        if self._resolver is None:
            self._resolver = aiodns.DNSResolver(
                nameservers=self._nameservers or None,
                loop=asyncio.get_running_loop(),
                timeout=self._timeout / 2,
                tries=2,
            )
        return self._resolver

    async def _query(self, name: str, kind: str, about: str) -> list[object]:
        """The answer records of one query; empty on no answer (and noted, if DNS is down)."""
        if self._down:
            return []
        try:
            async with asyncio.timeout(self._timeout + 0.5):
                result = await self._channel().query_dns(name, kind)
        except TimeoutError:
            self._silent(about, "no answer")
            return []
        except aiodns.error.DNSError as exc:
            code = exc.args[0] if exc.args else None
            if code in _SERVER_DOWN:
                self._give_up(about, str(exc.args[-1]))
            elif code in _SILENT:
                self._silent(about, str(exc.args[-1]))
            else:
                self._silent_in_a_row = 0  # an answer, if a negative one
            return []
        self._silent_in_a_row = 0
        return list(result.answer)

    async def reverse(self, address: str) -> str | None:
        """The PTR name of ``address``, or ``None`` (no name, or no DNS)."""
        query = ipaddress.ip_address(address).reverse_pointer
        for record in await self._query(query, "PTR", address):
            data = getattr(record, "data", None)
            if isinstance(data, pycares.PTRRecordData):
                return data.dname.rstrip(".") or None
        return None

    async def forward(self, name: str) -> list[str]:
        """The A and AAAA addresses of ``name`` (at most 64), or ``[]``."""
        found: list[str] = []
        for kind in ("A", "AAAA"):
            for record in await self._query(name, kind, name):
                data = getattr(record, "data", None)
                if isinstance(data, pycares.ARecordData | pycares.AAAARecordData):
                    found.append(data.addr)
        return found[:_MAX_ADDRESSES]

    def _silent(self, about: str, why: str) -> None:
        self._silent_in_a_row += 1
        if self._silent_in_a_row >= SILENT_LIMIT:
            self._give_up(about, why)

    def _give_up(self, about: str, why: str) -> None:
        if not self._down:
            self._down = True
            _log.warning("DNS failed (%s, looking up %s); showing addresses", why, about)

    async def aclose(self) -> None:
        """Close the c-ares channel."""
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None
