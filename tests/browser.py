"""Headless Chromium for the report tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download is never used: ``executable_path`` points at the
system browser (``.ci/run`` installs the ``chromium`` package). A missing browser is a
failure with an install hint, never a skip.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        raise AssertionError("chromium is not installed: apt-get install chromium (.ci/run does)")
    return path


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Opened:
    """A report loaded in a fresh page, with what the page said and did."""

    def __init__(self, b: Any, path: Path, width: int = 1300) -> None:
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page = b.new_page(viewport={"width": width, "height": 900})
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url, wait_until="load")

    @property
    def errors(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions, dialogs."""
        bad = [c for c in self.console if c.startswith(("error", "warning"))]
        return bad + self.page_errors + self.dialogs

    @property
    def foreign_requests(self) -> list[str]:
        return [u for u in self.requests if u != self.url]
