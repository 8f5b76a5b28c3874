"""The sparse-view solver on 3 views of a committed scene, and the explicit failure on images that
do not overlap."""

from pathlib import Path

import numpy as np
import pytest
import torch

from splat.geometry.align import ate
from splat.io.datasets import load_scene, tnt_split
from splat.poses import PoseResult, estimate_poses

SCENE = Path(__file__).resolve().parents[1] / "scenes" / "statues"


@pytest.fixture(scope="module")
def statues():
    if not (SCENE / "sparse" / "0").is_dir():
        pytest.skip("scenes/statues is not rendered")
    return load_scene(SCENE)


def test_three_views_within_ate_bound(statues):
    train, _ = tnt_split(len(statues.images), 3)  # frames 0, 11, 23: about 80 degrees apart
    images = [statues.images.images[k] for k in train]
    names = [statues.images.names[k] for k in train]
    res = estimate_poses(images, names, method="sparse", progress=False)
    assert isinstance(res, PoseResult) and res.method == "sparse"
    cams = res.cameras.validate()
    assert cams.names == names and cams.dtype == torch.float64
    gt = statues.cameras[list(train)]
    assert ate(cams.centers, gt.centers)["rel"] < 0.02
    assert abs(float(cams.K[0, 0, 0] / gt.K[0, 0, 0]) - 1) < 0.03
    assert len(res.points) > 100 and res.points.shape == res.colors.shape
    assert np.isfinite(res.points).all() and (res.colors >= 0).all() and (res.colors <= 1).all()
