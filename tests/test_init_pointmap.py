"""Point-map initialisation: one Gaussian per confident pixel, a doubly seen surface kept once."""

import numpy as np
import pytest
import torch

from splat.errors import InputError
from splat.init.pointmap import PointmapConfig, pixel_rays, pointmap_init, unproject
from splat.types import Cameras

H, W, F = 48, 64, 60.0


def plane_scene(n_views: int):
    """Random images and cameras on an arc 3 units from the plane z = 0, looking at the origin."""
    rng = np.random.default_rng()
    w2c = []
    for a in np.linspace(-0.4, 0.4, n_views):
        eye = np.array([3 * np.sin(a), 0.2 * np.cos(3 * a), -3 * np.cos(a)])
        z = -eye / np.linalg.norm(eye)
        x = np.cross(z, [0.0, -1.0, 0.0])
        x /= np.linalg.norm(x)
        R = np.stack([x, np.cross(z, x), z])
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, -R @ eye
        w2c.append(T)
    K = torch.tensor([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1.0]], dtype=torch.float64)
    cams = Cameras(K.repeat(n_views, 1, 1), torch.tensor(np.stack(w2c)), [W] * n_views, [H] * n_views)
    return [rng.random((H, W, 3), dtype=np.float32) for _ in range(n_views)], cams


def plane_depths(cams: Cameras) -> list[np.ndarray]:
    """Exact z-depth maps of the plane z = 0 for every view."""
    out = []
    for v in range(len(cams)):
        center, dirs = pixel_rays(cams[v])
        out.append((-center[2] / dirs[..., 2]).astype(np.float32))
    return out


def test_unproject_inverts_the_depth_map():
    _, cams = plane_scene(2)
    X = unproject(plane_depths(cams)[1], cams[1])
    assert X.shape == (H, W, 3) and np.abs(X[..., 2]).max() < 1e-5


def test_a_doubly_seen_plane_is_kept_once():
    images, cams = plane_scene(2)
    depths = plane_depths(cams)
    cfg = PointmapConfig(fill_holes=False, sh_degree=0)
    g, conf, report = pointmap_init(images, cams, depths, None, cfg)
    both, _, _ = pointmap_init(
        images, cams, depths, None, PointmapConfig(same_surface_tol=0.0, fill_holes=False)
    )
    per_view = (H // 2) * (W // 2)
    assert report["candidates"] == len(both) == 2 * per_view  # without the filter: every pixel of both views
    assert report["duplicates"] > 0.5 * per_view  # most of view 1 sees what view 0 already placed
    assert len(g) == 2 * per_view - report["duplicates"] - report["floaters"] and report["floaters"] == 0
    assert np.abs(g.means[:, 2].numpy()).max() < 1e-5 and torch.equal(conf, torch.ones(len(g)))
    # scale covers the stride cell at the pixel's depth
    depth = torch.from_numpy(np.concatenate([d[::2, ::2].ravel() for d in depths]))
    assert g.scales.min() >= 0.99 * cfg.scale_factor * cfg.stride * depth.min() / F


def test_points_in_front_of_what_another_view_sees_are_dropped():
    images, cams = plane_scene(2)
    depths = plane_depths(cams)
    wrong = depths[1].copy()
    wrong[10:30, 20:40] *= 0.6  # a patch of view 1 floats well in front of the plane
    g, _, report = pointmap_init(images, cams, [depths[0], wrong], None, PointmapConfig(fill_holes=False))
    assert report["floaters"] >= 0.8 * (10 * 10)  # the patch's stride samples, seen through by view 0
    assert np.abs(g.means[:, 2].numpy()).max() < 1e-5


def test_unconfident_pixels_only_fill_what_nothing_covers():
    images, cams = plane_scene(2)
    depths = plane_depths(cams)
    confs = [np.ones((H, W), np.float32), np.ones((H, W), np.float32)]
    confs[0][:, : W // 2] = 0.1  # view 0's left half is unconfident ...
    g, conf, report = pointmap_init(images, cams, depths, confs, PointmapConfig())
    assert report["filled"] < 0.5 * (H // 2) * (W // 4)  # ... but view 1 covers most of it
    assert np.isclose(conf.numpy(), 0.1).sum() == report["filled"]
    confs[1][:] = 0.0  # now nothing else covers it: the left half is filled at its low confidence
    g, conf, report = pointmap_init(images, cams, depths, confs, PointmapConfig())
    assert report["filled"] >= 0.9 * (H // 2) * (W // 4)
    assert np.abs(g.means[:, 2].numpy()).max() < 1e-5


def test_bad_depths_give_finite_gaussians_and_mismatched_inputs_an_error():
    rng = np.random.default_rng()
    images, cams = plane_scene(3)
    depths = [rng.uniform(-1, 6, (H, W)).astype(np.float32) for _ in range(3)]
    for d in depths:
        d[rng.random((H, W)) < 0.2] = np.nan
        d[rng.random((H, W)) < 0.1] = np.inf
    confs = [rng.random((H, W)).astype(np.float32) for _ in range(3)]
    confs[0][0, 0] = np.nan
    g, conf, _ = pointmap_init(images, cams, depths, confs)
    g.validate()
    assert torch.isfinite(conf).all() and (conf >= 0).all() and (conf <= 1).all()
    empty, _, report = pointmap_init(images, cams, [np.full((H, W), np.nan)] * 3)
    assert len(empty) == 0 and report["gaussians"] == 0
    with pytest.raises(InputError, match="differ"):
        pointmap_init(images, cams, [d[:-1] for d in depths])
    with pytest.raises(InputError, match="one image, depth map"):
        pointmap_init(images, cams, depths[:2])
