"""`ViewerApp`: a viser server showing Gaussians, training cameras and a small control panel.

The browser draws the splats itself (viser's WebGL splat renderer, SH DC colour only). The
"render with splat" toggle instead renders each client's view on the server with our renderer
(full SH) and sends it as the background image.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
import viser

from splat.io.images import to_uint8
from splat.types import Cameras, Gaussians
from splat.viewer.cameras import rotation, scaled_intrinsics, vertical_fov, viser_to_w2c, w2c_to_viser
from splat.viewer.render_bridge import one_view, render_rgb
from splat.viewer.splats import fit_display_frame, select, splat_arrays

BACKGROUND = (1.0, 1.0, 1.0)  # viser's canvas is white; server renders use the same
# A client can leave between _render_loop's check that it is connected and its frame's send; viser then warns
# that the frame will never be delivered (one message, replaced by the next: nothing piles up).
warnings.filterwarnings("ignore", r"Queued a BackgroundImageMessage on a closed connection", UserWarning)


def _thumbnail(image: np.ndarray | None) -> np.ndarray | None:
    if image is None:
        return None
    image = np.asarray(image)
    return to_uint8(image)


def _budget_step(n: int) -> int:
    """Slider step for a budget up to n: about a hundredth of n, a power of ten."""
    return max(1, 10 ** int(math.log10(n) - 2)) if n >= 100 else 1


class ViewerApp:
    """Serve Gaussians (and optional cameras with thumbnails) to the browser.

    Args:
        gaussians: what to show; kept on the CPU.
        cameras: training cameras, drawn as frustums; clicking one moves the browser's view there.
        images: per-camera thumbnails (H, W, 3) uint8 or float in [0, 1], or None entries.
        host, port: where to listen; if the port is taken the next free one is used (`self.port`).
        max_gaussians: initial point budget of the browser renderer.
        render_max_side: longer side of server-side renders ("render with splat").
    """

    def __init__(
        self,
        gaussians: Gaussians,
        cameras: Cameras | None = None,
        images: list[np.ndarray | None] | None = None,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        max_gaussians: int = 1_000_000,
        render_max_side: int = 512,
        render_settings=None,
    ) -> None:
        self._lock = threading.RLock()
        self.render_settings = render_settings  # splat.render.RenderSettings of the server renders
        self._gaussians = gaussians.detach().to("cpu", torch.float32)
        self.cameras = cameras.to("cpu", torch.float64) if cameras is not None else None
        self.frame = fit_display_frame(self._gaussians.means, self.cameras)
        self.render_max_side = render_max_side
        self._status = ""
        self._shown = 0
        self._version = 0  # bumps on every update(); server renders redo their view
        self._in_update = False
        self._stopped = threading.Event()
        self._render_thread: threading.Thread | None = None
        with contextlib.redirect_stdout(io.StringIO()):  # viser prints its own URL box; we print one line
            self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.host, self.requested_port, self.port = host, port, self.server.get_port()
        self._setup_view()
        self._setup_gui(max_gaussians)
        self.frustums = self._add_cameras(images)
        self._send_splats()

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def gaussians(self) -> Gaussians:
        return self._gaussians

    def update(self, gaussians: Gaussians) -> None:
        """Show new Gaussians (e.g. during training), keeping the display frame fixed."""
        with self._lock:
            self._gaussians = gaussians.detach().to("cpu", torch.float32)
            self._version += 1
            self._in_update = True  # the slider's callback would send the splats a second time
            try:
                self._fit_budget_slider(len(self._gaussians))
            finally:
                self._in_update = False
            self._send_splats()

    def set_status(self, text: str) -> None:
        """Replace the free text under the scene summary in the panel."""
        self._status = text
        self._refresh_markdown()

    def stop(self) -> None:
        self._stopped.set()
        with contextlib.redirect_stdout(io.StringIO()):
            self.server.stop()

    # ---- scene --------------------------------------------------------------------------

    def _setup_view(self) -> None:
        """Scene up direction and the initial view: outside the cameras, beside the first one."""
        init = self.server.initial_camera
        if self.cameras is None or len(self.cameras) == 0:
            self.server.scene.set_up_direction("-y")
            init.position, init.look_at, init.up = (0.0, -4.0, -8.0), (0.0, 0.0, 0.0), (0.0, -1.0, 0.0)
            return
        c2w = self.cameras.c2w.numpy()
        up = -c2w[:, :3, 1].mean(0)
        up = up / max(np.linalg.norm(up), 1e-12)
        self.server.scene.set_up_direction(tuple(float(x) for x in up))
        centres = self.frame.to_display(self.cameras.centers.numpy())
        side = centres[: min(2, len(centres))].mean(0)  # between cameras 0 and 1: no frustum in the middle
        side = side / max(np.linalg.norm(side), 1e-12) * np.linalg.norm(centres[0])
        init.position = tuple(1.6 * side + 0.6 * up)
        init.look_at, init.up = (0.0, 0.0, 0.0), tuple(up)
        init.fov = vertical_fov(float(self.cameras.K[0, 1, 1]), int(self.cameras.height[0]))

    def _send_splats(self) -> None:
        with self._lock:
            g = self._gaussians
            keep = select(g, int(self.gui_budget.value), float(self.gui_min_opacity.value))
            arrays = splat_arrays(g[keep], self.frame)
            self.splats = self.server.scene.add_gaussian_splats(
                "/splats", **arrays, visible=not self.gui_server_render.value
            )
            self._shown = len(keep)
        self._refresh_markdown()

    def _add_cameras(self, images: list[np.ndarray | None] | None) -> list:
        if self.cameras is None:
            return []
        self.server.scene.add_frame("/cameras", show_axes=False)
        centres = self.frame.to_display(self.cameras.centers.numpy())
        spacing = np.linalg.norm(np.diff(centres, axis=0), axis=-1)
        scale = float(min(0.2, 0.3 * np.median(spacing))) if len(spacing) else 0.2
        handles = []
        for v in range(len(self.cameras)):
            wxyz, position = w2c_to_viser(self.cameras.w2c[v].numpy(), self.frame)
            W, H = int(self.cameras.width[v]), int(self.cameras.height[v])
            fov = vertical_fov(float(self.cameras.K[v, 1, 1]), H)
            handle = self.server.scene.add_camera_frustum(
                f"/cameras/{v:04d}", fov=fov, aspect=W / H, scale=max(scale, 1e-3), thickness=0.004,
                image=_thumbnail(images[v]) if images else None, wxyz=wxyz, position=position,
                color=(40, 90, 200),
            )  # fmt: skip
            handle.on_click(lambda event, v=v: self.fly_to(event.client, v))
            handles.append(handle)
        return handles

    def fly_to(self, client, view: int) -> None:
        """Move a client's view onto training camera `view` (pose and field of view)."""
        wxyz, position = w2c_to_viser(self.cameras.w2c[view].numpy(), self.frame)
        R = rotation(wxyz)
        forward, up = R[:, 2], -R[:, 1]
        depth = max(float(forward @ -position), 0.5)  # orbit about the point nearest the scene centre
        camera = client.camera
        with client.atomic():
            camera.fov = vertical_fov(float(self.cameras.K[view, 1, 1]), int(self.cameras.height[view]))
            camera.position = position
            camera.look_at = position + depth * forward
            camera.up_direction = up

    # ---- panel --------------------------------------------------------------------------

    def _setup_gui(self, max_gaussians: int) -> None:
        gui, N = self.server.gui, max(len(self._gaussians), 1)
        self.gui_markdown = gui.add_markdown("")
        self.gui_cameras = gui.add_checkbox("Show cameras", True, visible=self.cameras is not None)
        step = _budget_step(N)
        self.gui_budget = gui.add_slider(
            "Max Gaussians", min=step, max=max(N, step), step=step, initial_value=min(N, max_gaussians),
            hint="show at most this many Gaussians in the browser, most opaque and largest first",
        )  # fmt: skip
        self.gui_min_opacity = gui.add_slider("Min opacity", 0.0, 1.0, 0.01, 0.0)
        self.gui_server_render = gui.add_checkbox(
            "Render with splat", False, hint="render this view on the server with our renderer (full SH)"
        )
        self.gui_download = gui.add_button("Download .ply", icon=viser.Icon.DOWNLOAD)
        self.gui_cameras.on_update(lambda _: self._set_cameras_visible(self.gui_cameras.value))
        self.gui_budget.on_update(lambda _: self._in_update or self._send_splats())
        self.gui_min_opacity.on_update(lambda _: self._send_splats())
        self.gui_server_render.on_update(lambda _: self._toggle_server_render())
        self.gui_download.on_click(self._download)

    def _fit_budget_slider(self, n: int) -> None:
        """Stretch the budget slider to a new Gaussian count; a slider at its maximum follows it."""
        slider, n = self.gui_budget, max(n, 1)
        if n == slider.max:
            return
        at_max = slider.value >= slider.max
        step = _budget_step(n)
        slider.min, slider.step, slider.max = step, step, max(n, step)
        if at_max or slider.value > slider.max:
            slider.value = slider.max

    def _refresh_markdown(self) -> None:
        lines = [f"**{len(self._gaussians):,} Gaussians** (showing {self._shown:,})"]
        if self.cameras is not None:
            lines.append(f"{len(self.cameras)} cameras")
        if self._status:
            lines.append(self._status)
        self.gui_markdown.content = "  \n".join(lines)

    def _set_cameras_visible(self, visible: bool) -> None:
        for handle in self.frustums:
            handle.visible = visible

    def ply_bytes(self) -> bytes:
        """The shown Gaussians (all of them, not just the budget) as a 3DGS .ply file."""
        from splat.io.ply import write_ply

        with tempfile.TemporaryDirectory() as tmp:
            return write_ply(Path(tmp) / "splat.ply", self._gaussians).read_bytes()

    def _download(self, event) -> None:
        if event.client is not None:
            event.client.send_file_download("splat.ply", self.ply_bytes(), save_immediately=True)

    # ---- server-side rendering ----------------------------------------------------------

    def client_view(self, client, max_side: int | None = None) -> Cameras:
        """The client's current view as a one-view world `Cameras` (OpenCV), optionally shrunk."""
        cam = client.camera
        W, H = int(cam.image_width), int(cam.image_height)
        w2c, K = viser_to_w2c(cam.wxyz, cam.position, cam.fov, W, H, self.frame)
        if max_side:
            K, W, H = scaled_intrinsics(K, W, H, max_side)
        return one_view(w2c, K, W, H)

    def render_client_view(self, client, max_side: int | None = None) -> np.ndarray:
        """Render what this client looks at with our renderer: (H, W, 3) uint8 on a white background."""
        with self._lock:
            g = self._gaussians
        return render_rgb(g, self.client_view(client, max_side), BACKGROUND, self.render_settings)

    def _toggle_server_render(self) -> None:
        on = bool(self.gui_server_render.value)
        self.splats.visible = not on
        if on and (self._render_thread is None or not self._render_thread.is_alive()):
            self._render_thread = threading.Thread(target=self._render_loop, daemon=True)
            self._render_thread.start()

    def _render_loop(self, min_interval_s: float = 0.1) -> None:
        """While the toggle is on: re-render each client whose camera (or the scene) changed."""
        done: dict[int, tuple[float, int]] = {}
        while self.gui_server_render.value and not self._stopped.is_set():
            clients = self.server.get_clients()
            done = {i: key for i, key in done.items() if i in clients}  # departed clients forgotten
            for client in list(clients.values()):
                key = (client.camera.update_timestamp, self._version)
                if key[0] == 0.0 or done.get(client.client_id) == key:
                    continue
                try:
                    image = self.render_client_view(client, self.render_max_side)
                    if client.client_id not in self.server.get_clients():
                        continue  # it left while its frame was rendered: nobody to send it to
                    client.scene.set_background_image(image, format="jpeg", jpeg_quality=90)
                except Exception as e:  # keep serving; say what went wrong
                    self.set_status(f"server render failed: {type(e).__name__}: {e}")
                done[client.client_id] = key
            self._stopped.wait(min_interval_s)
        for client in list(self.server.get_clients().values()):
            client.scene.set_background_image(None)
