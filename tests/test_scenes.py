"""The committed POV-Ray test scenes: layout, models equal to the recipe, and poses proven by markers.

Each scene holds small self-lit marker spheres of pure colours at known points (scenes/pov/*.pov).
Their blob centroids in the committed JPEGs must land where the committed COLMAP model projects them.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from splat.io.colmap import read_model

REPO = Path(__file__).resolve().parents[1]
SCENES_DIR = REPO / "scenes"


def _load_recipe():
    spec = importlib.util.spec_from_file_location("render_scenes", REPO / "scripts" / "render_scenes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rs = _load_recipe()
NAMES = sorted(rs.SCENES)


@functools.cache
def committed(name: str):
    """(ColmapModel, images (V, H, W, 3) int16 in [0, 255]) of a committed scene."""
    image_dir, model_dir = rs.scene_dirs(rs.SCENES[name], SCENES_DIR)
    model = read_model(model_dir)
    images = np.stack(
        [np.asarray(Image.open(image_dir / n).convert("RGB"), np.int16) for n in model.cameras.names]
    )
    return model, images


def project(cameras, X: np.ndarray) -> np.ndarray:
    """Pixel positions (V, M, 2) of world points X (M, 3) in every view (COLMAP pixel convention)."""
    K, w2c = cameras.K.numpy(), cameras.w2c.numpy()
    Xc = np.einsum("vij,mj->vmi", w2c[:, :3, :3], X) + w2c[:, None, :3, 3]
    uvw = np.einsum("vij,vmj->vmi", K, Xc)
    assert (uvw[..., 2] > 0).all(), "a marker is behind a camera"
    return uvw[..., :2] / uvw[..., 2:]


def marker_centroid(image: np.ndarray, rgb: np.ndarray) -> np.ndarray | None:
    """Centroid (x, y) in COLMAP pixel coordinates of the largest blob of pure colour `rgb`, or None.

    The weight of a pixel is its darkest 'on' channel minus its brightest 'off' channel, so only
    saturated marker pixels count; anti-aliased rims weigh in proportionally.
    """
    on, off = rgb > 0.5, rgb < 0.5
    weight = np.clip(image[..., on].min(-1) - image[..., off].max(-1), 0, None).astype(np.float64)
    labels, n = ndimage.label(weight > 120)
    if n == 0:
        return None
    biggest = int(np.argmax(np.bincount(labels.ravel())[1:]))
    rows, cols = ndimage.find_objects(labels)[biggest]
    rows = slice(max(rows.start - 3, 0), rows.stop + 3)
    cols = slice(max(cols.start - 3, 0), cols.stop + 3)
    w = weight[rows, cols]
    w = np.where(w > 60, w, 0.0)
    y, x = np.mgrid[rows, cols]
    return np.array([(w * x).sum() / w.sum() + 0.5, (w * y).sum() / w.sum() + 0.5])


@functools.cache
def found_markers(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Marker projections via the committed model and blob centroids in the images, both (V, M, 2)."""
    model, images = committed(name)
    X, rgb = rs.read_markers(rs.POV_DIR / f"{name}.pov")
    uv = project(model.cameras, X)
    blobs = np.full_like(uv, np.nan)
    for v, m in itertools.product(range(len(images)), range(len(X))):
        c = marker_centroid(images[v], rgb[m])
        if c is not None:
            blobs[v, m] = c
    return uv, blobs


@pytest.mark.parametrize("name", NAMES)
def test_layout_and_names(name):
    scene = rs.SCENES[name]
    image_dir, model_dir = rs.scene_dirs(scene, SCENES_DIR)
    files = sorted(p.name for p in image_dir.iterdir())
    assert files == rs.image_names(scene)  # nothing else in the folder, sorted along the orbit
    assert len(files) == (12 if scene.demo else 24)
    model, images = committed(name)
    assert model.cameras.names == files
    assert images.shape[1:] == (scene.orbit.height, scene.orbit.width, 3)
    if not scene.demo:
        assert images.shape[1:3] == (384, 512)
    assert model.camera_models == dict.fromkeys(files, "PINHOLE")
    assert len(model.points) == 0 and (model_dir / "points3D.txt").exists()


