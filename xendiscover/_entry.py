"""The command's first instructions: signals before anything heavy is imported.

``xendiscover`` and ``python -m xendiscover`` start here. SIGTERM and Ctrl-C
are handled from this module's first line, so a signal that arrives while
the command line's modules are still loading ends the command with its
status (143, 130) and one line on stderr, never a traceback.
"""

from __future__ import annotations

import signal
import sys
from typing import NoReturn

__all__ = ["main"]


def _stop(code: int, name: str) -> NoReturn:
    sys.stderr.write(f"xendiscover: interrupted ({name})\n")
    sys.exit(code)


def _on_term(signum: int, frame: object) -> None:
    _stop(143, "SIGTERM")


def main() -> None:
    """Install the early signal handling, then run the command line."""
    signal.signal(signal.SIGTERM, _on_term)
    try:
        from xendiscover._cli import main as run
    except KeyboardInterrupt:
        _stop(130, "SIGINT")
    run()
