"""The command's first instructions: signals before anything heavy is imported.

``xendiscover`` and ``python -m xendiscover`` start here. The signal policy
(:mod:`xendiscover._signals`) is in force from this module's first line, so
a signal that arrives while the command line's modules are still loading
ends the command with its status (143, 130) and one line on stderr, never a
traceback.
"""

from __future__ import annotations

from xendiscover._signals import EXIT_SIGINT, EXIT_SIGTERM, Terminated, command, stop

__all__ = ["main"]


def main() -> None:
    """Install the signal policy, then run the command line."""
    command()
    try:
        from xendiscover._cli import main as run
    except KeyboardInterrupt:
        stop(EXIT_SIGINT)
    except Terminated:
        stop(EXIT_SIGTERM)
    run()
