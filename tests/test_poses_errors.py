"""Explicit failure: views that cannot be connected are named, and nothing partial is returned."""

from pathlib import Path

import numpy as np
import pytest

from splat.errors import InputError
from splat.io.datasets import load_scene, tnt_split
from splat.poses import estimate_poses

SCENE = Path(__file__).resolve().parents[1] / "scenes" / "statues"


def test_unrelated_image_is_named():
    if not (SCENE / "sparse" / "0").is_dir():
        pytest.skip("scenes/statues is not rendered")
    statues = load_scene(SCENE)
    train, _ = tnt_split(len(statues.images), 6)
    images = [statues.images.images[k] for k in train[:2]]
    rng = np.random.default_rng()
    noise = rng.random((384, 512, 3)).astype(np.float32)  # texture that matches nothing
    names = [statues.images.names[k] for k in train[:2]] + ["unrelated.png"]
    with pytest.raises(InputError, match="unrelated.png"):
        estimate_poses(
            images + [noise], names, method="sparse", focal=float(statues.cameras.K[0, 0, 0]), progress=False
        )


def test_auto_never_returns_a_partial_result(monkeypatch):
    """When neither method registers every view, 'auto' raises and names the missing views."""
    import splat.poses as poses

    def fake_run(method, images, names, focal, log):
        V = len(images)
        reg = np.ones(V, bool)
        reg[-1] = False
        out = (
            np.tile(np.eye(3), (V, 1, 1)),
            np.tile(np.eye(4), (V, 1, 1)),
            reg,
            np.zeros((0, 3)),
            np.zeros((0, 3), np.float32),
            {},
        )
        return out, 0.0

    monkeypatch.setattr(poses, "_run", fake_run)
    images = [np.zeros((8, 8, 3), np.float32)] * 3
    with pytest.raises(InputError, match="c.jpg"):
        estimate_poses(images, ["a.jpg", "b.jpg", "c.jpg"], progress=False)
