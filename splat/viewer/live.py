"""Live training view: the trainer calls `on_step` every step; the browser updates every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

from splat.types import Cameras, Gaussians
from splat.viewer.app import ViewerApp


class LiveView:
    """Throttled bridge from a training loop to a `ViewerApp`.

    Args:
        app: the viewer to update.
        interval_s: at most one splat refresh per this many seconds (sending splats costs ~N*44 bytes).
        status_interval_s: at most one panel-text refresh per this many seconds.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        app: ViewerApp,
        interval_s: float = 3.0,
        status_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.interval_s = interval_s
        self.status_interval_s = status_interval_s
        self.clock = clock
        self._last_splats: float | None = None
        self._last_status: float | None = None
        self.updates = 0

    @classmethod
    def start(
        cls,
        gaussians: Gaussians,
        cameras: Cameras | None = None,
        images: list | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        interval_s: float = 3.0,
    ) -> LiveView:
        """Start a viewer on the initial Gaussians (what `splat fit --view` calls) and print its URL."""
        app = ViewerApp(gaussians, cameras, images, host=host, port=port)
        print(f"live view at {app.url}", flush=True)
        return cls(app, interval_s=interval_s)

    def on_step(self, step: int, gaussians: Gaussians, loss: float, psnr: float | None = None) -> bool:
        """Report one training step; returns True when the splats were sent to the browser."""
        now = self.clock()
        if self._last_status is None or now - self._last_status >= self.status_interval_s:
            psnr_text = "" if psnr is None else f", PSNR {float(psnr):.2f} dB"
            self.app.set_status(f"training step {step}: loss {float(loss):.4f}{psnr_text}")
            self._last_status = now
        if self._last_splats is not None and now - self._last_splats < self.interval_s:
            return False
        self.app.update(gaussians)
        self._last_splats = now
        self.updates += 1
        return True

    __call__ = on_step

    def finish(self, text: str = "training finished", gaussians: Gaussians | None = None) -> None:
        """Send the final Gaussians (if given) and a closing status line."""
        if gaussians is not None:
            self.app.update(gaussians)
        self.app.set_status(text)

    def close(self) -> None:
        """Stop the viewer's server."""
        self.app.stop()