@pytest.mark.parametrize("name", NAMES)
def test_model_matches_recipe(name):
    model, _ = committed(name)
    expected = rs.orbit_cameras(rs.SCENES[name])
    torch.testing.assert_close(model.cameras.K, expected.K, rtol=0, atol=1e-9)
    torch.testing.assert_close(model.cameras.w2c, expected.w2c, rtol=0, atol=1e-9)
    assert model.cameras.width.tolist() == expected.width.tolist()
    assert model.cameras.height.tolist() == expected.height.tolist()


def test_intrinsics_follow_povray_fov():
    width, height, fov = 512, 384, float(np.random.uniform(30, 90))
    K = rs.intrinsics(width, height, fov)
    # the image's left and right borders are fov/2 off the optical axis; pixels are square
    assert np.degrees(np.arctan((width - K[0, 2]) / K[0, 0])) == pytest.approx(fov / 2)
    assert np.degrees(np.arctan(K[0, 2] / K[0, 0])) == pytest.approx(fov / 2)
    assert K[0, 0] == K[1, 1] and (K[0, 2], K[1, 2]) == (width / 2, height / 2)


@pytest.mark.parametrize("name", NAMES)
def test_markers_land_on_their_projections(name):
    uv, blobs = found_markers(name)
    assert uv.shape[1] >= 3, "a scene needs at least three markers"
    missing = np.argwhere(np.isnan(blobs[..., 0]))
    assert len(missing) == 0, f"markers (view, marker) not found: {missing.tolist()}"
    err = np.linalg.norm(blobs - uv, axis=-1)
    assert err.max() < 1.5, (
        f"worst marker error {err.max():.2f} px at (view, marker) {np.unravel_index(err.argmax(), err.shape)}"
    )
    assert np.median(err) < 0.5


@pytest.mark.parametrize("name", NAMES)
def test_images_are_not_mirrored(name):
    """Left/right order of marker blobs follows the world, using only camera centres and world up.

    In a right-handed world with y up, a camera at C looking at the scene centre (no roll) has its
    image x axis along forward x up; a marker at X appears at x ~ (X - C).right / (X - C).forward.
    """
    model, _ = committed(name)
    scene = rs.SCENES[name]
    X, _ = rs.read_markers(rs.POV_DIR / f"{name}.pov")
    _, blobs = found_markers(name)
    target = rs.POV_TO_WORLD @ np.array(scene.orbit.center)
    checked = 0
    for v, C in enumerate(model.cameras.centers.numpy()):
        forward = (target - C) / np.linalg.norm(target - C)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        side = ((X - C) @ right) / ((X - C) @ forward)  # tangent of the angle right of the axis
        for a, b in itertools.combinations(range(len(X)), 2):
            if abs(side[b] - side[a]) > 0.02:  # clearly apart sideways (> ~10 px)
                assert np.sign(blobs[v, b, 0] - blobs[v, a, 0]) == np.sign(side[b] - side[a]), (v, a, b)
                checked += 1
    assert checked >= len(model.cameras)


@pytest.mark.parametrize("name", NAMES)
def test_orbit_is_ordered_and_overlapping(name):
    model, _ = committed(name)
    scene = rs.SCENES[name]
    target = rs.POV_TO_WORLD @ np.array(scene.orbit.center)
    d = model.cameras.centers.numpy() - target
    azimuth = np.unwrap(np.arctan2(d[:, 0], d[:, 2]))
    steps = np.degrees(np.abs(np.diff(azimuth)))
    assert (np.sign(np.diff(azimuth)) == np.sign(azimuth[-1] - azimuth[0])).all()  # monotonic along names
    assert steps.max() < 15.0
    assert 100.0 <= np.degrees(abs(azimuth[-1] - azimuth[0])) <= 200.0


def test_committed_images_stay_small():
    total = sum(p.stat().st_size for p in SCENES_DIR.rglob("*.jpg"))
    assert total < 12e6, f"committed scenes take {total / 1e6:.1f} MB"
