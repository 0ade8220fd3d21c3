"""The generated parts of the docs, committed, and MkDocs hooks that keep the site true.

- A page line ``<!-- xendiscover-help: ARGS -->`` is followed by the output of
  ``python -m xendiscover ARGS`` (e.g. ``--help``), up to
  ``<!-- /xendiscover-help -->``. Only help-style arguments are allowed:
  nothing here runs a scan.
- A page line ``<!-- xendiscover-example: FORMAT -->`` is followed by a fixed
  set of example findings formatted by :mod:`xendiscover._output` (``all`` is
  the ``--all`` view), up to ``<!-- /xendiscover-example -->``.
- The text between the markers is committed, so the pages read correctly as
  Markdown (on a forge, in an editor). ``python docs/hooks.py`` rewrites it;
  ``python docs/hooks.py --check`` (and tests/test_docs_generated.py) fails
  when it is out of date. The site build regenerates it too.
- Sphinx roles in docstrings (``:func:`scan```) are shown as plain code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

#: A generated block: its start marker, what was generated last, its end marker.
_BLOCK = re.compile(
    r"^<!-- xendiscover-(?P<kind>help|example): (?P<arg>[^>]*?) -->\n"
    r"(?:.*?\n)??<!-- /xendiscover-(?P=kind) -->$",
    re.MULTILINE | re.DOTALL,
)
#: The pages with generated blocks.
PAGES = ("cli.md", "output.md")
DOCS = Path(__file__).resolve().parent
# A role before inline code; ``~a.b.C`` shows as ``C``, as Sphinx shows it.
_SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|class|data|mod|attr|meth|exc|obj):<code>(~[\w.]*\.)?")
_ALLOWED = {"--help", "-h", "demo", "diff", "merge", "--version"}
# Command output, not source: a ```python block would be reformatted by ruff.
_FENCE = {"json": "json", "jsonl": "json", "ansible": "json", "list": "text"}


def _example(fmt: str) -> str:
    """Return the example findings in format ``fmt``, as a fenced block."""
    from dataclasses import replace

    from xendiscover import Finding, RunInfo
    from xendiscover._model import Product
    from xendiscover._output import format_run_json, render

    polar: dict[str, Any] = {"hostname": "polar.inf.ufsm.br", "hostname_source": "ptr"}
    uuid = "5b0e3a52-6d1c-4f0e-9a77-2c1e8f3b9d40"
    xend = Product(
        "xend",
        ">= 3.3",
        "firm",
        "cpe:/o:xen:xen",
        "Xen 3.3-4.4",
        "relocation (help): (ok (help quit receive sslreceive))",
    )
    xcp = Product(
        "XCP-ng",
        "8.3",
        "firm",
        None,
        "xapi >= 25.2.0",
        "XO Lite page (XCP-ng 8.3); listMethods lists Host_driver.select",
    )
    keys = (
        "3c9f0e8d7b6a5f4e3d2c1b0a99887766554433221100ffeeddccbbaa00112233",
        "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d",
    )
    findings = [
        Finding("10.0.0.11", 8002, "xend-relocation", "confirmed",
                "xend relocation: (ok (help quit receive sslreceive))", 0.412, **polar,
                product=xend),
        Finding("10.0.0.11", 8000, "xend-http", "confirmed", "application/sxp: (ls )", 0.388,
                **polar),
        Finding("10.0.0.12", 443, "xapi", "confirmed", f"isAlive echoed: {uuid}", 0.731,
                "carbono12.inf.ufsm.br", "ptr", host_uuid="0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d",
                key_fingerprints=keys, product=xcp),
        Finding("10.1.0.12", 443, "xapi", "confirmed", f"isAlive echoed: {uuid}", 0.690,
                host_uuid="0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d", key_fingerprints=keys,
                product=xcp),
        Finding("10.0.0.20", 8002, "xend-relocation", "likely",
                "accepted and closed without a reply (xend hosts-allow)", 0.402,
                "xen-old.example.org", "ptr-unconfirmed"),
        Finding("10.0.0.31", 16509, "libvirt", "unknown",
                "libvirt AUTH_LIST reply (auth sasl); Xen or KVM", 0.297,
                "kvm1.example.org", "ptr"),
        Finding("10.0.0.40", 443, None, "not-xen",
                "HTTP, not XML-RPC: HTTP/1.1 404 Not Found (Server: nginx/1.24.0)", 0.518,
                "www.example.org", "ptr"),
    ]  # fmt: skip
    run = RunInfo(
        version="0.1.0",
        started="2026-03-01T06:00:00.000+00:00",
        targets=("10.0.0.0/24", "10.1.0.12"),
        resolved=("10.0.0.0/24", "10.1.0.12/32"),
        ports=(443, 8000, 8002, 16509),
    ).finished(stopped=None)
    run = replace(run, ended="2026-03-01T06:00:04.512+00:00")
    if fmt == "all":
        text = render(findings, "text", view="all")
    elif fmt == "ansible":
        text = render(findings, fmt, view="all")  # libvirt machines too
    elif fmt == "jsonl":
        text = render(findings, fmt, run=replace(run, listing="all"))
    elif fmt == "run":
        text = format_run_json(replace(run, listing="all"))
        fmt = "json"
    else:
        text = render(findings, fmt, run=run)
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


def _generate(match: re.Match[str]) -> str:
    kind, arg = match["kind"], match["arg"]
    body = _help(arg) if kind == "help" else _example(arg)
    return f"<!-- xendiscover-{kind}: {arg} -->\n{body}\n<!-- /xendiscover-{kind} -->"


def regenerate(markdown: str) -> str:
    """The page with every generated block made anew from the code."""
    return _BLOCK.sub(_generate, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Regenerate each block (the committed text is checked to be the same)."""
    return regenerate(markdown)


def stale_pages() -> list[str]:
    """The pages whose committed generated text is out of date."""
    return [
        name
        for name in PAGES
        if regenerate(text := (DOCS / name).read_text(encoding="utf-8")) != text
    ]


def main(argv: list[str]) -> int:
    """``python docs/hooks.py``: rewrite the pages; ``--check``: fail when one is stale."""
    if argv == ["--check"]:
        stale = stale_pages()
        for name in stale:
            print(f"docs/{name} is out of date: run python docs/hooks.py", file=sys.stderr)
        return 1 if stale else 0
    for name in PAGES:
        page = DOCS / name
        page.write_text(regenerate(page.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def on_page_content(html: str, **kwargs: Any) -> str:
    """Show Sphinx cross-reference roles from docstrings as plain code."""
    return _SPHINX_ROLE.sub("<code>", html)
