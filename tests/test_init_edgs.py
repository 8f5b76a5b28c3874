"""EDGS initialisation: triangulated dense matches land on the surface; bad input never gives NaNs."""

import numpy as np
import pytest
import torch

from splat.errors import InputError
from splat.init.edgs import EdgsConfig, edgs_init, select_neighbors
from splat.types import Cameras

H, W, F = 48, 64, 60.0


def look_at(eye, target=(0.0, 0.0, 0.0)):
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, -1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, -R @ eye
    return T


def plane_scene(n_views=4):
    """Cameras on an arc looking at the plane z = 0 (normal +z), from z = -3."""
    angles = np.linspace(-0.4, 0.4, n_views)
    w2c = np.stack([look_at([3 * np.sin(a), 0.2 * np.cos(3 * a), -3 * np.cos(a)]) for a in angles])
    K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1.0]])
    cams = Cameras(torch.tensor(K).repeat(n_views, 1, 1), torch.tensor(w2c), [W] * n_views, [H] * n_views)
    images = [np.random.default_rng(i).random((H, W, 3), dtype=np.float32) for i in range(n_views)]
    return images, cams


def exact_plane_matcher(cams: Cameras, images, outlier_fraction=0.0, seed=0):
    """Matches computed from the true geometry: ray from img0 pixel hits z=0, projected into img1."""
    rng = np.random.default_rng(seed)
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


def test_points_lie_on_the_surface_and_outliers_are_filtered():
    images, cams = plane_scene()
    cfg = EdgsConfig(samples_per_ref=500, sh_degree=1)
    g, conf, report = edgs_init(images, cams, cfg, match=exact_plane_matcher(cams, images, 0.2))
    assert report["triangulated"] == 4 * 500
    assert 0.5 < report["keep_rate"] < 0.9  # the ~20% shifted matches are rejected, not all of them kept
    assert len(g) == report["gaussians"] == conf.shape[0]
    assert g.means[:, 2].abs().max() < 1e-3  # on the plane z = 0
    # scale is the pixel footprint at ~3 units distance
    assert torch.allclose(g.scales.median(), torch.tensor(3.0 / F), rtol=0.2)
    # colours come from the reference pixels
    assert g.sh_rest.shape == (len(g), 3, 3) and torch.isfinite(g.sh_dc).all()


def test_textureless_input_is_a_clear_error_not_nans():
    images, cams = plane_scene(3)

    def no_confidence(img0, img1, F):
        return np.full((H, W, 2), np.nan, np.float32), np.zeros((H, W), np.float32)

    with pytest.raises(InputError, match="textureless or do not overlap"):
        edgs_init(images, cams, EdgsConfig(samples_per_ref=100), match=no_confidence)


def test_neighbors_prefer_nearby_views_with_parallax():
    _, cams = plane_scene(5)
    nbrs = select_neighbors(cams, 2, 2.0, 75.0)
    assert nbrs[0] == [1, 2] and sorted(nbrs[2]) == [1, 3] and nbrs[4] == [3, 2]
