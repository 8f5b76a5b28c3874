"""Drive a headless Chromium at the viewer (tests, screenshot, benchmark).

Uses the Debian `chromium` binary through the `playwright` Python package (its own browser
download is never needed), software WebGL (SwiftShader), no network beyond localhost.
"""

from __future__ import annotations

import io
import shutil
import time
from contextlib import contextmanager

import numpy as np

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def find_chromium() -> str | None:
    """Path of a Chromium binary, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def browser_missing() -> str | None:
    """Why the headless browser cannot run here, or None when it can."""
    if find_chromium() is None:
        return "no chromium binary on PATH (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    return None


@contextmanager
def headless_browser():
    """Yield a playwright Browser running the system Chromium headless; closes it after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, width: int = 800, height: int = 560):
    """A new page of `browser` showing `url` at the given viewport size."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url, wait_until="domcontentloaded")
    return page


@contextmanager
def headless_page(url: str, width: int = 800, height: int = 560):
    """Yield a playwright page showing `url` in headless Chromium; closes everything after."""
    with headless_browser() as browser:
        yield open_page(browser, url, width, height)


def screenshot(page) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the page (software WebGL frames of big scenes can take long)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(page.screenshot(timeout=180_000))).convert("RGB"))


def centre(image: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """The middle `fraction` of an image in each direction."""
    H, W = image.shape[:2]
    h, w = int(H * fraction / 2), int(W * fraction / 2)
    return image[H // 2 - h : H // 2 + h, W // 2 - w : W // 2 + w]


def covered(image: np.ndarray, background=(255, 255, 255), tol: int = 30) -> float:
    """Fraction of the centre region whose colour is not the background."""
    diff = np.abs(centre(image).astype(np.int32) - np.asarray(background)).max(-1)
    return float((diff > tol).mean())


def _change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (0-255) of the centre regions of two screenshots."""
    return float(np.abs(centre(a).astype(np.float32) - centre(b)).mean())


def wait_for_splats(
    page,
    timeout_s: float = 45.0,
    min_covered: float = 0.2,
    still: float = 1.5,
    changed_from: np.ndarray | None = None,
):
    """Poll screenshots until the centre is drawn and unchanged between two shots.

    With `changed_from`, first wait until the centre differs from that earlier screenshot.

    Returns:
        (screenshot (H, W, 3) uint8, seconds from the call until the first of the two equal shots
        was taken). Raises TimeoutError with the last coverage.
    """
    t0, previous, previous_taken, cov = time.perf_counter(), None, 0.0, 0.0
    while time.perf_counter() - t0 < timeout_s:
        taken = time.perf_counter() - t0
        shot = screenshot(page)
        cov = covered(shot)
        if changed_from is not None and _change(shot, changed_from) < still:
            continue
        changed_from = None
        if cov >= min_covered and previous is not None:
            if _change(shot, previous) < still:
                return shot, previous_taken
        previous, previous_taken = (shot, taken) if cov >= min_covered else (None, None)
        time.sleep(0.2)
    raise TimeoutError(f"splats not drawn after {timeout_s:.0f} s (centre coverage {cov:.2f})")
