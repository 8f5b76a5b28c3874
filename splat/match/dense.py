"""Offline classical dense matching: sparse-guided flow and rectified stereo, checked both ways.

`dense_match(img0, img1)` returns, for every pixel of img0 at img0's own resolution, its matching
position in img1 and a confidence in [0,1]. It needs no downloads and assumes nothing about the
camera motion. Steps, on a working grid whose longer side is at most `max_side`:

1. Sparse guide: SIFT matches (or the given `sparse_matches`) verified by the fundamental matrix
   (the given `F`, or one estimated by MAGSAC and trusted only when enough non-planar matches
   support it) and by agreement with their neighbours.
2. With a trusted F and both epipoles well outside the images, the pair is rectified (Hartley's
   homographies), semi-global block matching (SGBM) seeds the flow along the common rows, and DIS
   optical flow refines it both ways. Otherwise DIS flow both ways is seeded by the sparse matches
   interpolated over their Delaunay mesh; when F was missing, confident matches of this first
   pass settle F and seed a second, usually rectified, pass.
3. Confidence = cycle consistency (img0 -> img1 -> img0, in px) x local texture x flow smoothness
   x distance to the epipolar line; matches leaving img1 get zero. With F, matches are moved onto
   their epipolar lines.

Coordinates use the pixel-centre convention: pixel (row i, column j) has its centre at
(x, y) = (j + 0.5, i + 0.5); an image spans [0, W] x [0, H]. F acts on such coordinates of the
input images: x1^T F x0 = 0 (see `fundamental_from_cameras`). For a learned matcher see
splat.match.roma.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from splat.errors import InputError
from splat.match import flow as flowlib
from splat.match import guide
from splat.match import rectify as rectification


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
    finest_scale: int = 0  # DIS finest pyramid level (1: ~2.5x faster, ~5% less coverage on Middlebury)
    rectify: bool = True  # rectify and seed with SGBM when F is trusted and the epipoles are far
    passes: int = 2  # without rectification, re-seed a second pass from confident first-pass matches
    min_matches_for_F: int = 100  # fewer verified sparse matches: estimate F after a first dense pass
    reseed_step: int = 8  # grid step (working px) of the dense re-seeding matches


@dataclass
class DenseMatches:
    """Dense correspondences from img0 to img1, at img0's resolution (H,W).

    Attributes:
        match_xy: (H,W,2) float32 position in img1 (pixel-centre coordinates, see module doc) of the
            centre of each img0 pixel; always finite.
        confidence: (H,W) float32 in [0,1]; 0 where the match is unreliable or leaves img1.
        F: (3,3) fundamental matrix used (given or estimated), in input-image coordinates, or None.
        stats: sparse-match counts, working scale, seconds.
        reverse: the matches from img1 to img0 (at img1's resolution) computed in the same run, when
            `dense_match(..., both_ways=True)` asked for them; else None.
    """

    match_xy: np.ndarray
    confidence: np.ndarray
    F: np.ndarray | None = None
    stats: dict = field(default_factory=dict)
    reverse: DenseMatches | None = None

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


def _as_f64(a) -> np.ndarray:
    return np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a, np.float64)


def fundamental_from_cameras(K0, w2c0, K1, w2c1) -> np.ndarray:
    """(3,3) F with x1^T F x0 = 0 for two posed pinhole views (K (3,3), OpenCV w2c (4,4)).

    With K in the pixel-centre convention (splat.types.Cameras, COLMAP), F acts on pixel-centre
    coordinates, as dense_match expects. Accepts numpy arrays or torch tensors.
    """
    K0, w2c0, K1, w2c1 = (_as_f64(a) for a in (K0, w2c0, K1, w2c1))
    rel = w2c1 @ np.linalg.inv(w2c0)  # camera 0 -> camera 1
    t = rel[:3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    F = np.linalg.inv(K1).T @ tx @ rel[:3, :3] @ np.linalg.inv(K0)
    return F / np.linalg.norm(F)


def _check_image(img: np.ndarray, name: str) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 16:
        shape = getattr(img, "shape", type(img).__name__)
        raise InputError(f"{name}: expected an (H,W,3) float RGB image of at least 16x16 pixels, got {shape}")


def working_gray(img: np.ndarray, side: int) -> np.ndarray:
    """uint8 grey (h,w) of an RGB image (H,W,3) resized so its longer side is `side`.

    dense_match works on img0 at side = min(max_side, max(H0,W0)) and on img1 at the same side;
    sparse features computed on these and divided by the per-axis scale (w/W, h/H) can be
    passed to it as `sparse_matches`.
    """
    H, W = img.shape[:2]
    return _to_gray_u8(img, side / max(H, W))


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


def _verified(xy0, xy1, F_work, F_given: bool, cfg: DenseMatchConfig):
    """Matches (xy0, xy1) consistent with F and their neighbours, and the F to trust (or None)."""
    F_work, inliers = guide.verify_matches(xy0, xy1, F_work, cfg.epipolar_px)
    xy0, xy1 = xy0[inliers], xy1[inliers]
    keep = guide.consistent_with_neighbours(xy0, xy1)
    xy0, xy1 = xy0[keep], xy1[keep]
    if not F_given:
        F_work = _trusted_F(F_work, xy0, xy1, cfg.epipolar_px)
    return xy0, xy1, F_work


def _confidence(cyc, texture, epi, disc, cfg: DenseMatchConfig) -> np.ndarray:
    conf = np.exp2(-((cyc / cfg.cycle_px) ** 2))
    conf *= np.clip((texture - cfg.texture_lo) / (cfg.texture_hi - cfg.texture_lo), 0, 1)
    conf *= np.exp2(-((disc / cfg.discontinuity_px) ** 2))
    if epi is not None:
        conf *= np.exp2(-((epi / cfg.epipolar_px) ** 2))
    return conf.astype(np.float32)


def _dis_args(cfg: DenseMatchConfig) -> dict:
    return {"refine_iters": cfg.refine_iters, "finest_scale": cfg.finest_scale}


def _flow_unrectified(g0, g1, xy0, xy1, cfg: DenseMatchConfig):
    """Matches and cycle errors both ways by DIS flow seeded with the interpolated sparse matches.

    Returns ((match (h0,w0,2), cycle error (h0,w0)), (match (h1,w1,2), cycle error (h1,w1))).
    """
    Hc, Wc = max(g0.shape[0], g1.shape[0]), max(g0.shape[1], g1.shape[1])
    c0, c1 = _pad_to(g0, Hc, Wc), _pad_to(g1, Hc, Wc)
    f01 = flowlib.dis_flow(c0, c1, guide.interpolate_flow(xy0, xy1, (Hc, Wc)), **_dis_args(cfg))
    f10 = flowlib.dis_flow(c1, c0, guide.interpolate_flow(xy1, xy0, (Hc, Wc)), **_dis_args(cfg))
    out = []
    for fa, fb, ga, gb in ((f01, f10, g0, g1), (f10, f01, g1, g0)):
        valid_b = np.zeros((Hc, Wc), bool)
        valid_b[: gb.shape[0], : gb.shape[1]] = True
        h, w = ga.shape
        cyc = flowlib.cycle_error(fa, fb, valid_b)[:h, :w]
        out.append((pixel_centres(h, w) + fa[:h, :w], cyc))
    return out[0], out[1]


def _unrectify(field, cyc, Ha, Hb, shape):
    """Rectified flow/cycle error of image a -> matches (h,w,2) and cycle error (h,w) on a's grid."""
    q = rectification.apply_homography(Ha, pixel_centres(*shape)).astype(np.float32) - 0.5
    f = cv2.remap(field, q[..., 0], q[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cyc = cv2.remap(
        cyc,
        q[..., 0],
        q[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=flowlib.OUT_OF_BOUNDS,
    )
    return rectification.apply_homography(np.linalg.inv(Hb), q + 0.5 + f), cyc


def _flow_rectified(g0, g1, xy0, xy1, rect: rectification.Rectification, cfg: DenseMatchConfig):
    """Matches and cycle errors both ways by DIS flow on the rectified pair, seeded by SGBM.

    Returns ((match (h0,w0,2), cycle error (h0,w0)), (match (h1,w1,2), cycle error (h1,w1))).
    """
    r0, in0 = rectification.warp_image(g0, rect.H0, rect.size)
    r1, in1 = rectification.warp_image(g1, rect.H1, rect.size)
    q0, q1 = rectification.apply_homography(rect.H0, xy0), rectification.apply_homography(rect.H1, xy1)
    shape = (rect.size[1], rect.size[0])
    s01, s10 = guide.interpolate_flow(q0, q1, shape), guide.interpolate_flow(q1, q0, shape)
    s01, s10 = rectification.sgbm_seeds(r0, r1, q0[:, 0] - q1[:, 0], s01, s10)
    f01 = flowlib.dis_flow(r0, r1, s01, **_dis_args(cfg))
    f10 = flowlib.dis_flow(r1, r0, s10, **_dis_args(cfg))
    cyc01, cyc10 = flowlib.cycle_error(f01, f10, in1), flowlib.cycle_error(f10, f01, in0)
    cyc01[~in0] = flowlib.OUT_OF_BOUNDS
    cyc10[~in1] = flowlib.OUT_OF_BOUNDS
    # back to each image's working grid: sample the rectified fields at H(x), map matches by H_other^-1
    return (
        _unrectify(f01, cyc01, rect.H0, rect.H1, g0.shape),
        _unrectify(f10, cyc10, rect.H1, rect.H0, g1.shape),
    )


def _dense_seeds(match: np.ndarray, conf: np.ndarray, step: int, min_conf: float = 0.5):
    """Confident dense matches on a grid every `step` pixels, as extra sparse matches (n,2), (n,2)."""
    sub = (slice(step // 2, None, step), slice(step // 2, None, step))
    ok = conf[sub] >= min_conf
    return pixel_centres(*conf.shape)[sub][ok].astype(np.float64), match[sub][ok].astype(np.float64)


def _finish(match, cyc, ga, gb, F_ab, cfg: DenseMatchConfig):
    """Matches of image a in image b on the working grid: (match (h,w,2) float32, confidence (h,w))."""
    grid = pixel_centres(*ga.shape)
    hb, wb = gb.shape
    inside = (match[..., 0] > 0) & (match[..., 0] < wb) & (match[..., 1] > 0) & (match[..., 1] < hb)
    cyc = np.where(inside & np.isfinite(match).all(-1), cyc, flowlib.OUT_OF_BOUNDS)
    match = np.where(np.isfinite(match), match, grid)
    epi = None
    if F_ab is not None:
        epi = guide.epipolar_distance(F_ab, grid.astype(np.float64), match.astype(np.float64))
        if cfg.snap_to_epipolar:
            match = guide.project_to_epipolar_lines(F_ab, grid.astype(np.float64), match.astype(np.float64))
    disc = flowlib.flow_discontinuity((match - grid).astype(np.float32))
    conf = _confidence(cyc, flowlib.texture_strength(ga), epi, disc, cfg)
    return match.astype(np.float32), conf


def _match_pass(g0, g1, xy0, xy1, F_work, cfg: DenseMatchConfig):
    """One dense pass on the working pair: ((match01, conf01), (match10, conf10), rectified or not)."""
    rect = None
    if F_work is not None and cfg.rectify:
        rect = rectification.rectify_pair(F_work, xy0, xy1, g0.shape, g1.shape)
    if rect is not None:
        fwd, bwd = _flow_rectified(g0, g1, xy0, xy1, rect, cfg)
    else:
        fwd, bwd = _flow_unrectified(g0, g1, xy0, xy1, cfg)
    F_rev = None if F_work is None else F_work.T
    return _finish(*fwd, g0, g1, F_work, cfg), _finish(*bwd, g1, g0, F_rev, cfg), rect is not None


def _to_input_size(match, conf, size_a, scale_b) -> tuple[np.ndarray, np.ndarray]:
    """Working-grid matches/confidence resized to image a's input size (W,H), in image b's input pixels."""
    match_xy = cv2.resize(match, size_a, interpolation=cv2.INTER_LINEAR)
    match_xy /= np.array(scale_b, np.float32)
    conf = np.clip(cv2.resize(conf, size_a, interpolation=cv2.INTER_LINEAR), 0, 1)
    return match_xy, conf.astype(np.float32)


def dense_match(
    img0: np.ndarray,
    img1: np.ndarray,
    *,
    F: np.ndarray | None = None,
    sparse_matches: tuple[np.ndarray, np.ndarray] | None = None,
    max_side: int = 1024,
    cfg: DenseMatchConfig | None = None,
    both_ways: bool = False,
) -> DenseMatches:
    """Dense matches from img0 to img1 (and from img1 to img0 when both_ways).

    Args:
        img0, img1: float32 (H0,W0,3), (H1,W1,3) RGB in [0,1]; sizes may differ.
        F: optional (3,3) fundamental matrix, x1^T F x0 = 0 in pixel-centre coordinates.
        sparse_matches: optional (xy0 (n,2), xy1 (n,2)) pixel-centre matches to guide the flow
            instead of SIFT (they are still verified).
        max_side: matching runs with both images scaled so their longer side is at most this
            (img1 to the same longer side as img0); results are resized back to img0's resolution.
        both_ways: also return img1 -> img0 matches (`.reverse`, at img1's resolution); the
            matcher computes both flows anyway for its cycle check, so this costs little.
    Returns:
        DenseMatches at img0's resolution.
    """
    cfg = cfg or DenseMatchConfig()
    _check_image(img0, "img0")
    _check_image(img1, "img1")
    t0 = time.perf_counter()
    (H0, W0), (H1, W1) = img0.shape[:2], img1.shape[:2]
    side = min(max_side, max(H0, W0))
    g0, g1 = _to_gray_u8(img0, side / max(H0, W0)), _to_gray_u8(img1, side / max(H1, W1))
    # exact per-axis scales after rounding the working sizes
    s0x, s0y = g0.shape[1] / W0, g0.shape[0] / H0
    s1x, s1y = g1.shape[1] / W1, g1.shape[0] / H1

    if sparse_matches is None:
        xy0, xy1 = guide.sift_matches(g0, g1, cfg.max_features, cfg.ratio)
    else:
        xy0 = np.asarray(sparse_matches[0], np.float64).reshape(-1, 2) * [s0x, s0y]
        xy1 = np.asarray(sparse_matches[1], np.float64).reshape(-1, 2) * [s1x, s1y]
    n_sparse = len(xy0)
    t_sparse = time.perf_counter() - t0
    F_work = None if F is None else _scale_F(np.asarray(F, np.float64), s0x, s0y, s1x, s1y)
    xy0, xy1, F_work = _verified(xy0, xy1, F_work, F is not None, cfg)
    n_verified = len(xy0)
    if F is None and n_verified < cfg.min_matches_for_F:
        F_work = None  # too few sparse matches to trust their F: let a first dense pass settle it
    for it in range(cfg.passes):
        (match, conf), backward, rectified = _match_pass(g0, g1, xy0, xy1, F_work, cfg)
        if rectified or it + 1 == cfg.passes:
            break
        # Confident dense matches re-seed a second pass and settle F where sparse ones could not.
        d0, d1 = _dense_seeds(match, conf, cfg.reseed_step)
        xy0, xy1, F_work = _verified(
            np.concatenate([xy0, d0]),
            np.concatenate([xy1, d1]),
            F_work if F is not None else None,
            F is not None,
            cfg,
        )

    match_xy, conf = _to_input_size(match, conf, (W0, H0), (s1x, s1y))
    F_out = None if F_work is None else _scale_F(F_work, 1 / s0x, 1 / s0y, 1 / s1x, 1 / s1y)
    stats = {
        "sparse_matches": n_sparse,
        "verified_matches": n_verified,
        "rectified": rectified,
        "passes": it + 1,
        "F": "given" if F is not None else ("estimated" if F_work is not None else "none"),
        "working_size": (g0.shape[1], g0.shape[0]),
        "seconds_sparse": round(t_sparse, 3),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    reverse = None
    if both_ways:
        rev_xy, rev_conf = _to_input_size(*backward, (W1, H1), (s0x, s0y))
        reverse = DenseMatches(rev_xy, rev_conf, None if F_out is None else F_out.T, stats)
    return DenseMatches(match_xy, conf, F_out, stats, reverse)
