"""Headless Chromium: render a page the tool wrote, as a DOM or as a screenshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",  # let plotly finish drawing before the DOM is read
)


def chromium() -> str | None:
    """The browser's path, or None where it is not installed (the tests that need it skip)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(page: Path, profile: Path, *extra: str, timeout: float) -> str:
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("chromium is not installed")
    done = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.stdout


def dump_dom(
    page: Path, profile: Path, *, timeout: float = 120, size: tuple[int, int] | None = None
) -> str:
    """The page's DOM after its scripts ran, in a fresh profile folder (in a window of ``size``
    pixels, where given)."""
    extra = (f"--window-size={size[0]},{size[1]}",) if size else ()
    return _run(page, profile, "--dump-dom", *extra, timeout=timeout)


def screenshot(page: Path, profile: Path, out: Path, size: tuple[int, int], *, timeout=120.0):
    """A PNG of the page in a window of ``size`` (width, height) pixels."""
    _run(
        page, profile, f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", timeout=timeout
    )
    return out
