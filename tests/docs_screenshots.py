"""Screenshots of the built docs in headless Chromium, checked for overflow (nox -s screenshots).

Every page of a built site (``mkdocs build``) is served from 127.0.0.1 by
:mod:`http.server` and opened in Debian's ``chromium --headless`` at a laptop
width (1280 px) and a phone width (390 px):

- a PNG of the top of each page goes to ``--out`` (``PAGE-WIDTH.png``), to be
  looked at. Headless Chromium will not make a window narrower than 500 px,
  so the phone width is an iframe 390 px wide (the grey on its right is the
  rest of the window);
- the same page, with a small script added to it on the way out, reports each
  element of the content that reaches past the window, and each box that
  scrolls sideways. At 1280 px nothing may; at 390 px nothing may reach past
  the window, and only boxes that should not wrap may scroll: tables, the
  88-column terminal captures of the CLI reference, and Python.

Chromium runs with a new empty profile and its background networking off; the
only address it is given is the local server's.
"""

from __future__ import annotations

import argparse
import functools
import html
import http.server
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

WIDTHS = (1280, 390)
HEIGHT = 2000
#: Only these may scroll sideways at phone width: they cannot wrap (Python
#: could, but its indentation is its syntax).
MAY_SCROLL_ON_A_PHONE = ("table", "terminal", "python")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CHECK_QUERY = "xd-overflow-check"

#: Added before </body> when the page is asked for with ?xd-overflow-check.
CHECK_SCRIPT = """<script>
addEventListener("load", () => setTimeout(() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + [...el.classList].map((c) => "." + c).join("")
    + " \\u201c" + (el.textContent || "").trim().slice(0, 50) + "\\u201d";
  const scrolls = (el) => /auto|scroll|hidden/.test(getComputedStyle(el).overflowX);
  const content = document.querySelector(".md-content");
  for (const el of content.querySelectorAll("*")) {
    let clipped = false;  // inside a box that scrolls or clips: judged there
    for (let up = el.parentElement; up && up !== content; up = up.parentElement) {
      if (scrolls(up)) { clipped = true; break; }
    }
    const box = el.getBoundingClientRect();
    if (!clipped && box.width > 0 && box.right > width + 1) {
      found.push({problem: "past the window", element: name(el),
                  right: Math.round(box.right), window: width});
    }
    if (scrolls(el) && el.scrollWidth > el.clientWidth + 1) {
      const kind = el.closest(".xd-terminal") ? "terminal"
        : el.closest(".language-python") ? "python"
        : el.closest("table, .md-typeset__scrollwrap") ? "table" : "other";
      found.push({problem: "scrolls sideways", kind, element: name(el),
                  scroll: el.scrollWidth, client: el.clientWidth});
    }
  }
  const top = window.parent.document;  // the page itself, or the phone frame around it
  const out = top.createElement("pre");
  out.id = "xd-overflow";
  out.hidden = true;
  out.textContent = JSON.stringify(found);
  top.body.append(out);
}, 300));
</script>
"""


#: Headless Chromium lays a page out at least this wide, whatever --window-size
#: says: narrower widths are shown in an iframe of that width (FRAME_PAGE).
MIN_WINDOW = 500
FRAME_PREFIX = "/xd-frame/"
#: A phone-width viewport: the page in an iframe WIDTH px wide, left-aligned on grey.
FRAME_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>
html, body {{ margin: 0; background: #777; }}
iframe {{ display: block; border: 0; background: #fff; }}
</style></head>
<body><iframe src="{src}" width="{width}" height="{height}"></iframe></body></html>
"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site; adds the overflow check to pages asked for with ?xd-overflow-check.

    ``/xd-frame/WIDTH/PAGE`` is PAGE in an iframe WIDTH px wide.
    """

    def _send_html(self, page: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith(FRAME_PREFIX):
            width, _, page = path.removeprefix(FRAME_PREFIX).partition("/")
            src = "/" + page + (f"?{query}" if query else "")
            self._send_html(FRAME_PAGE.format(src=src, width=int(width), height=HEIGHT).encode())
            return
        if query != CHECK_QUERY:
            super().do_GET()
            return
        file = Path(self.translate_path(path))
        if file.is_dir():
            file = file / "index.html"
        self._send_html(file.read_text().replace("</body>", CHECK_SCRIPT + "</body>", 1).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve(site: Path) -> Iterator[str]:
    """Serve ``site`` on 127.0.0.1 (a free port); yield its base URL."""
    handler = functools.partial(_Handler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join()


def pages(site: Path) -> list[str]:
    """Each page of the site, as a path relative to its root ('' for the home page)."""
    found = []
    for index in sorted(site.rglob("index.html")):
        rel = index.parent.relative_to(site).as_posix()
        if rel.split("/")[0] not in ("assets", "search"):
            found.append("" if rel == "." else rel + "/")
    return found


def chromium(*args: str, width: int) -> str:
    """Run headless Chromium once with a new empty profile; return what it printed."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("no chromium: apt-get install chromium fonts-dejavu-core")
    with tempfile.TemporaryDirectory(prefix="xd-chromium-") as profile:
        window = f"--window-size={width},{HEIGHT}"
        done = subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", window, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    if done.returncode != 0:
        raise SystemExit(f"chromium {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.stdout


def problems(report: list[dict[str, Any]], width: int) -> list[dict[str, Any]]:
    """What the page must not do at ``width``."""
    if width >= 1280:
        return report
    return [
        item
        for item in report
        if item["problem"] != "scrolls sideways" or item["kind"] not in MAY_SCROLL_ON_A_PHONE
    ]


def check_site(site: Path, out: Path) -> int:
    """Screenshot and check every page at every width; return the number of problems."""
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    with serve(site) as base:
        for page in pages(site):
            stem = page.strip("/").replace("/", "-") or "index"
            for width in WIDTHS:
                png = out / f"{stem}-{width}.png"
                url = base + (page if width >= MIN_WINDOW else f"{FRAME_PREFIX[1:]}{width}/{page}")
                window = max(width, MIN_WINDOW)
                chromium(f"--screenshot={png}", url, width=window)
                dom = chromium(
                    "--virtual-time-budget=3000", "--dump-dom", f"{url}?{CHECK_QUERY}", width=window
                )
                start = dom.find('<pre id="xd-overflow" hidden="">')
                if start < 0:
                    print(f"{png}: the overflow check did not run", file=sys.stderr)
                    failures += 1
                    continue
                raw = dom[dom.index(">", start) + 1 : dom.index("</pre>", start)]
                report = json.loads(html.unescape(raw))
                bad = problems(report, width)
                allowed = len(report) - len(bad)
                note = f" ({allowed} scroll boxes allowed on a phone)" if allowed else ""
                print(f"{png}: {'ok' if not bad else f'{len(bad)} problems'}{note}")
                for item in bad:
                    print(f"    {json.dumps(item, ensure_ascii=False)}")
                failures += len(bad)
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--site", type=Path, required=True, help="a built site (mkdocs build)")
    parser.add_argument("--out", type=Path, required=True, help="where the PNGs go")
    args = parser.parse_args(argv)
    failures = check_site(args.site, args.out)
    if failures:
        print(f"screenshots: {failures} layout problems (see above)", file=sys.stderr)
        return 1
    print(
        f"screenshots: every page fits at {' and '.join(map(str, WIDTHS))} px; PNGs in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
