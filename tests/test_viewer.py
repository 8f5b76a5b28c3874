"""The viewer without a browser: conversions, loading, the app's state, LiveView, `splat view`."""

import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import roma
import torch
from conftest import make_cameras, make_gaussians

from splat.errors import InputError
from splat.geometry.se3 import quat_wxyz_to_rotmat
from splat.io.colmap import write_model
from splat.io.ply import read_ply, write_ply
from splat.render.sh import SH_C0
from splat.viewer.cameras import vertical_fov, viser_to_w2c, w2c_to_viser
from splat.viewer.splats import DisplayFrame, covariances, fit_display_frame, importance, select, splat_arrays

# ---- conversions ------------------------------------------------------------------------------


def test_covariance_has_the_scales_along_the_rotated_axes():
    g = make_gaussians(64, degree=0)
    cov = covariances(g.log_scales.double(), g.quats.double())
    R, s = quat_wxyz_to_rotmat(g.quats.double()), g.log_scales.double().exp()
    # Sigma R[:, k] = s_k^2 R[:, k], and Sigma is symmetric.
    torch.testing.assert_close(cov @ R, R * s[:, None, :] ** 2)
    torch.testing.assert_close(cov, cov.transpose(1, 2))


def test_display_frame_makes_the_scene_size_independent_of_world_units():
    g = make_gaussians(2000, degree=0)
    frame = fit_display_frame(g.means)
    arrays = splat_arrays(g, frame)
    radius = np.quantile(np.linalg.norm(arrays["centers"], axis=-1), 0.9)
    assert 2.5 < radius < 3.5
    # The same scene in other units, far from the origin, looks the same in the display frame.
    shift, scale = torch.tensor([5e4, -2e4, 1e4]), 1000.0
    far = g.clone()
    far.means = g.means.double().mul(scale).add(shift).float()
    far.log_scales = g.log_scales + math.log(scale)
    far_arrays = splat_arrays(far, fit_display_frame(far.means))
    np.testing.assert_allclose(far_arrays["centers"], arrays["centers"], atol=2e-2)
    np.testing.assert_allclose(far_arrays["covariances"], arrays["covariances"], rtol=1e-3, atol=1e-6)
    # Covariances survive the float16 packing viser does.
    cov16 = arrays["covariances"].astype(np.float16).astype(np.float32)
    big = arrays["covariances"] > 1e-3
    np.testing.assert_allclose(cov16[big], arrays["covariances"][big], rtol=2e-3)


