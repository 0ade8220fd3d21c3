r"""The one way text a peer sent is shown: escaped, inert, bounded.

Banners, certificate fields, PTR names and a probe process's reasons all
come from someone else. :func:`escape` turns any of them into text that
cannot steer a terminal, split a line or pass for something else: every
character it does not keep becomes ``\t``, ``\n``, ``\r``, ``\\`` or
``\xNN`` / ``\uNNNN`` / ``\UNNNNNNNN``, so no two inputs look alike.
"""

from __future__ import annotations

__all__ = ["escape"]

_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\"}


def _escaped(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _kept(char: str, keep: frozenset[str] | None, ascii_only: bool) -> bool:
    if keep is not None:
        return char in keep
    if ascii_only:
        return " " <= char < "\x7f" and char != "\\"
    return char.isprintable()


def escape(
    text: str | bytes,
    *,
    keep: frozenset[str] | None = None,
    ascii_only: bool = False,
    limit: int | None = None,
) -> str:
    r"""Show ``text`` (or bytes, one character per byte) escaped.

    Args:
        text: What a peer sent.
        keep: The only characters shown as themselves (a DNS name's, say).
        ascii_only: Keep printable ASCII only, and escape the backslash
            (always so for bytes). Otherwise every printable character is
            kept, the backslash included (so escaping twice changes nothing).
        limit: The longest result, in characters (at least 4): a longer one
            is cut at a whole escape and ends in ``...``.

    Returns:
        Printable text without line breaks.
    """
    if isinstance(text, bytes):
        text, ascii_only = text.decode("latin-1"), True
    if keep is None and not ascii_only and text.isprintable() and limit is None:
        return text
    pieces: list[str] = []
    size = 0
    stop = None if limit is None else max(limit, 4)
    for char in text:
        piece = char if _kept(char, keep, ascii_only) else _escaped(char)
        if stop is not None and size + len(piece) > stop:
            while pieces and size + 3 > stop:
                size -= len(pieces.pop())
            pieces.append("...")
            break
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)
