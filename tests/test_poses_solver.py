"""The sparse-view solver on a committed scene subset: every view placed, ATE and focal within the
issue's bounds, with the focal found from the images (no focal given)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from splat.geometry.align import ate
from splat.io.datasets import load_scene, tnt_split
from splat.poses.sparse_view import SparseViewConfig, solve_sparse_views

SCENE = Path(__file__).resolve().parents[1] / "scenes" / "garden"


@pytest.fixture(scope="module")
def garden():
    if not (SCENE / "sparse" / "0").is_dir():
        pytest.skip("scenes/garden is not rendered")
    return load_scene(SCENE, max_side=384)  # smaller than the 512 px originals: a fast test


def test_six_views_focal_and_ate(garden):
    train, _ = tnt_split(len(garden.images), 6)  # about 36 degrees apart along a 180 degree orbit
    images = [garden.images.images[k] for k in train]
    cfg = SparseViewConfig(feature="sift", learned="off")  # the classical path; tests/test_match_learned.py
    res = solve_sparse_views(images, None, cfg, log=lambda *a, **k: None)
    gt = garden.cameras[list(train)]
    assert res.registered.all()
    assert abs(res.focal / float(gt.K[0, 0, 0]) - 1) < 0.03
    assert np.allclose(res.K[:, 0, 0], res.focal) and np.allclose(res.K[:, :2, 2], [192, 144])
    centres = -np.einsum("vji,vj->vi", res.w2c[:, :3, :3], res.w2c[:, :3, 3])
    assert ate(torch.from_numpy(centres), gt.centers)["rel"] < 0.02
    R = res.w2c[:, :3, :3]
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-6)
    assert np.allclose(res.w2c[0], np.eye(4), atol=1e-9)  # gauge: view 0 at the origin
    assert len(res.points) > 100 and res.points.shape == res.colors.shape
    assert np.isfinite(res.points).all() and (res.colors >= 0).all() and (res.colors <= 1).all()
