"""Sparse guidance for dense flow: SIFT matches, epipolar verification, sparse-to-dense interpolation.

Coordinates use the pixel-centre convention throughout: pixel (row i, column j) has its centre at
(x, y) = (j + 0.5, i + 0.5), so scaling an image by s scales every coordinate by exactly s.
A fundamental matrix F acts on such coordinates: x1^T F x0 = 0 with x = (x, y, 1).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import Delaunay, QhullError, cKDTree

MIN_MATCHES_FOR_F = 16  # fewer verified matches than this and an estimated F is not trusted


def sift_features(gray: np.ndarray, max_features: int = 4000, contrast: float = 0.01):
    """SIFT keypoints of a uint8 grey image (H,W): (xy (n,2) float64 pixel centres, descriptors (n,128)).

    The contrast threshold is below OpenCV's default (0.04): smooth rendered or low-contrast
    images otherwise yield too few keypoints to seed a dense match.
    """
    sift = cv2.SIFT_create(nfeatures=max_features, contrastThreshold=contrast)
    kp, desc = sift.detectAndCompute(gray, None)
    if desc is None or len(kp) == 0:
        return np.zeros((0, 2)), np.zeros((0, 128), np.float32)
    return np.array([k.pt for k in kp], np.float64) + 0.5, desc  # OpenCV keypoints: centre at integer


def match_features(feat0, feat1, ratio: float = 0.8):
    """Mutual ratio-test matches between two `sift_features` results: xy0 (n,2), xy1 (n,2)."""
    (p0, d0), (p1, d1) = feat0, feat1
    if len(p0) < 2 or len(p1) < 2:
        return np.zeros((0, 2)), np.zeros((0, 2))
    i0, i1 = _mutual_ratio_matches(d0, d1, ratio)
    if i0.size == 0:
        return np.zeros((0, 2)), np.zeros((0, 2))
    return p0[i0], p1[i1]


def sift_matches(
    gray0: np.ndarray,
    gray1: np.ndarray,
    max_features: int = 4000,
    ratio: float = 0.8,
    contrast: float = 0.01,
):
    """Mutual nearest-neighbour SIFT matches passing Lowe's ratio test.

    Args:
        gray0, gray1: uint8 grayscale images (H0,W0), (H1,W1).
    Returns:
        xy0 (n,2), xy1 (n,2) float64 pixel-centre coordinates.
    """
    f0 = sift_features(gray0, max_features, contrast)
    f1 = sift_features(gray1, max_features, contrast)
    return match_features(f0, f1, ratio)


def _mutual_ratio_matches(d0: np.ndarray, d1: np.ndarray, ratio: float):
    """Indices (i0 (n,), i1 (n,)) of mutual nearest descriptors whose first neighbour passes the ratio test.

    Approximate nearest neighbours (FLANN k-d forest); the mutual check removes most of its mistakes.
    """
    flann = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 64})
    fwd = flann.knnMatch(d0, d1, k=2)
    back = {m[0].queryIdx: m[0].trainIdx for m in flann.knnMatch(d1, d0, k=1) if m}
    pairs = [
        (a.queryIdx, a.trainIdx)
        for a, b in (m for m in fwd if len(m) == 2)
        if a.distance < ratio * b.distance and back.get(a.trainIdx) == a.queryIdx
    ]
    i0, i1 = np.array(pairs, np.int64).reshape(-1, 2).T
    return i0, i1


def epipolar_distance(F: np.ndarray, xy0: np.ndarray, xy1: np.ndarray) -> np.ndarray:
    """Distance (px) of each xy1 (...,2) to the epipolar line F x0 of its xy0 (...,2) in image 1."""
    h0 = np.concatenate([xy0, np.ones_like(xy0[..., :1])], -1)
    lines = h0 @ F.T  # (...,3): a x + b y + c = 0 in image 1
    num = lines[..., 0] * xy1[..., 0] + lines[..., 1] * xy1[..., 1] + lines[..., 2]
    return np.abs(num) / np.maximum(np.hypot(lines[..., 0], lines[..., 1]), 1e-12)


def project_to_epipolar_lines(F: np.ndarray, xy0: np.ndarray, xy1: np.ndarray) -> np.ndarray:
    """Closest point to each xy1 (...,2) on the epipolar line F x0 of its xy0 (...,2)."""
    h0 = np.concatenate([xy0, np.ones_like(xy0[..., :1])], -1)
    lines = h0 @ F.T
    n2 = np.maximum(lines[..., 0] ** 2 + lines[..., 1] ** 2, 1e-24)
    r = (lines[..., 0] * xy1[..., 0] + lines[..., 1] * xy1[..., 1] + lines[..., 2]) / n2
    return xy1 - r[..., None] * lines[..., :2]


def verify_matches(xy0: np.ndarray, xy1: np.ndarray, F: np.ndarray | None = None, thresh_px: float = 1.5):
    """Keep matches consistent with epipolar geometry, estimating F by MAGSAC when it is not given.

    Returns:
        (F (3,3) or None when it could not be estimated reliably, inlier mask (n,) bool).
    """
    n = len(xy0)
    if F is not None:
        ok = epipolar_distance(F, xy0, xy1) <= thresh_px if n else np.zeros(0, bool)
        return F, ok
    if n < MIN_MATCHES_FOR_F:
        return None, np.ones(n, bool)
    F_est, mask = cv2.findFundamentalMat(xy0, xy1, cv2.USAC_MAGSAC, thresh_px, 0.9999, 10000)
    if F_est is None or F_est.shape != (3, 3) or mask is None or int(mask.sum()) < MIN_MATCHES_FOR_F:
        return None, np.ones(n, bool)
    return F_est, mask.ravel().astype(bool)


def consistent_with_neighbours(xy0: np.ndarray, xy1: np.ndarray, k: int = 8, tol: float = 0.25):
    """(n,) bool: a match's displacement agrees with the median displacement of its k nearest matches.

    The tolerance is relative to the spread of displacements (at least 4 px), so true depth changes
    between neighbours survive while isolated wrong matches along the epipolar line do not.
    """
    n = len(xy0)
    if n <= k:
        return np.ones(n, bool)
    d = xy1 - xy0
    _, idx = cKDTree(xy0).query(xy0, k=k + 1)
    med = np.median(d[idx[:, 1:]], axis=1)
    spread = max(4.0, float(np.percentile(np.linalg.norm(d - np.median(d, 0), axis=1), 90)))
    return np.linalg.norm(d - med, axis=1) <= tol * spread + 2.0


def _linear_on_mesh(points: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """Piecewise-linear interpolation of values (n,C) over the Delaunay mesh of points (n,2).

    Evaluated at every cell centre of an (h,w) grid whose cell (i, j) centre is at (j + 0.5, i + 0.5)
    in the points' units. Returns (h,w,C), or None when the points are degenerate (collinear).
    Triangles are rasterised with OpenCV: scipy's point location is slow on raster-ordered queries
    (seconds for a grid), and this only seeds a flow, so exactness on triangle edges is not needed.
    """
    h, w = shape
    try:
        simplices = Delaunay(points).simplices  # (t,3)
    except QhullError:
        return None
    ids = np.full((h, w), -1, np.int32)
    corners = np.round((points[simplices] - 0.5) * 16).astype(np.int32)  # 4 fractional bits
    for t, tri in enumerate(corners):
        cv2.fillConvexPoly(ids, tri, t, lineType=cv2.LINE_8, shift=4)
    rows, cols = np.nonzero(ids >= 0)
    tri = simplices[ids[rows, cols]]  # (m,3)
    a, b, c = (points[tri[:, k]] for k in range(3))
    q = np.stack([cols + 0.5, rows + 0.5], -1)
    e1, e2, r = b - a, c - a, q - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    det = np.where(np.abs(det) > 1e-12, det, 1e-12)
    u = (r[:, 0] * e2[:, 1] - r[:, 1] * e2[:, 0]) / det
    v = (e1[:, 0] * r[:, 1] - e1[:, 1] * r[:, 0]) / det
    # Rasterised edges may hand a pixel to the neighbouring triangle: clamp rather than extrapolate.
    bary = np.clip(np.stack([1 - u - v, u, v], -1), 0, None)
    bary /= np.maximum(bary.sum(-1, keepdims=True), 1e-12)
    out = np.full((h, w, values.shape[1]), np.nan)
    out[rows, cols] = np.einsum("mk,mkc->mc", bary, values[tri])
    return out


def _border_points(H: int, W: int, n: int = 8) -> np.ndarray:
    """(4n,2) points around the image frame, slightly outside it, so the mesh covers every pixel."""
    t = np.linspace(0, 1, n, endpoint=False)
    x, y = -1 + (W + 2) * t, -1 + (H + 2) * t
    return np.concatenate(
        [
            np.stack([x, np.full(n, -1.0)], 1),
            np.stack([np.full(n, W + 1.0), y], 1),
            np.stack([W + 1.0 - x - 1, np.full(n, H + 1.0)], 1),
            np.stack([np.full(n, -1.0), H + 1.0 - y - 1], 1),
        ]
    )


def interpolate_flow(xy0: np.ndarray, xy1: np.ndarray, shape: tuple[int, int], step: int = 4) -> np.ndarray:
    """Dense (H,W,2) float32 flow of image-0 pixels, linear over the Delaunay mesh of the matches.

    Points around the image frame take the displacement of their nearest match, so the mesh covers
    the whole image. The field is evaluated every `step` pixels and resized: it only seeds a
    coarse-to-fine flow.
    """
    H, W = shape
    if len(xy0) == 0:
        return np.zeros((H, W, 2), np.float32)
    d = xy1 - xy0
    frame = _border_points(H, W)
    points = np.concatenate([xy0, frame])
    values = np.concatenate([d, d[cKDTree(xy0).query(frame, k=1)[1]]])
    h, w = max(1, -(-H // step)), max(1, -(-W // step))
    sx, sy = w / W, h / H  # grid cells per pixel
    field = _linear_on_mesh(points * [sx, sy], values, (h, w))
    if field is None or not np.isfinite(field).all():  # degenerate mesh: nearest match instead
        gx, gy = np.meshgrid((np.arange(w) + 0.5) / sx, (np.arange(h) + 0.5) / sy)
        near = d[cKDTree(xy0).query(np.stack([gx.ravel(), gy.ravel()], -1), k=1)[1]].reshape(h, w, 2)
        field = near if field is None else np.where(np.isfinite(field), field, near)
    coarse = field.astype(np.float32)
    return cv2.resize(coarse, (W, H), interpolation=cv2.INTER_LINEAR)
