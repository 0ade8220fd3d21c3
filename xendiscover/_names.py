"""Names from the network are hostile input: check them as DNS names, escape the rest.

A PTR record says whatever the owner of the reverse zone wants, and a TLS
certificate whatever its maker wanted. Only a name that passes
:func:`is_dns_name` is used as a name at all; anything else is shown through
:func:`escape_name`, which leaves nothing a terminal, a CSV reader or an
inventory parser could act on.
"""

from __future__ import annotations

import ipaddress
import re

from xendiscover._escape import escape

__all__ = ["MAX_NAME", "escape_name", "is_dns_name", "same_address"]

#: The longest DNS name, in characters, without the root's trailing dot (RFC 1035).
MAX_NAME = 253

_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
#: The most characters of a hostile name that are shown (escaped).
_SHOWN = 255


def is_dns_name(name: str) -> bool:
    """Whether ``name`` is a host name by RFC 1123: ``letters-digits-hyphens`` labels.

    At most 253 characters (a trailing dot is not counted), labels of 1 to
    63 characters that neither start nor end with a hyphen, and a last label
    that is not all digits (so no name can pass for an IPv4 address).
    """
    if name.endswith("."):
        name = name[:-1]
    if not 0 < len(name) <= MAX_NAME or not name.isascii():
        return False
    labels = name.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        return False
    return not labels[-1].isdigit()


def escape_name(name: str) -> str:
    r"""Show a name that is not a DNS name: every other character escaped (:func:`escape`).

    The result is printable ASCII without spaces, quotes, brackets, ``=`` or
    backslashes standing for themselves, at most 255 characters (a longer
    one is cut and ends in ``...``).
    """
    return escape(name, keep=_SAFE, limit=_SHOWN)


def same_address(a: str, b: str) -> bool:
    """Whether two address texts name the same IP address (``::1`` == ``0::1``)."""
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return False
