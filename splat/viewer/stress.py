"""Several headless browser clients at one `splat view` process (load test, benchmark).

`ViewProcess` runs the real command (`python -m splat view PLY --port P`), keeps everything it
prints and reads its memory from /proc. `FrameCounter` decodes what a page receives over viser's
websocket and counts the messages by type: with "Render with splat" on, each
`BackgroundImageMessage` carrying an image is one frame the server rendered for that client.
`load_round` opens clients, moves their cameras in rapid drags and wheel steps, and drops one
client in the middle of its frames.
"""

from __future__ import annotations

import collections
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

FRAME = "BackgroundImageMessage"
SPLATS = "GaussianSplatsMessage"


def free_port() -> int:
    """A TCP port nobody listens on now (`splat view` takes the next one if it is gone meanwhile)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ViewProcess:
    """`splat view PATH` on a free port, as a subprocess; `output` holds its stdout and stderr lines."""

    def __init__(self, path: str | Path, *args: str, timeout_s: float = 120.0) -> None:
        command = [sys.executable, "-m", "splat", "view", str(path), "--port", str(free_port()), *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_for_url(timeout_s)

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))

    def _wait_for_url(self, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.output):
                if line.startswith("open http://"):
                    return line.split()[1]
            if self.proc.poll() is not None:
                raise RuntimeError(f"splat view exited ({self.proc.returncode}): {self.output[-5:]}")
            time.sleep(0.1)
        raise TimeoutError("splat view printed no URL")

    def _status_kib(self, key: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def rss_mib(self) -> float:
        """Resident memory now (VmRSS), MiB."""
        return self._status_kib("VmRSS") / 1024

    def peak_rss_mib(self) -> float:
        """The most resident memory so far (VmHWM), MiB."""
        return self._status_kib("VmHWM") / 1024

    def stop(self, timeout_s: float = 30.0) -> int:
        """Ctrl-C (SIGINT), as a user stops it; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout=5)
        return code


class FrameCounter:
    """Counts the viser messages one page receives, by type (`types`), and the frames among them."""

    def __init__(self, page) -> None:
        self.types: collections.Counter = collections.Counter()
        self.frames = self.sent = 0
        page.on("websocket", self._on_socket)

    def _on_socket(self, ws) -> None:
        ws.on("framereceived", self._on_frame)
        ws.on("framesent", self._on_sent)

    def _on_sent(self, payload) -> None:
        self.sent += 1

    def _on_frame(self, payload) -> None:
        import msgspec
        import zstandard

        if isinstance(payload, str):
            return
        # viser's wire format: [u64 msgpack size][u64 compressed size][zstd msgpack][binary buffers]
        size, compressed = int.from_bytes(payload[:8], "little"), int.from_bytes(payload[8:16], "little")
        inner = zstandard.ZstdDecompressor().decompress(payload[16 : 16 + compressed], max_output_size=size)
        for message in msgspec.msgpack.decode(inner)["messages"]:
            self.types[message["type"]] += 1
            self.frames += message["type"] == FRAME and message.get("rgb_data") is not None


def open_client(browser, url: str):
    """A new page of `browser` (a Browser or a BrowserContext) at `url`, with a FrameCounter attached
    before it connects: (page, counter)."""
    page = browser.new_page()
    counter = FrameCounter(page)
    page.goto(url, wait_until="domcontentloaded")
    return page, counter


def wait_for(page, condition, timeout_s: float = 60.0) -> bool:
    """Let `page` process events until `condition()` holds; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        page.wait_for_timeout(100)
    return condition()


def server_render_on(page) -> None:
    """Tick "Render with splat" in the page's panel (a shared setting: every client gets frames)."""
    page.get_by_text("Render with splat").click()


def drag(page, dx: int, dy: int, steps: int = 2, release: bool = True) -> None:
    """A quick mouse drag from the middle of the page (orbits the camera)."""
    page.bring_to_front()  # a background tab draws no frames, so its camera would not move
    size = page.viewport_size
    x, y = size["width"] // 4, size["height"] // 2  # left of the middle: the panel sits on the right
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=steps)
    if release:
        page.mouse.up()


def load_round(
    browser, url: str, clients: int = 3, moves: int = 4, seed: int = 0, width: int = 400, height: int = 300
) -> dict:
    """`clients` pages at once, each dragged and zoomed `moves` times in turn, plus one page closed in
    the middle of a drag while its frames are on the way; all pages are closed at the end.

    Returns:
        frames (rendered frames received, all pages), frames_per_client (the pages kept to the end),
        dropped_frames (what the dropped page got before it went), types (message counts, all pages).
    """
    import random

    rng = random.Random(seed)
    context = browser.new_context(viewport={"width": width, "height": height})
    pages = [open_client(context, url) for _ in range(clients)]
    dropped = open_client(context, url)
    try:
        for page, counter in [*pages, dropped]:
            wait_for(page, lambda c=counter: c.frames > 0 or c.types[SPLATS] > 0)
        for i in range(moves):
            for page, _ in pages:
                if rng.random() < 0.7:
                    drag(page, rng.randint(-80, 80), rng.randint(-40, 40))
                else:
                    page.mouse.wheel(0, rng.choice((-120, 120)))
            if i == moves // 2:  # gone while its view changes and the server renders for it
                drag(dropped[0], 60, 20, release=False)
                dropped[0].close()
        page, _ = pages[0]
        page.wait_for_timeout(500)
    finally:
        context.close()
    counters = [c for _, c in pages]
    types = sum((c.types for c in [*counters, dropped[1]]), collections.Counter())
    return {
        "frames": sum(c.frames for c in counters) + dropped[1].frames,
        "frames_per_client": [c.frames for c in counters],
        "sent_per_client": [c.sent for c in counters],
        "dropped_frames": dropped[1].frames,
        "types": dict(types),
    }
