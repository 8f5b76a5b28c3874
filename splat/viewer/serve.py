"""`splat view RUN_DIR_OR_PLY`: load, serve, print the URL, run until Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

from splat.viewer.app import ViewerApp
from splat.viewer.load import load_view_input


def serve(
    path: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    say: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:
    """Serve a run folder or .ply until Ctrl-C (or until `stop` is set); InputError on bad input."""
    data = load_view_input(path)
    from splat.io.ply import ply_render_settings

    settings = ply_render_settings(data.ply_path)  # the server renders draw an anti-aliased scene so
    app = ViewerApp(data.gaussians, data.cameras, data.images, host=host, port=port, render_settings=settings)
    try:
        stop = stop or threading.Event()
        previous = _stop_on_signals(stop)  # before "Ctrl-C to stop" is said: a Ctrl-C right after it counts
        if port and app.port != port:
            say(f"port {port} is in use; using port {app.port} instead")
        cams = f", {len(data.cameras)} cameras" if data.cameras is not None else ""
        say(f"viewing {data.ply_path} ({len(data.gaussians):,} Gaussians{cams})")
        say(f"open {app.url} in a browser (Ctrl-C to stop)")
        try:
            while not stop.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        say("viewer stopped")
    except KeyboardInterrupt:
        say("viewer stopped")
    finally:
        app.stop()


def _stop_on_signals(stop: threading.Event) -> dict:
    """Ctrl-C (SIGINT) and SIGTERM set `stop` (a clean stop); returns the previous handlers ({} off the main
    thread). SIGINT is set explicitly: a process started in the background by a non-interactive shell
    inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler of its own."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
