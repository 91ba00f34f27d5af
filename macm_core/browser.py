"""Open a page of the built book in headless Chromium and report what a reader sees.

Used by the browser test and by ``make book`` users who want a screenshot: the book is
served from ``_build/html`` on a loopback port (as a reader's local server would), the
page is loaded in Debian's chromium through Playwright, and the result lists the plotly
figures actually drawn (their SVG exists) and every console error or page exception.
"""
from __future__ import annotations

import contextlib
import functools
import http.server
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .figures import find_chromium

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@dataclass
class PageReport:
    url: str
    title: str
    plotly_figures: int
    drawn_svgs: int
    console_errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve a folder on 127.0.0.1 (a free port) for the duration of the block."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def inspect_page(html_dir: Path, page: str, *, screenshot: Path | None = None,
                 timeout_ms: int = 20000) -> PageReport:
    """Load ``page`` (relative to ``html_dir``) and wait for its plotly figures to draw."""
    from playwright.sync_api import sync_playwright

    if not (html_dir / page).is_file():
        raise FileNotFoundError(f"{html_dir / page} does not exist: build the book first (make book)")
    with serve(html_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            url = f"{base}/{page}"
            tab.goto(url, wait_until="load")
            figures = tab.locator("div.plotly-graph-div").count()
            if figures:
                tab.wait_for_selector("div.plotly-graph-div svg.main-svg", timeout=timeout_ms)
            tab.wait_for_timeout(1000)  # late console errors (theme scripts) still arrive
            drawn = tab.locator("div.plotly-graph-div").evaluate_all(
                "divs => divs.filter(d => d.querySelector('svg.main-svg') &&"
                " d.querySelector('svg.main-svg g.trace, svg.main-svg image')).length")
            if screenshot is not None:
                tab.screenshot(path=str(screenshot), full_page=False)
            return PageReport(url=url, title=tab.title(), plotly_figures=figures,
                              drawn_svgs=drawn, console_errors=errors)
        finally:
            browser.close()
