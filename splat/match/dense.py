"""Offline classical dense matching: sparse-guided DIS optical flow with cycle and epipolar checks.

`dense_match(img0, img1)` returns, for every pixel of img0 at img0's own resolution, its matching
position in img1 and a confidence in [0,1]. It needs no downloads. Steps, on a working grid whose
longer side is at most `max_side`:

1. SIFT matches (or the given `sparse_matches`), verified by the fundamental matrix (the given `F`
   or one estimated by MAGSAC) and by agreement with their neighbours.
2. The verified matches, interpolated over their Delaunay mesh, seed DIS optical flow both ways
   (img0 -> img1 and img1 -> img0), so large displacements are found without a stereo assumption.
3. Confidence = cycle consistency x local texture x epipolar distance x flow smoothness.
   Pixels whose match leaves img1 get zero. With an F, matches are moved onto their epipolar line.

Coordinates use the pixel-centre convention: pixel (row i, column j) has its centre at
(x, y) = (j + 0.5, i + 0.5); an image spans [0, W] x [0, H]. F acts on such coordinates of the
input images: x1^T F x0 = 0. For a learned matcher see splat.match.roma.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from splat.errors import InputError
from splat.match import flow as flowlib
from splat.match import guide


@dataclass
class DenseMatchConfig:
    max_features: int = 4000  # SIFT keypoints per image for the sparse guide
    ratio: float = 0.8  # Lowe's ratio test
    epipolar_px: float = 1.5  # sparse-match inlier threshold and dense epipolar tolerance (working px)
    snap_to_epipolar: bool = True  # move dense matches onto their epipolar line when F is trusted
    cycle_px: float = 1.0  # cycle error (working px) at which confidence halves
    texture_lo: float = 1.0  # RMS gradient (gray levels/px) below which a pixel is textureless
    texture_hi: float = 4.0  # ... and above which texture counts fully
    discontinuity_px: float = 3.0  # flow change within 3x3 (working px) at which confidence halves
    refine_iters: int = 5  # DIS variational refinement iterations per pyramid level
    warp: bool = False
    seed: bool = True
    passes: int = 2
    reseed_step: int = 8


@dataclass
class DenseMatches:
    """Dense correspondences from img0 to img1, at img0's resolution (H,W).

    Attributes:
        match_xy: (H,W,2) float32 position in img1 (pixel-centre coordinates, see module doc) of the
            centre of each img0 pixel; always finite.
        confidence: (H,W) float32 in [0,1]; 0 where the match is unreliable or leaves img1.
        F: (3,3) fundamental matrix used (given or estimated), in input-image coordinates, or None.
        stats: sparse-match counts, working scale, seconds.
    """

    match_xy: np.ndarray
    confidence: np.ndarray
    F: np.ndarray | None = None
    stats: dict = field(default_factory=dict)

    @property
    def flow(self) -> np.ndarray:
        """(H,W,2) displacement match_xy - pixel centre, in pixels."""
        return self.match_xy - pixel_centres(*self.confidence.shape)

    def sample(self, n: int, min_conf: float = 0.5, rng: np.random.Generator | None = None):
        """Draw up to n confident matches, spread roughly uniformly over img0.

        Pixels are drawn without replacement with probability inversely proportional to the number
        of confident pixels in their cell of a coarse grid (about n cells), so sparse confident
        regions are not drowned by dense ones.
        Returns:
            xy0 (m,2), xy1 (m,2) float32 pixel-centre coordinates and conf (m,) float32, m <= n.
        """
        rng = np.random.default_rng() if rng is None else rng
        H, W = self.confidence.shape
        idx = np.flatnonzero(self.confidence.ravel() >= min_conf)
        if idx.size > n > 0:
            cell = max(1.0, np.sqrt(H * W / n))
            rows, cols = np.divmod(idx, W)
            cell_id = (rows // cell).astype(np.int64) * (int(W // cell) + 1) + (cols // cell).astype(np.int64)
            counts = np.bincount(cell_id)[cell_id]
            idx = rng.choice(idx, size=n, replace=False, p=(1.0 / counts) / np.sum(1.0 / counts))
        elif n <= 0:
            idx = idx[:0]
        rows, cols = np.divmod(idx, W)
        xy0 = np.stack([cols + 0.5, rows + 0.5], -1).astype(np.float32)
        return xy0, self.match_xy[rows, cols].astype(np.float32), self.confidence[rows, cols].copy()


def pixel_centres(H: int, W: int) -> np.ndarray:
    """(H,W,2) float32 pixel-centre coordinates (j + 0.5, i + 0.5)."""
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32) + 0.5, np.arange(H, dtype=np.float32) + 0.5)
    return np.stack([gx, gy], -1)


def _check_image(img: np.ndarray, name: str) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 8:
        shape = getattr(img, "shape", type(img).__name__)
        raise InputError(f"{name}: expected an (H,W,3) float image of at least 8x8 pixels, got {shape}")


def _to_gray_u8(img: np.ndarray, scale: float) -> np.ndarray:
    rgb = np.nan_to_num(np.asarray(img, np.float32), nan=0.0)
    gray = cv2.cvtColor(np.clip(rgb, 0, 1), cv2.COLOR_RGB2GRAY)
    if scale != 1.0:
        H, W = gray.shape
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return np.round(gray * 255).astype(np.uint8)


def _pad_to(gray: np.ndarray, H: int, W: int) -> np.ndarray:
    h, w = gray.shape
    return cv2.copyMakeBorder(gray, 0, H - h, 0, W - w, cv2.BORDER_CONSTANT, value=int(np.median(gray)))


def _scale_F(F: np.ndarray, s0x: float, s0y: float, s1x: float, s1y: float) -> np.ndarray:
    """F for coordinates scaled by (s0x,s0y) in image 0 and (s1x,s1y) in image 1."""
    return np.diag([1 / s1x, 1 / s1y, 1.0]) @ F @ np.diag([1 / s0x, 1 / s0y, 1.0])


def _trusted_F(F_est: np.ndarray | None, xy0: np.ndarray, xy1: np.ndarray, thresh: float):
    """None when the estimated F rests on too few matches or on a (near-)planar match set."""
    if F_est is None or len(xy0) < 30:
        return None
    Hm, mask = cv2.findHomography(xy0, xy1, cv2.RANSAC, thresh)
    if Hm is not None and mask is not None and mask.mean() > 0.95:
        return None  # a homography explains the matches: F is not determined by them
    return F_est


def _confidence(cyc, texture, epi, disc, cfg: DenseMatchConfig) -> np.ndarray:
    conf = np.exp2(-((cyc / cfg.cycle_px) ** 2))
    conf *= np.clip((texture - cfg.texture_lo) / (cfg.texture_hi - cfg.texture_lo), 0, 1)
    conf *= np.exp2(-((disc / cfg.discontinuity_px) ** 2))
    if epi is not None:
        conf *= np.exp2(-((epi / cfg.epipolar_px) ** 2))
    return conf.astype(np.float32)


def _dense_seeds(match, conf, step):
    h, w = conf.shape
    grid = pixel_centres(h, w)
    sub = (slice(step // 2, None, step), slice(step // 2, None, step))
    ok = conf[sub] >= 0.5
    return grid[sub][ok].astype(np.float64), match[sub][ok].astype(np.float64)


def _flow_pass(c0, c1, xy0, xy1, F_work, valid1, texture, shape, cfg):
    Hc, Wc = c0.shape
    flow_fn = flowlib.seeded_flow if cfg.warp else flowlib.dis_flow
    s01 = guide.interpolate_flow(xy0, xy1, (Hc, Wc)) if cfg.seed else None
    s10 = guide.interpolate_flow(xy1, xy0, (Hc, Wc)) if cfg.seed else None
    f01 = flow_fn(c0, c1, s01, refine_iters=cfg.refine_iters)
    f10 = flow_fn(c1, c0, s10, refine_iters=cfg.refine_iters)
    h, w = shape
    f01 = f01[:h, :w]
    cyc = flowlib.cycle_error(f01, f10, valid1)
    grid = pixel_centres(h, w)
    match = grid + f01
    epi = None
    if F_work is not None:
        epi = guide.epipolar_distance(F_work, grid.astype(np.float64), match.astype(np.float64))
        if cfg.snap_to_epipolar:
            match = guide.project_to_epipolar_lines(F_work, grid.astype(np.float64), match.astype(np.float64))
    conf = _confidence(cyc, texture, epi, flowlib.flow_discontinuity(f01), cfg)
    return match, conf


def dense_match(
    img0: np.ndarray, img1: np.ndarray, *, F: np.ndarray | None = None,
    sparse_matches: tuple[np.ndarray, np.ndarray] | None = None, max_side: int = 1024,
    cfg: DenseMatchConfig | None = None,
) -> DenseMatches:
    """Dense matches from img0 to img1.

    Args:
        img0, img1: float32 (H0,W0,3), (H1,W1,3) RGB in [0,1]; sizes may differ.
        F: optional (3,3) fundamental matrix, x1^T F x0 = 0 in pixel-centre coordinates.
        sparse_matches: optional (xy0 (n,2), xy1 (n,2)) pixel-centre matches to guide the flow
            instead of SIFT (they are still verified).
        max_side: flow is computed with both images scaled so their longer side is at most this
            (img1 to the same longer side as img0), then resized back to img0's resolution.
    Returns:
        DenseMatches at img0's resolution.
    """
    cfg = cfg or DenseMatchConfig()
    _check_image(img0, "img0")
    _check_image(img1, "img1")
    t0 = time.perf_counter()
    (H0, W0), (H1, W1) = img0.shape[:2], img1.shape[:2]
    side = min(max_side, max(H0, W0))
    s0, s1 = side / max(H0, W0), side / max(H1, W1)
    g0, g1 = _to_gray_u8(img0, s0), _to_gray_u8(img1, s1)
    # exact per-axis scales after rounding the working sizes
    s0x, s0y = g0.shape[1] / W0, g0.shape[0] / H0
    s1x, s1y = g1.shape[1] / W1, g1.shape[0] / H1

    if sparse_matches is None:
        xy0, xy1 = guide.sift_matches(g0, g1, cfg.max_features, cfg.ratio)
    else:
        xy0 = np.asarray(sparse_matches[0], np.float64).reshape(-1, 2) * [s0x, s0y]
        xy1 = np.asarray(sparse_matches[1], np.float64).reshape(-1, 2) * [s1x, s1y]
    F_work = None if F is None else _scale_F(np.asarray(F, np.float64), s0x, s0y, s1x, s1y)
    F_work, inliers = guide.verify_matches(xy0, xy1, F_work, cfg.epipolar_px)
    xy0, xy1 = xy0[inliers], xy1[inliers]
    keep = guide.consistent_with_neighbours(xy0, xy1)
    xy0, xy1 = xy0[keep], xy1[keep]
    if F is None:
        F_work = _trusted_F(F_work, xy0, xy1, cfg.epipolar_px)

    Hc, Wc = max(g0.shape[0], g1.shape[0]), max(g0.shape[1], g1.shape[1])
    c0, c1 = _pad_to(g0, Hc, Wc), _pad_to(g1, Hc, Wc)
    valid1 = np.zeros((Hc, Wc), bool)
    valid1[: g1.shape[0], : g1.shape[1]] = True
    texture = flowlib.texture_strength(g0)
    for it in range(cfg.passes):
        if it > 0:
            d0, d1 = _dense_seeds(match, conf, cfg.reseed_step)
            if F is None and len(d0) >= 30:
                F_new, ok = guide.verify_matches(np.concatenate([xy0, d0]), np.concatenate([xy1, d1]), None, cfg.epipolar_px)
                F_work = _trusted_F(F_new, np.concatenate([xy0, d0])[ok], np.concatenate([xy1, d1])[ok], cfg.epipolar_px)
            xy0s, xy1s = np.concatenate([xy0, d0]), np.concatenate([xy1, d1])
        else:
            xy0s, xy1s = xy0, xy1
        match, conf = _flow_pass(c0, c1, xy0s, xy1s, F_work, valid1, texture, g0.shape, cfg)

    match_xy = cv2.resize(match.astype(np.float32), (W0, H0), interpolation=cv2.INTER_LINEAR)
    match_xy /= np.array([s1x, s1y], np.float32)
    conf = np.clip(cv2.resize(conf, (W0, H0), interpolation=cv2.INTER_LINEAR), 0, 1)
    F_out = None if F_work is None else _scale_F(F_work, 1 / s0x, 1 / s0y, 1 / s1x, 1 / s1y)
    stats = {
        "sparse_matches": int(len(inliers)), "verified_matches": int(len(xy0)),
        "F": "given" if F is not None else ("estimated" if F_work is not None else "none"),
        "working_size": (g0.shape[1], g0.shape[0]), "seconds": round(time.perf_counter() - t0, 3),
    }
    return DenseMatches(match_xy, conf.astype(np.float32), F_out, stats)
