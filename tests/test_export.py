"""`splat export` and `splat render` on a small run folder."""

import math

import numpy as np
import pytest
import torch
from conftest import make_gaussians

from splat.cli import main
from splat.export import FORMATS, export, read_gaussians
from splat.export.video import interpolate_path, orbit_path, scene_center
from splat.geometry.se3 import look_at_w2c
from splat.io.colmap import read_model, write_model
from splat.io.ply import write_ply
from splat.types import Cameras


def ring(views: int, width: int = 40, height: int = 30, dist: float = 4.0) -> Cameras:
    w2c = []
    for v in range(views):
        a = 2 * math.pi * v / views + 0.3
        eye = torch.tensor([dist * math.cos(a), 0.5 + 0.2 * math.sin(2 * a), dist * math.sin(a)]).double()
        w2c.append(look_at_w2c(eye, torch.zeros(3).double(), torch.tensor([0.0, -1, 0])))
    K = torch.tensor([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=torch.float64)
    names = [f"img_{(7 * v) % views:02d}.png" for v in range(views)]  # names not in pose order
    return Cameras(K.expand(views, 3, 3).clone(), torch.stack(w2c), [width] * views, [height] * views, names)


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    g = make_gaussians(300, 2)
    g.log_scales -= 1
    g.sh_rest *= 0.1
    write_ply(run / "splat.ply", g)
    write_ply(run / "init.ply", make_gaussians(120, 0))
    write_model(run / "cameras", ring(5))
    return run


def test_every_gaussian_format_exports_and_reads_back(run_dir):
    from splat.io.ply import read_ply

    g = read_ply(run_dir / "splat.ply")
    for fmt in ("ply", "ply-compressed", "splat", "spz", "sog", "glb", "quantized"):
        path = export(run_dir, fmt)
        assert path.parent == run_dir / "export" and path.exists()
        back = read_gaussians(path)
        assert len(back) == len(g), fmt
        # Same set of centres, whatever the order each format stores them in.
        a, b = np.sort(g.means.numpy(), 0), np.sort(back.means.numpy(), 0)
        assert np.abs(a - b).max() < 0.02 * np.abs(a).max(), fmt
    assert set(FORMATS) == {
        *("ply", "ply-compressed", "splat", "spz", "sog", "glb", "quantized", "colmap", "points", "mesh")
    }


def test_an_antialiased_scene_stays_marked_in_the_formats_that_can_say_so(run_dir):
    """A run trained anti-aliased exports a .ply with the header comment and an .spz with its flag 0x1 set;
    a classic run neither."""
    import struct

    from splat.io.ply import ply_render_settings, read_ply

    for aa in (False, True):
        write_ply(run_dir / "splat.ply", read_ply(run_dir / "splat.ply"), antialiased=aa)
        assert ply_render_settings(export(run_dir, "ply")).antialias == aa
        flags = struct.unpack_from("<IIIBBBB", export(run_dir, "spz").read_bytes())[5]
        assert bool(flags & 0x1) == aa


def test_colmap_and_points_exports(run_dir, tmp_path):
    cams = read_model(run_dir / "cameras").cameras
    model = read_model(export(run_dir, "colmap", tmp_path / "colmap"))
    assert model.cameras.names == cams.names
    assert torch.allclose(model.cameras.w2c, cams.w2c, atol=1e-9)
    assert len(model.points) == 0
    from splat.io.ply import read_ply

    init = read_ply(run_dir / "init.ply")
    pts = read_model(export(run_dir, "points"))
    assert pts.cameras.names == cams.names
    assert np.allclose(pts.points, init.means.numpy(), atol=1e-6)
    rgb = (0.5 + 0.28209479177387814 * init.sh_dc).clamp(0, 1).numpy() * 255
    assert np.abs(pts.colors.astype(float) - rgb).max() <= 0.51


def test_cli_export_and_errors(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--format", "spz", "--out", str(tmp_path / "a.spz")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "a.spz").exists() and "a.spz" in out
    ratio = (run_dir / "splat.ply").stat().st_size / (tmp_path / "a.spz").stat().st_size
    assert f"{ratio:.1f}x smaller than splat.ply" in out  # the user sees what the format saved
    assert main(["export", str(tmp_path / "nowhere"), "--format", "ply"]) == 2
    assert "splat.ply" in capsys.readouterr().err
    (run_dir / "init.ply").unlink()
    assert main(["export", str(run_dir), "--format", "points"]) == 2
    assert "init.ply" in capsys.readouterr().err


def test_camera_paths():
    cams = ring(6)
    centre = scene_center(cams)
    assert centre.norm() < 1e-6
    orbit = orbit_path(cams, 12)
    assert len(orbit) == 12 and orbit.names[0] == "frame_00000"
    radius = orbit.centers.norm(dim=1)
    assert torch.allclose(radius, radius[0].expand(12), rtol=1e-6)
    # Every orbit view looks at the scene centre: it projects onto the principal point.
    p = orbit.w2c[:, :3, 3]  # the world origin in camera coordinates
    assert torch.allclose(p[:, :2], torch.zeros(12, 2, dtype=p.dtype), atol=1e-9) and (p[:, 2] > 0).all()
    path = interpolate_path(cams, 11)
    by_name = cams[sorted(range(6), key=lambda i: cams.names[i])]
    assert torch.allclose(path.w2c[0], by_name.w2c[0], atol=1e-9)
    assert torch.allclose(path.w2c[-1], by_name.w2c[-1], atol=1e-9)
    R = path.w2c[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=R.dtype).expand(11, 3, 3), atol=1e-9)


def test_cli_render_writes_a_video(run_dir, tmp_path):
    import imageio_ffmpeg

    out = tmp_path / "fly.mp4"
    args = [
        "render",
        str(run_dir),
        "--path",
        "interpolate",
        "--frames",
        "4",
        "--video",
        str(out),
        "--backend",
        "torch",
    ]
    assert main(args) == 0
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    frames = list(reader)
    assert meta["size"] == (40, 30) and len(frames) == 4
    assert main(["render", str(run_dir), "--frames", "2", "--video", str(tmp_path / "x.avi")]) == 2