def test_splat_arrays_colour_opacity_and_frame():
    g = make_gaussians(100, degree=2)
    frame = DisplayFrame(np.array([1.0, -2.0, 0.5]), 0.25)
    a = splat_arrays(g, frame)
    assert {k: v.shape for k, v in a.items()} == {
        "centers": (100, 3),
        "covariances": (100, 3, 3),
        "rgbs": (100, 3),
        "opacities": (100, 1),
    }
    assert all(v.dtype == np.float32 for v in a.values())
    np.testing.assert_allclose(a["centers"], 0.25 * (g.means.numpy() - frame.centre), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(frame.to_world(a["centers"]), g.means.numpy(), atol=1e-5)
    rgb = np.clip(g.sh_dc.numpy() * SH_C0 + 0.5, 0, 1)
    np.testing.assert_allclose(a["rgbs"], rgb, atol=1e-6)
    np.testing.assert_allclose(a["opacities"][:, 0], torch.sigmoid(g.opacity_logits).numpy(), atol=1e-6)
    cov = covariances(g.log_scales.double(), g.quats.double()).numpy() * 0.25**2
    np.testing.assert_allclose(a["covariances"], cov, rtol=1e-5, atol=1e-9)


def test_select_keeps_the_most_important_above_the_opacity_threshold():
    g = make_gaussians(500, degree=0)
    keep = select(g, 100, min_opacity=0.3)
    assert len(keep) == 100 and len(set(keep.tolist())) == 100
    assert bool((g.opacities[keep] >= 0.3).all())
    rest = torch.ones(len(g), dtype=torch.bool)
    rest[keep] = False
    rest &= g.opacities >= 0.3
    assert importance(g)[keep].min() >= importance(g)[rest].max()
    assert len(select(g, 10_000)) == 500
    assert len(select(g, 10_000, min_opacity=1.01)) == 0


def test_camera_round_trip_through_viser():
    cams = make_cameras(5)
    K = cams.K.clone()
    K[:, 1, 1] = K[:, 0, 0]  # viser cameras have square pixels and a centred principal point
    K[:, 0, 2], K[:, 1, 2] = 32.0, 24.0
    frame = DisplayFrame(np.random.randn(3), float(np.random.uniform(0.1, 10)))
    for v in range(5):
        wxyz, position = w2c_to_viser(cams.w2c[v].numpy(), frame)
        fov = vertical_fov(float(K[v, 1, 1]), 48)
        w2c, K2 = viser_to_w2c(wxyz, position, fov, 64, 48, frame)
        np.testing.assert_allclose(w2c, cams.w2c[v].numpy(), atol=1e-9)
        np.testing.assert_allclose(K2, K[v].numpy(), rtol=1e-9)


def test_viser_camera_looks_along_plus_z_with_up_minus_y():
    """viser's convention (R_world_camera: look +z, up -y) lands on our OpenCV projection."""
    R = roma.random_rotmat(dtype=torch.float64).numpy()
    wxyz = roma.rotmat_to_unitquat(torch.from_numpy(R)).numpy()[[3, 0, 1, 2]]
    frame = DisplayFrame(np.zeros(3), 1.0)
    position = np.random.randn(3)
    w2c, K = viser_to_w2c(wxyz, position, math.radians(50), 80, 60, frame)

    def project(point):
        p = w2c[:3, :3] @ point + w2c[:3, 3]
        return (K @ p)[:2] / p[2], p[2]

    look, up = R[:, 2], -R[:, 1]
    uv, depth = project(position + 2 * look)
    np.testing.assert_allclose(uv, [40, 30], atol=1e-9)
    assert depth > 0
    uv_up, _ = project(position + 2 * look + 0.5 * up)
    assert uv_up[1] < 30 and abs(uv_up[0] - 40) < 1e-9  # image rows grow downwards
    # The vertical field of view spans the image height.
    uv_edge, _ = project(position + look + math.tan(math.radians(25)) * up)
    np.testing.assert_allclose(uv_edge[1], 0.0, atol=1e-9)


# ---- loading ---------------------------------------------------------------------------------


def test_load_run_folder_with_cameras_and_thumbnails(tmp_path):
    from PIL import Image

    from splat.viewer.load import load_view_input

    g, cams = make_gaussians(50), make_cameras(3)
    run = tmp_path / "run"
    write_ply(run / "splat.ply", g)
    write_model(run / "cameras", cams)
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(images / cams.names[1])
    (run / "config.json").write_text(f'{{"images": "{images}"}}')
    data = load_view_input(run)
    assert len(data.gaussians) == 50 and data.ply_path == run / "splat.ply"
    assert data.cameras.names == cams.names
    torch.testing.assert_close(data.cameras.w2c, cams.w2c)
    assert data.images[0] is None and data.images[2] is None and data.images[1].shape == (48, 64, 3)
    bare = load_view_input(run / "splat.ply")  # a .ply inside a run folder finds its cameras too
    assert len(bare.cameras) == 3


@pytest.mark.parametrize("case", ["missing", "no_ply", "garbage", "nan", "empty"])
def test_bad_input_is_a_one_line_input_error(tmp_path, case):
    from splat.viewer.load import load_view_input

    path = tmp_path / "x.ply"
    if case == "no_ply":
        path = tmp_path
    elif case == "garbage":
        path.write_bytes(b"ply\nformat nonsense\n" + os.urandom(64))
    elif case == "nan":
        g = make_gaussians(10)
        g.means[3, 1] = float("nan")
        write_ply(path, g)
    elif case == "empty":
        write_ply(path, make_gaussians(0))
    with pytest.raises(InputError) as err:
        load_view_input(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message


# ---- the app ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app():
    from splat.viewer import ViewerApp

    cams = make_cameras(4, dtype=torch.float64)
    viewer = ViewerApp(make_gaussians(300, degree=1), cams, [None, np.ones((8, 8, 3)), None, None], port=0)
    yield viewer
    viewer.stop()


class FakeClient:
    """What ViewerApp reads and writes of a viser client: its camera and atomic()."""

    def __init__(self, wxyz=None, position=None, fov=0.8, width=40, height=30):
        self.camera = SimpleNamespace(
            wxyz=wxyz, position=position, fov=fov, image_width=width, image_height=height
        )

    @contextmanager
    def atomic(self):
        yield


def test_app_budget_update_status_and_download(app):
    assert app.port > 0 and app.url.startswith("http://127.0.0.1:")
    assert len(app.frustums) == 4
    app.gui_budget.value = 100
    assert app._shown == 100 and "showing 100" in app.gui_markdown.content
    app.gui_budget.value = app.gui_budget.max
    app.set_status("hello from the test")
    assert "hello from the test" in app.gui_markdown.content
    bigger = make_gaussians(700, degree=1)
    app.update(bigger)  # a budget slider at its maximum follows the new count
    assert app.gui_budget.max == 700 and app._shown == 700
    app.gui_min_opacity.value = 0.5
    assert app._shown == int((bigger.opacities >= 0.5).sum())
    app.gui_min_opacity.value = 0.0
    blob = app.ply_bytes()
    assert blob.startswith(b"ply\n")
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"viewer_test_{os.getpid()}.ply"
    try:
        tmp.write_bytes(blob)
        torch.testing.assert_close(read_ply(tmp).means, bigger.means)
    finally:
        tmp.unlink(missing_ok=True)
    app.gui_cameras.value = False
    assert not any(h.visible for h in app.frustums)
    app.gui_cameras.value = True


def test_server_render_of_a_client_at_a_training_camera_matches_the_renderer(app):
    from splat.viewer.render_bridge import render_rgb

    v = 2
    cams = app.cameras
    W, H = int(cams.width[v]), int(cams.height[v])
    K = cams.K[v].clone()
    K[1, 1], K[0, 2], K[1, 2] = K[0, 0], W / 2, H / 2
    wxyz, position = w2c_to_viser(cams.w2c[v].numpy(), app.frame)
    client = FakeClient(wxyz, position, vertical_fov(float(K[1, 1]), H), W, H)
    view = app.client_view(client)
    torch.testing.assert_close(view.w2c[0].double(), cams.w2c[v], atol=1e-5, rtol=1e-5)
    image = app.render_client_view(client)
    from splat.types import Cameras

    expected = render_rgb(app.gaussians, Cameras(K[None], cams.w2c[v : v + 1], [W], [H]))
    assert image.shape == (H, W, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - expected).max() <= 2


def test_clicking_a_camera_moves_the_client_there(app):
    client = FakeClient()
    app.fly_to(client, 1)
    cam = client.camera
    wxyz, position = w2c_to_viser(app.cameras.w2c[1].numpy(), app.frame)
    R = quat_wxyz_to_rotmat(torch.as_tensor(wxyz)).numpy()
    np.testing.assert_allclose(cam.position, position)
    look = (cam.look_at - cam.position) / np.linalg.norm(cam.look_at - cam.position)
    np.testing.assert_allclose(look, R[:, 2], atol=1e-9)
    np.testing.assert_allclose(cam.up_direction, -R[:, 1], atol=1e-9)
    assert cam.fov == pytest.approx(vertical_fov(float(app.cameras.K[1, 1, 1]), int(app.cameras.height[1])))


def test_render_toggle_hides_the_browser_splats(app):
    app.gui_server_render.value = True
    assert not app.splats.visible and app._render_thread.is_alive()
    app.gui_server_render.value = False
    app._render_thread.join(timeout=5)
    assert app.splats.visible and not app._render_thread.is_alive()


def test_live_view_throttles_splat_updates(app):
    from splat.viewer import LiveView

    now = [0.0]
    live = LiveView(app, interval_s=3.0, status_interval_s=0.5, clock=lambda: now[0])
    sent = []
    for step, t in enumerate([0.0, 1.0, 2.9, 3.2, 4.0, 6.5]):
        now[0] = t
        g = make_gaussians(50 + step, degree=1)
        sent.append(live.on_step(step, g, loss=0.1 / (step + 1), psnr=20.0 + step))
    assert sent == [True, False, False, True, False, True]
    assert len(app.gaussians) == 55 and live.updates == 3
    assert "step 5" in app.gui_markdown.content and "PSNR 25.00" in app.gui_markdown.content
    live.finish("done training")
    assert "done training" in app.gui_markdown.content


# ---- `splat view` ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_splat_view_serves_takes_another_port_and_stops_on_ctrl_c(tmp_path):
    write_ply(tmp_path / "scene.ply", make_gaussians(200, degree=1))
    port = _free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        proc = subprocess.Popen(
            [sys.executable, "-m", "splat.cli", "view", str(tmp_path / "scene.ply"), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines = []
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any("http://" in x for x in lines):
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
            url = next(x for x in lines if "http://" in x).split()[1]
            assert f"port {port} is in use" in "".join(lines)
            assert url.startswith("http://127.0.0.1:") and not url.endswith(f":{port}")
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200 and b"<html" in response.read().lower()
        finally:
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=90)  # generous: viser shuts down slowly on a loaded machine
    assert proc.returncode == 0, "".join(lines) + out
    assert "viewer stopped" in out and "Traceback" not in out


def test_splat_view_of_a_missing_folder_is_one_line(tmp_path):
    from splat.cli import main

    code = main(["view", str(tmp_path / "nope")])
    assert code == 2


def test_live_view_start_serves_the_initial_gaussians(capsys):
    from splat.viewer import LiveView

    g = make_gaussians(120, degree=1)
    live = LiveView.start(g, make_cameras(2), port=0, interval_s=0.0)
    try:
        assert "live view at http://127.0.0.1:" in capsys.readouterr().out
        assert live.app._shown == 120
        assert live.on_step(1, make_gaussians(80, degree=1), loss=0.5) and live.app._shown == 80
    finally:
        live.close()
