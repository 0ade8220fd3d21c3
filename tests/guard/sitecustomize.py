"""Every child Python of the test session installs the loopback guard first.

``tests/guard`` is on ``PYTHONPATH`` for the whole session (``guard_plugin``),
so the interpreter imports this module at start-up, before ``-m``, ``-c`` or
a script runs. A ``sitecustomize`` this one shadows (Debian's, say) still
runs, after the guard.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys

import loopback_guard

loopback_guard.install_in_child()


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    from importlib.util import module_from_spec  # only now: it costs a few milliseconds

    module = module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # as site.py does: a broken one is reported, not fatal
        print(f"Error in chained sitecustomize {spec.origin}: {exc!r}", file=sys.stderr)


_chain()
