"""EDGS initialisation: depth maps land on the surface, beat the sparse start, never give NaNs."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from splat.errors import InputError
from splat.geometry.se3 import look_at_w2c
from splat.init.edgs import EdgsConfig, edgs_depths, edgs_init, match_pairs, select_neighbors
from splat.types import Cameras

H, W, F = 48, 64, 60.0
SCENES = Path(__file__).resolve().parents[1] / "scenes"


def look_at(eye, target=(0.0, 0.0, 0.0)):
    eye, target = (torch.tensor(v, dtype=torch.float64) for v in (eye, target))
    return look_at_w2c(eye, target, torch.tensor([0.0, -1.0, 0.0])).numpy()


def plane_scene(n_views=4, rng=None):
    """Cameras on an arc looking at the plane z = 0 (normal +z), from z = -3."""
    rng = rng or np.random.default_rng()
    angles = np.linspace(-0.4, 0.4, n_views)
    w2c = np.stack([look_at([3 * np.sin(a), 0.2 * np.cos(3 * a), -3 * np.cos(a)]) for a in angles])
    K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1.0]])
    cams = Cameras(torch.tensor(K).repeat(n_views, 1, 1), torch.tensor(w2c), [W] * n_views, [H] * n_views)
    images = [rng.random((H, W, 3), dtype=np.float32) for _ in range(n_views)]
    return images, cams


def exact_plane_matcher(cams: Cameras, images, outlier_fraction=0.0, rng=None):
    """Matches computed from the true geometry: ray from img0 pixel hits z=0, projected into img1."""
    rng = rng or np.random.default_rng()
    index = {id(im): i for i, im in enumerate(images)}
    K = cams.K.numpy()
    w2c = cams.w2c.numpy()

    def match(img0, img1, Fmat):
        i, j = index[id(img0)], index[id(img1)]
        v, u = np.mgrid[0:H, 0:W] + 0.5
        rays_cam = np.stack([(u - K[i, 0, 2]) / F, (v - K[i, 1, 2]) / F, np.ones_like(u)], -1)
        c2w = np.linalg.inv(w2c[i])
        d = rays_cam @ c2w[:3, :3].T
        o = c2w[:3, 3]
        t = -o[2] / d[..., 2]
        X = o + t[..., None] * d
        Xc = X @ w2c[j][:3, :3].T + w2c[j][:3, 3]
        xy = Xc[..., :2] / Xc[..., 2:] * F + K[j, :2, 2]
        x0 = np.stack([u, v, np.ones_like(u)], -1)
        x1 = np.concatenate([xy, np.ones_like(u)[..., None]], -1)
        assert np.abs(np.einsum("hwi,ij,hwj->hw", x1, Fmat, x0)).max() < 1e-6 * np.abs(Fmat).max() * W * W
        bad = rng.random((H, W)) < outlier_fraction
        xy[bad] += rng.uniform(5, 15, size=(int(bad.sum()), 2))
        return xy.astype(np.float32), np.ones((H, W), np.float32)

    return match


def test_depth_maps_are_exact_and_outliers_are_not_trusted():
    images, cams = plane_scene()
    match = exact_plane_matcher(cams, images, 0.2)
    depths, confs, report = edgs_depths(images, cams, EdgsConfig(), match=match)
    assert report["pairs"] == len(match_pairs(select_neighbors(cams, 2, 2.0, 75.0)))
    truth, _, _ = edgs_depths(images, cams, EdgsConfig(), match=exact_plane_matcher(cams, images))
    for d, c, t in zip(depths, confs, truth):
        assert np.isfinite(t).all()
        trusted = c >= 0.5
        assert 0.3 < trusted.mean() < 0.95  # pixels with a shifted match in a neighbour lose trust
        np.testing.assert_allclose(d[trusted], t[trusted], rtol=1e-4)
        assert np.nanmax(np.abs(d / t - 1)) < 0.05  # untrusted pixels are filled from trusted neighbours


def test_gaussians_lie_on_the_surface_once():
    images, cams = plane_scene()
    cfg = EdgsConfig()
    cfg.pointmap.sh_degree = 1
    g, conf, report = edgs_init(images, cams, cfg, match=exact_plane_matcher(cams, images, 0.1))
    assert len(g) == report["gaussians"] == conf.shape[0]
    assert g.means[:, 2].abs().max() < 0.05 and g.means[conf >= 0.5, 2].abs().max() < 1e-3
    # four views of one plane: the overlap is kept once, so far fewer than 4 views' worth of samples
    assert report["duplicates"] > 0.4 * report["candidates"]
    # one view's worth is 768 samples; the arc adds plane the first view misses and the 10 % outliers add
    # stray points: 1083-1159 over 40 random runs (the old bound of 1.5 views' worth failed 1 run in 15)
    assert len(g) < 2.0 * (H // 2) * (W // 2)
    # scale covers the sampling cell at ~3 units distance
    cell = cfg.pointmap.stride * 3.0 / F
    assert cell * 0.3 < float(g.scales.median()) < cell * 1.5
    assert g.sh_rest.shape == (len(g), 3, 3) and torch.isfinite(g.sh_dc).all()


def test_textureless_input_is_a_clear_error_not_nans():
    images, cams = plane_scene(3)

    def no_confidence(img0, img1, F):
        return np.full((H, W, 2), np.nan, np.float32), np.zeros((H, W), np.float32)

    with pytest.raises(InputError, match="textureless or do"):
        edgs_init(images, cams, EdgsConfig(), match=no_confidence)
    flat = [np.full((H, W, 3), 0.5, np.float32) for _ in images]  # the real matcher on blank images
    with pytest.raises(InputError, match="textureless or do"):
        edgs_init(flat, cams, EdgsConfig())


def test_non_overlapping_views_give_an_error_or_finite_sparse_result():
    rng = np.random.default_rng()
    _, cams = plane_scene(3)
    noise = [cv2.GaussianBlur(rng.random((H, W, 3), dtype=np.float32), (0, 0), 1.5) for _ in range(3)]
    try:
        g, conf, report = edgs_init(noise, cams, EdgsConfig())
    except InputError as e:
        assert "textureless or do" in str(e)
    else:  # unrelated images: whatever survives is reported and finite
        g.validate()
        assert torch.isfinite(conf).all() and report["gaussians"] == len(g)


def test_neighbors_prefer_nearby_views_with_parallax():
    _, cams = plane_scene(5)
    nbrs = select_neighbors(cams, 2, 2.0, 75.0)
    assert nbrs[0] == [1, 2] and sorted(nbrs[2]) == [1, 3] and nbrs[4] == [3, 2]
    assert match_pairs(nbrs) == [(0, 1), (0, 2), (1, 2), (2, 3), (2, 4), (3, 4)]


def test_step0_psnr_beats_the_sparse_start_on_a_committed_scene(tmp_path):
    """Garden at 192x144, 4 training views: EDGS renders a held-out view far better at step 0."""
    from splat.eval.metrics import psnr
    from splat.init.colmap_points import triangulate_known_poses
    from splat.init.sparse import sparse_init
    from splat.io.datasets import load_scene
    from splat.render import render

    scene = load_scene(SCENES / "garden", max_side=192)
    images, cams = scene.images.images, scene.cameras
    train, test = [4, 6, 8, 10], [7]
    g, _, report = edgs_init([images[i] for i in train], cams[train], EdgsConfig())
    for i in train:  # pycolmap reads the images from disk at the camera size
        cv2.imwrite(
            str(tmp_path / cams.names[i]), cv2.cvtColor(np.uint8(images[i] * 255 + 0.5), cv2.COLOR_RGB2BGR)
        )
    points, colors = triangulate_known_poses(tmp_path, cams[train])
    sparse = sparse_init(points, colors)

    def heldout(gaussians):
        outs = [
            render(gaussians, cams[i].to(dtype=torch.float32), sh_degree=0, backend="torch") for i in test
        ]
        return np.mean(
            [float(psnr(o.image.clamp(0, 1), torch.from_numpy(images[i]))) for o, i in zip(outs, test)]
        )

    assert heldout(g.to(dtype=torch.float32)) > heldout(sparse) + 4.0
    assert len(sparse) > 10  # the baseline did find points
