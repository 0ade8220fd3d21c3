"""MkDocs hooks: the CLI reference is generated from the code at build time.

- A page line ``<!-- xendiscover-help: ARGS -->`` is replaced with the output of
  ``python -m xendiscover ARGS`` (e.g. ``--help``), so the reference can never
  drift from the command. Only help-style arguments are allowed: the build
  never runs a scan.
- A page line ``<!-- xendiscover-example: FORMAT -->`` is replaced with a fixed
  set of example hosts formatted by :mod:`xendiscover._output` (``all`` is
  the ``--all`` view), so every example is the code's real output.
- Sphinx roles in docstrings (``:func:`scan```) are shown as plain code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

_HELP_MARKER = re.compile(r"^<!-- xendiscover-help: (?P<args>[^>]*?) -->$", re.MULTILINE)
# A role before inline code; ``~a.b.C`` shows as ``C``, as Sphinx shows it.
_SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|class|data|mod|attr|meth|exc|obj):<code>(~[\w.]*\.)?")
_EXAMPLE_MARKER = re.compile(r"^<!-- xendiscover-example: (?P<fmt>[a-z]+) -->$", re.MULTILINE)
_ALLOWED = {"--help", "-h", "demo", "--version"}
_FENCE = {"json": "json", "jsonl": "json", "ansible": "json", "list": "python"}


def _example(fmt: str) -> str:
    """Return the example hosts in format ``fmt``, as a fenced block."""
    from xendiscover import Host
    from xendiscover._output import format_all, render

    hosts = [
        Host(
            "10.0.0.11",
            8002,
            "polar.inf.ufsm.br",
            0.412,
            "xend-relocation",
            "confirmed",
            "xend relocation: (ok (help quit receive sslreceive))",
        ),
        Host(
            "10.0.0.11",
            8000,
            "polar.inf.ufsm.br",
            0.388,
            "xend-http",
            "confirmed",
            "application/sxp: (ls )",
        ),
        Host(
            "10.0.0.12",
            443,
            "carbono12.inf.ufsm.br",
            0.731,
            "xapi",
            "confirmed",
            "isAlive echoed: 5b0e3a52-6d1c-4f0e-9a77-2c1e8f3b9d40",
        ),
        Host(
            "10.0.0.20",
            8002,
            None,
            0.402,
            "xend-relocation",
            "likely",
            "accepted and closed without a reply (xend hosts-allow)",
        ),
        Host(
            "10.0.0.31",
            16509,
            "kvm1.example.org",
            0.297,
            "libvirt",
            "unknown",
            "libvirt AUTH_LIST reply (auth sasl); Xen or KVM",
        ),
        Host(
            "10.0.0.40",
            443,
            "www.example.org",
            0.518,
            None,
            "not-xen",
            "HTTP, not XML-RPC: HTTP/1.1 404 Not Found (Server: nginx/1.24.0)",
        ),
    ]
    text = format_all(hosts) if fmt == "all" else render(hosts, fmt)
    return f"```{_FENCE.get(fmt, 'text')}\n{text.replace(chr(13), '')}```"


def _help(args: str) -> str:
    """Return what ``python -m xendiscover ARGS`` prints, as the page shows it."""
    argv = args.split()
    if not argv or not set(argv) <= _ALLOWED or not {"--help", "-h", "--version"} & set(argv):
        raise ValueError(f"docs may only show help output, not run {args!r}")
    env = {**os.environ, "COLUMNS": "88", "TERM": "dumb", "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [sys.executable, "-m", "xendiscover", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"xendiscover {args} exited {done.returncode}: {done.stderr}")
    text = done.stdout.rstrip()
    # xd-terminal: the stylesheet fits its columns to the page instead of wrapping.
    return f"```{{.text .xd-terminal}}\n$ xendiscover {args}\n{text}\n```"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace each help marker with the command's live output, each example with its text."""
    markdown = _HELP_MARKER.sub(lambda m: _help(m["args"]), markdown)
    return _EXAMPLE_MARKER.sub(lambda m: _example(m["fmt"]), markdown)


def on_page_content(html: str, **kwargs: Any) -> str:
    """Show Sphinx cross-reference roles from docstrings as plain code."""
    return _SPHINX_ROLE.sub("<code>", html)
