"""`splat view RUN_DIR_OR_PLY`: load, serve, print the URL, run until Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable

from viewer.app import ViewerApp
from viewer.load import load_view_input


def serve(
    path: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    say: Callable[[str], None] = print,
    stop: threading.Event | None = None,
    exit_on_hang: bool = False,
) -> None:
    """Serve a run folder or .ply until Ctrl-C (or until `stop` is set); InputError on bad input.

    exit_on_hang: for the CLI: end the process when the web server's shutdown hangs (see _stop_app)."""
    data = load_view_input(path)
    app = ViewerApp(data.gaussians, data.cameras, data.images, host=host, port=port)
    try:
        if port and app.port != port:
            say(f"port {port} is in use; using port {app.port} instead")
        cams = f", {len(data.cameras)} cameras" if data.cameras is not None else ""
        say(f"viewing {data.ply_path} ({len(data.gaussians):,} Gaussians{cams})")
        say(f"open {app.url} in a browser (Ctrl-C to stop)")
        stop = stop or threading.Event()
        previous = _stop_on_sigterm(stop)
        try:
            while not stop.wait(0.5):
                pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        say("viewer stopped")
    except KeyboardInterrupt:
        say("viewer stopped")
    finally:
        _stop_app(app, say, exit_on_hang)


def _stop_app(app, say: Callable[[str], None], exit_on_hang: bool, timeout_s: float = 15.0) -> None:
    """app.stop() with a deadline: the web server's shutdown once hung on a loaded machine (a fresh-clone
    test run) and its threads then kept the process alive; with exit_on_hang the process ends anyway."""
    worker = threading.Thread(target=app.stop, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive() and exit_on_hang:
        say(f"the web server did not shut down within {timeout_s:.0f} s; exiting anyway")
        sys.stdout.flush()
        os._exit(0)


def _stop_on_sigterm(stop: threading.Event):
    """Treat SIGTERM like Ctrl-C (a clean stop); returns the previous handler, None off the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, lambda *_: stop.set())
