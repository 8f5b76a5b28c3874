"""Time from `splat view` start to the first complete frame in a headless browser.

A synthetic 100k-Gaussian scene (splat/viewer/demo.py) is written to a temporary .ply; `splat view` is
started as a subprocess, and an already running headless Chromium (software WebGL) opens the URL
as soon as it is printed. "Complete" means the centre of the view is drawn and two consecutive
screenshots agree; the time reported is that of the first of the two (screenshot granularity,
~0.5-1 s with software rendering).

    .venv/bin/python scripts/bench_viewer.py [--gaussians 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from splat.io.ply import write_ply
from splat.viewer.browser import browser_missing, headless_browser, open_page, screenshot, wait_for_splats
from splat.viewer.demo import demo_scene
from splat.viewer.stress import free_port


def _read_url(proc: subprocess.Popen, timeout_s: float = 120.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"splat view exited (code {proc.poll()}) before printing a URL")
        if "http://" in line:
            return next(w for w in line.split() if w.startswith("http://"))
    raise TimeoutError("splat view printed no URL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gaussians", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--height", type=int, default=560)
    args = parser.parse_args()
    if why := browser_missing():
        print(f"cannot run: {why}")
        return 1
    with tempfile.TemporaryDirectory() as tmp, headless_browser() as browser:
        ply = write_ply(Path(tmp) / "scene.ply", demo_scene(args.gaussians))
        port = str(free_port())  # --port 0 is refused up front (a port is 1-65535)
        command = [sys.executable, "-m", "splat.cli", "view", str(ply), "--port", port]
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            url = _read_url(proc)
            t_url = time.perf_counter() - t0
            page = open_page(browser, url, args.width, args.height)
            t_page = time.perf_counter() - t0
            _, waited = wait_for_splats(page, timeout_s=300)
            t_frame = t_page + waited
            t_shot = time.perf_counter()
            screenshot(page)
            t_shot = time.perf_counter() - t_shot
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    print(f"{args.gaussians:,} Gaussians, {args.width}x{args.height}, headless Chromium (software WebGL)")
    print(f"  splat view start -> URL printed  {t_url:6.1f} s")
    print(f"  splat view start -> page loaded  {t_page:6.1f} s")
    print(f"  splat view start -> first frame  {t_frame:6.1f} s")
    print(f"  one screenshot (a software-WebGL frame) afterwards: {t_shot:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
