"""Classical dense matcher: identity, known warps, textureless input, sizes, Middlebury; RoMa loader."""

import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from splat.errors import InputError
from splat.match.dense import DenseMatches, dense_match, fundamental_from_cameras, pixel_centres
from splat.match.roma import load_roma

ALOE = Path("/work/shared/data/middlebury-aloe")


def textured(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A float32 (h,w,3) image with texture at several scales (blurred noise octaves)."""
    img = np.zeros((h, w, 3), np.float32)
    for sigma, amp in ((1.0, 0.25), (3.0, 0.35), (8.0, 0.4)):
        noise = rng.standard_normal((h, w, 3)).astype(np.float32)
        blurred = cv2.GaussianBlur(noise, (0, 0), sigma)
        img += amp * blurred / blurred.std()
    return np.clip(0.5 + 0.15 * img, 0, 1)


def confident(m: DenseMatches, min_conf: float = 0.5) -> np.ndarray:
    return m.confidence >= min_conf


def test_identity_pair_gives_zero_flow_and_high_confidence():
    rng = np.random.default_rng()
    img = textured(96, 128, rng)
    m = dense_match(img, img)
    assert m.match_xy.shape == (96, 128, 2) and m.confidence.shape == (96, 128)
    assert np.isfinite(m.match_xy).all() and np.isfinite(m.confidence).all()
    assert confident(m).mean() > 0.9
    assert np.median(np.linalg.norm(m.flow[confident(m)], axis=-1)) < 0.05
    np.testing.assert_allclose(m.match_xy - m.flow, pixel_centres(96, 128))


def test_known_affine_warp_is_recovered():
    rng = np.random.default_rng()
    h, w = 120, 160
    img0 = textured(h, w, rng)
    ang, scale = np.deg2rad(rng.uniform(-6, 6)), rng.uniform(0.93, 1.07)
    A = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    t = rng.uniform(-8, 8, 2) + (np.eye(2) - A) @ [w / 2, h / 2]  # keep the centre roughly in view
    img1 = cv2.warpAffine(img0, np.c_[A, t], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    m = dense_match(img0, img1)
    # warpAffine maps OpenCV index coordinates; in pixel-centre coordinates x1 = A (x0 - 0.5) + t + 0.5
    expected = (pixel_centres(h, w) - 0.5) @ A.T + t + 0.5
    err = np.linalg.norm(m.match_xy - expected, axis=-1)
    ok = confident(m)
    assert ok.mean() > 0.7
    assert np.median(err[ok]) < 0.15
    assert np.mean(err[ok] > 2) < 0.02


def test_textureless_pair_has_no_confident_matches_and_no_nans():
    img = np.full((64, 80, 3), 0.4, np.float32)
    m = dense_match(img, img.copy())
    assert np.isfinite(m.match_xy).all() and np.isfinite(m.confidence).all()
    assert m.confidence.max() < 0.5
    xy0, xy1, conf = m.sample(100, min_conf=0.5, rng=np.random.default_rng())
    assert xy0.shape == (0, 2) and xy1.shape == (0, 2) and conf.shape == (0,)


def test_different_sized_images():
    rng = np.random.default_rng()
    img0 = textured(120, 160, rng)
    img1 = cv2.resize(img0, (120, 90), interpolation=cv2.INTER_AREA)  # same view, 0.75x
    m = dense_match(img0, img1)
    assert m.match_xy.shape == (120, 160, 2)
    err = np.linalg.norm(m.match_xy - 0.75 * pixel_centres(120, 160), axis=-1)  # pixel centres scale exactly
    ok = confident(m)
    assert ok.mean() > 0.8
    assert np.median(err[ok]) < 0.1


def homography_map(H: np.ndarray, xy: np.ndarray) -> np.ndarray:
    h = np.concatenate([xy, np.ones_like(xy[..., :1])], -1) @ H.T
    return h[..., :2] / h[..., 2:]


def two_plane_pair(rng: np.random.Generator, W: int = 192, H: int = 144, f: float = 170.0):
    """Two views of a textured scene: left half of view 0 on the plane z=3, right half on z=5.

    View 1 is rotated 8 degrees and moved sideways and up, so epipolar lines are oblique. Returns
    img0, img1, the exact match of every img0 pixel (H,W,2), its visibility in img1 (H,W) and F.
    """
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    a = np.deg2rad(8)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    w2c1 = np.eye(4)
    w2c1[:3, :3], w2c1[:3, 3] = R, -R @ [0.6, 0.25, 0.0]
    Hz = {z: K @ (R + np.outer(w2c1[:3, 3], [0, 0, 1]) / z) @ np.linalg.inv(K) for z in (3.0, 5.0)}
    img0 = textured(H, W, rng)
    grid = pixel_centres(H, W).astype(np.float64)
    near = grid[..., 0] < W / 2
    gt = np.where(near[..., None], homography_map(Hz[3.0], grid), homography_map(Hz[5.0], grid))
    # render view 1: the near plane wins wherever it projects from the left half of view 0
    src_near, src_far = (homography_map(np.linalg.inv(Hz[z]), grid) for z in (3.0, 5.0))
    src = np.where((src_near[..., 0] < W / 2)[..., None], src_near, src_far).astype(np.float32)
    img1 = cv2.remap(
        img0, src[..., 0] - 0.5, src[..., 1] - 0.5, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    # an img0 pixel is visible when view 1 renders its match from (about) that pixel
    at = (gt - 0.5).astype(np.float32)
    back = cv2.remap(src, at[..., 0], at[..., 1], cv2.INTER_NEAREST, borderValue=(-1e4, -1e4))
    inside = (gt[..., 0] > 0) & (gt[..., 0] < W) & (gt[..., 1] > 0) & (gt[..., 1] < H)
    visible = inside & (np.linalg.norm(back - grid, axis=-1) < 1.0)
    return img0, img1, gt, visible, fundamental_from_cameras(K, np.eye(4), K, w2c1)


@pytest.mark.parametrize("given_F", [False, True])
def test_general_two_view_motion_with_depth_jump(given_F):
    img0, img1, gt, visible, F = two_plane_pair(np.random.default_rng())
    m = dense_match(img0, img1, F=F if given_F else None)
    assert m.stats["rectified"] and m.stats["F"] == ("given" if given_F else "estimated")
    ok = confident(m)
    err = np.linalg.norm(m.match_xy - gt, axis=-1)
    assert (ok & visible).sum() / visible.sum() > 0.7
    assert np.median(err[ok & visible]) < 0.2
    assert np.mean(err[ok] > 2) < 0.06  # what is left sits along the depth edge
    assert np.mean(ok & ~visible) < 0.01  # occluded pixels are not reported confident


@pytest.mark.parametrize("given_F", [False, True])
def test_both_ways_gives_the_reverse_matches(given_F):
    img0, img1, gt, visible, F = two_plane_pair(np.random.default_rng())
    m = dense_match(img0, img1, F=F if given_F else None, both_ways=True)
    r = m.reverse
    assert r is not None and r.match_xy.shape == img1.shape[:2] + (2,)
    assert np.isfinite(r.match_xy).all() and np.isfinite(r.confidence).all()
    # following a confident img0 -> img1 match and then the reverse field leads back to the start
    ok = confident(m) & visible
    xy1 = m.match_xy[ok]
    at = (xy1 - 0.5).astype(np.float32)[None]
    back = cv2.remap(r.match_xy, at[..., 0], at[..., 1], cv2.INTER_LINEAR)[0]
    back_conf = cv2.remap(r.confidence, at[..., 0], at[..., 1], cv2.INTER_LINEAR)[0]
    err = np.linalg.norm(back - pixel_centres(*img0.shape[:2])[ok], axis=-1)
    assert np.mean(back_conf >= 0.5) > 0.8
    assert np.median(err[back_conf >= 0.5]) < 0.3
    assert dense_match(img0, img1).reverse is None


def test_sample_spreads_matches_over_the_image():
    rng = np.random.default_rng()
    H, W = 80, 100
    conf = np.zeros((H, W), np.float32)
    conf[:, : W // 2] = 1.0  # densely confident left half
    conf[::6, W // 2 :: 6] = 0.9  # sparsely confident right half (1 pixel in 36)
    match = pixel_centres(H, W) + rng.normal(size=2).astype(np.float32)
    xy0, xy1, c = DenseMatches(match, conf).sample(200, min_conf=0.5, rng=rng)
    assert len(xy0) == 200 and (c >= 0.5).all()
    rows, cols = (xy0[:, 1] - 0.5).astype(int), (xy0[:, 0] - 0.5).astype(int)
    np.testing.assert_array_equal(xy1, match[rows, cols])
    right = np.mean(xy0[:, 0] > W / 2)
    assert 0.15 < right < 0.6  # uniform in area would give ~0.5; by count it would be ~0.03
    assert len(np.unique(rows * W + cols)) == 200


def test_fundamental_from_cameras(random_cameras):
    cams = random_cameras(2)
    X = torch.randn(50, 3, dtype=torch.float64)
    uv = []
    for v in range(2):
        Xc = X @ cams.w2c[v, :3, :3].T + cams.w2c[v, :3, 3]
        h = Xc @ cams.K[v].T
        uv.append((h[:, :2] / h[:, 2:]).numpy())
    F = fundamental_from_cameras(cams.K[0], cams.w2c[0], cams.K[1], cams.w2c[1])
    x0, x1 = (np.c_[u, np.ones(len(u))] for u in uv)
    lines = x0 @ F.T
    dist = np.abs(np.sum(lines * x1, 1)) / np.hypot(lines[:, 0], lines[:, 1])
    assert dist.max() < 1e-6


def test_bad_input_raises_input_error():
    with pytest.raises(InputError, match="img1"):
        dense_match(np.zeros((32, 32, 3), np.float32), np.zeros((32, 32), np.float32))


def load_aloe(scale: float):
    """Middlebury Aloe left/right at `scale`, with its disparity resized (nearest) and multiplied by scale."""
    imgs = []
    for name in ("aloeL.jpg", "aloeR.jpg"):
        rgb = cv2.cvtColor(cv2.imread(str(ALOE / name), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        imgs.append(
            cv2.resize(rgb.astype(np.float32) / 255, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
    disp = cv2.imread(str(ALOE / "aloeGT.png"), cv2.IMREAD_UNCHANGED).astype(np.float32)
    disp = cv2.resize(disp, imgs[0].shape[1::-1], interpolation=cv2.INTER_NEAREST) * scale
    return imgs[0], imgs[1], disp


@pytest.mark.skipif(not ALOE.is_dir(), reason="Middlebury Aloe pair not available")
@pytest.mark.parametrize("given_F", [False, True])
def test_middlebury_aloe_accuracy(given_F):
    # Images at 0.4 scale (513x444) keep the test short; GT disparity is scaled by 0.4 too.
    left, right, disp = load_aloe(0.4)
    F = np.array([[0, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64) if given_F else None  # rectified: y1 = y0
    m = dense_match(left, right, F=F)
    assert m.stats["F"] == ("given" if given_F else "estimated")
    H, W = disp.shape
    gx, gy = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    err = np.hypot(m.match_xy[..., 0] - (gx - disp), m.match_xy[..., 1] - gy)
    known = disp > 0
    ok = known & confident(m)
    assert ok.sum() / known.sum() >= 0.5
    assert np.median(err[ok]) <= 1.0


def test_load_roma_without_package_names_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "romatch", None)  # makes `import romatch` fail
    monkeypatch.delenv("SPLAT_ROMA_WEIGHTS", raising=False)
    monkeypatch.delenv("SPLAT_DINOV2_WEIGHTS", raising=False)
    with pytest.raises(InputError) as e:
        load_roma()
    msg = str(e.value)
    assert "romatch" in msg and "pip install romatch" in msg
    assert "SPLAT_ROMA_WEIGHTS" in msg and "SPLAT_DINOV2_WEIGHTS" in msg
    assert "\n" not in msg


def fake_romatch(W_out: int = 40, H_out: int = 30):
    """A stand-in `romatch` module whose model maps every A pixel to the same place in B."""

    class Model:
        symmetric = True

        def match(self, im_a, im_b, device=None):
            u = (np.arange(W_out) + 0.5) / W_out * 2 - 1
            v = (np.arange(H_out) + 0.5) / H_out * 2 - 1
            grid = np.stack(np.meshgrid(u, v), -1)
            a_to_b = np.concatenate([grid, grid], -1)
            warp = np.concatenate([a_to_b, a_to_b], 1)  # (H, 2W, 4): A->B, then B->A
            cert = np.concatenate([np.full((H_out, W_out), 0.9), np.zeros((H_out, W_out))], 1)
            return torch.from_numpy(warp), torch.from_numpy(cert)

    mod = types.ModuleType("romatch")
    mod.roma_outdoor = lambda device, weights, dinov2_weights: Model()
    return mod


def test_load_roma_with_missing_weights_file(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "romatch", fake_romatch())
    dino = tmp_path / "dinov2.pth"
    torch.save({}, dino)
    missing = tmp_path / "nope" / "roma_outdoor.pth"
    monkeypatch.setenv("SPLAT_DINOV2_WEIGHTS", str(dino))
    with pytest.raises(InputError, match=str(missing)) as e:
        load_roma(missing)
    assert "romatch is not installed" not in str(e.value)


def test_roma_adapter_converts_to_pixel_centres(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "romatch", fake_romatch())
    for name in ("roma.pth", "dino.pth"):
        torch.save({}, tmp_path / name)
    monkeypatch.setenv("SPLAT_ROMA_WEIGHTS", str(tmp_path / "roma.pth"))
    matcher = load_roma(dinov2_path=tmp_path / "dino.pth")
    img0 = np.random.default_rng().random((60, 80, 3)).astype(np.float32)
    img1 = np.random.default_rng().random((30, 40, 3)).astype(np.float32)
    m = matcher(img0, img1)
    assert m.match_xy.shape == (60, 80, 2)
    # same view at half size; the outermost pixels are clamped by the resize from RoMa's grid
    np.testing.assert_allclose(m.match_xy[1:-1, 1:-1], pixel_centres(60, 80)[1:-1, 1:-1] * 0.5, atol=1e-4)
    np.testing.assert_allclose(m.confidence, 0.9, atol=1e-6)
