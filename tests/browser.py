"""Debian's chromium under Playwright, for the page's tests and its screenshot script. Playwright's own
browser builds are never downloaded (its Python package downloads none on install either)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Page

CHROMIUM_VARIABLE = "ITSM_CHROMIUM"


def chromium_path() -> str | None:
    """ITSM_CHROMIUM, else chromium on PATH (Debian's /usr/bin/chromium); None if it is not there."""
    path = os.environ.get(CHROMIUM_VARIABLE) or shutil.which("chromium")
    return path if path and os.access(path, os.X_OK) else None


def missing() -> str | None:
    """Why the page cannot be driven here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make test installs the `browser` extra)"
    if chromium_path() is None:
        return f"chromium is not installed (apt-get install chromium, or set {CHROMIUM_VARIABLE})"
    return None


@dataclass
class Console:
    """What the page said on its console: a Content-Security-Policy refusal shows up here."""

    messages: list[str] = field(default_factory=list)

    def record(self, message: ConsoleMessage) -> None:
        self.messages.append(f"{message.type}: {message.text}")

    def refusals(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m or "Refused to" in m]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    path = chromium_path()
    assert path is not None, missing()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser: Browser, console: Console, width: int = 1280, height: int = 900) -> Page:
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="en-GB")
    page = await context.new_page()
    page.on("console", console.record)
    page.on("pageerror", lambda error: console.messages.append(f"pageerror: {error}"))
    return page
