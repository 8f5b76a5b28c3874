"""Explicit failure: views that cannot be connected are named, and nothing partial is returned."""

from pathlib import Path

import numpy as np
import pytest

from splat.errors import InputError
from splat.io.datasets import load_scene
from splat.poses import estimate_poses

SCENES = Path(__file__).resolve().parents[1] / "scenes"


@pytest.fixture(scope="module")
def scenes():
    if not all((SCENES / s / "sparse" / "0").is_dir() for s in ("statues", "garden")):
        pytest.skip("scenes/statues and scenes/garden are not rendered")
    return {s: load_scene(SCENES / s, max_side=256) for s in ("statues", "garden")}


def test_unrelated_images_are_named(scenes):
    """Three overlapping statues views plus a garden view and a noise image: the solver must not
    place the unrelated two, and the error names exactly them."""
    rng = np.random.default_rng()
    start = int(rng.integers(0, 18))
    statues = scenes["statues"].images
    images = [statues.images[k] for k in (start, start + 2, start + 4)]  # ~14 degrees apart
    names = ["statues_" + statues.names[k] for k in (start, start + 2, start + 4)]
    garden = scenes["garden"].images
    g = int(rng.integers(0, len(garden.images)))
    noise = rng.random(images[0].shape).astype(np.float32)
    images += [garden.images[g], noise]
    names += ["garden_" + garden.names[g], "noise.png"]
    focal = float(scenes["statues"].cameras.K[0, 0, 0])  # known focal (as from EXIF): skips the search
    with pytest.raises(InputError) as err:
        estimate_poses(images, names, method="sparse", focal=focal, progress=False)
    msg = str(err.value)
    assert "garden_" + garden.names[g] in msg and "noise.png" in msg
    assert not any(n in msg for n in names[:3]), msg
    assert "\n" not in msg


def test_no_overlap_at_all_names_every_view():
    """Pure noise images share nothing: every view is named, nothing is returned."""
    rng = np.random.default_rng()
    images = [rng.random((96, 128, 3)).astype(np.float32) for _ in range(3)]
    names = ["a.png", "b.png", "c.png"]
    with pytest.raises(InputError, match="a.png") as err:
        estimate_poses(images, names, method="sparse", progress=False)
    assert all(n in str(err.value) for n in names)


def test_auto_never_returns_a_partial_result(monkeypatch):
    """When neither method registers every view, 'auto' raises and names the missing views."""
    import splat.poses as poses

    calls = []

    def fake_run(method, images, names, focal, log):
        calls.append(method)
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
    assert calls == ["sparse", "colmap"]  # the other method was tried before giving up
