"""Epipolar rectification of a general image pair, and a semi-global stereo seed on the rectified pair.

Given a fundamental matrix, two homographies (Hartley's uncalibrated method) map both images so
that epipolar lines become the same image rows. Matching then is a 1-D search, which semi-global
block matching (SGBM) does robustly even where patches differ in shape.
All homographies here act on pixel-centre coordinates (pixel (i, j) centre = (j + 0.5, i + 0.5)).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

MIN_MATCHES = 8


@dataclass
class Rectification:
    """H0, H1 (3,3) map image-0/1 pixel-centre coordinates to the shared rectified canvas (W,H)."""

    H0: np.ndarray
    H1: np.ndarray
    size: tuple[int, int]


def apply_homography(H: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Apply homography H to points (...,2); returns (...,2) (inf where they map to infinity)."""
    h = np.concatenate([xy, np.ones_like(xy[..., :1])], -1) @ H.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return h[..., :2] / h[..., 2:]


def _local_scales(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """(n,) sqrt |det J| of homography H at points (n,2): how much it magnifies area there."""
    eps = 0.5
    c, dx, dy = (
        apply_homography(H, pts),
        apply_homography(H, pts + [eps, 0]),
        apply_homography(H, pts + [0, eps]),
    )
    J = np.stack([(dx - c) / eps, (dy - c) / eps], -1)
    return np.sqrt(np.abs(np.linalg.det(J)))


def _corners(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return np.array([[0, 0], [w, 0], [w, h], [0, h], [w / 2, h / 2]], np.float64)


def _epipole_in_view(F: np.ndarray, shape: tuple[int, int], margin: float = 0.25) -> bool:
    """True when image 0's epipole (F e = 0) lies within the image grown by `margin` of its size."""
    e = np.linalg.svd(F)[2][-1]
    if abs(e[2]) < 1e-12:
        return False
    x, y = e[:2] / e[2]
    h, w = shape
    return -margin * w <= x <= (1 + margin) * w and -margin * h <= y <= (1 + margin) * h


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


def _hartley_homographies(F: np.ndarray, xy0: np.ndarray, xy1: np.ndarray, shape1: tuple[int, int]):
    """Rectifying homographies (A0, A1) by Hartley's method (Hartley & Zisserman, sec. 11.12).

    A1 sends image 1's epipole to infinity along x, with little distortion near the image centre;
    A0 = H_A A1 M, where F ~ [e1]_x M, is the compatible homography whose affine part H_A
    minimises the x-disparities of the matches. Returns (None, None) when degenerate.
    """
    F = F / np.linalg.norm(F)
    e1 = np.linalg.svd(F.T)[2][-1]  # e1^T F = 0: image 1's epipole
    h, w = shape1
    T = np.array([[1.0, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
    e = T @ e1
    finite = abs(e[2]) > 1e-9 * np.linalg.norm(e[:2])
    d = e[:2] / e[2] if finite else e[:2]  # epipole (finite) or its direction (at infinity)
    ang = np.arctan2(d[1], d[0])
    c, s = np.cos(ang), np.sin(ang)
    R = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]])  # brings the epipole onto the +x axis
    G = np.eye(3)
    if finite:
        G[2, 0] = -1.0 / np.hypot(*d)
    A1 = G @ R @ T
    M = _skew(e1) @ F + np.outer(e1, [1.0, 1.0, 1.0])
    if abs(np.linalg.det(M)) < 1e-12:
        return None, None
    A0 = A1 @ M
    p0, p1 = apply_homography(A0, xy0), apply_homography(A1, xy1)
    design = np.concatenate([p0, np.ones_like(p0[:, :1])], 1)
    abc, *_ = np.linalg.lstsq(design, p1[:, 0], rcond=None)
    HA = np.array([abc, [0, 1, 0], [0, 0, 1]])
    return HA @ A0, A1


def rectify_pair(
    F: np.ndarray,
    xy0: np.ndarray,
    xy1: np.ndarray,
    shape0: tuple[int, int],
    shape1: tuple[int, int],
    max_area_ratio: float = 4.0,
    max_scale_ratio: float = 3.0,
    max_row_error: float = 1.0,
) -> Rectification | None:
    """Rectifying homographies for a pair, or None when rectification would distort too much.

    Args:
        F: (3,3) with x1^T F x0 = 0; xy0, xy1 (n,2) matches consistent with it (pixel centres).
        shape0, shape1: (H,W) of the two images.
    Returns None when there are too few matches, an epipole lies in or near its image (forward
    motion), a corner maps to infinity, the local magnification over either image varies by more
    than `max_scale_ratio`, the canvas would exceed `max_area_ratio` times image 0's area, or the
    matches end up more than `max_row_error` px (median) off a common row.
    """
    if len(xy0) < MIN_MATCHES or _epipole_in_view(F, shape0) or _epipole_in_view(F.T, shape1):
        return None
    A0, A1 = _hartley_homographies(F, xy0, xy1, shape1)
    if A0 is None or not np.isfinite(A0).all() or not np.isfinite(A1).all():
        return None
    c0, c1 = _corners(shape0), _corners(shape1)
    for A, c in ((A0, c0), (A1, c1)):
        if np.any((np.concatenate([c, np.ones((5, 1))], 1) @ A.T)[:, 2] * (A[2] @ [*c[4], 1]) <= 0):
            return None  # part of the image crosses the line at infinity
    s0, s1 = _local_scales(A0, c0), _local_scales(A1, c1)
    if max(s0.max() / s0.min(), s1.max() / s1.min()) > max_scale_ratio:
        return None
    s = 1.0 / s0[4]  # keep image 0's centre at its working resolution
    p0, p1 = apply_homography(A0, c0[:4]) * s, apply_homography(A1, c1[:4]) * s
    y_lo, y_hi = min(p0[:, 1].min(), p1[:, 1].min()), max(p0[:, 1].max(), p1[:, 1].max())
    W = int(np.ceil(max(np.ptp(p0[:, 0]), np.ptp(p1[:, 0]))))
    H = int(np.ceil(y_hi - y_lo))
    if W * H > max_area_ratio * shape0[0] * shape0[1] or min(W, H) < 16:
        return None
    dy = apply_homography(A0, xy0)[:, 1] - apply_homography(A1, xy1)[:, 1]
    if np.median(np.abs(dy)) * s > max_row_error:
        return None  # the homographies do not bring matches onto common rows
    # Shared y offset keeps rows aligned; each image gets its own x offset (a constant disparity).
    T0 = np.array([[s, 0, -p0[:, 0].min()], [0, s, -y_lo], [0, 0, 1]])
    T1 = np.array([[s, 0, -p1[:, 0].min()], [0, s, -y_lo], [0, 0, 1]])
    return Rectification(T0 @ A0, T1 @ A1, (W, H))


def warp_image(gray: np.ndarray, H: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Warp a uint8 image (h,w) onto the canvas; returns (canvas (H,W) uint8, inside mask (H,W) bool).

    Outside the image the canvas holds the image's median grey, which has no texture to match.
    """
    shift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    M = shift @ H @ np.linalg.inv(shift)  # pixel-centre homography in OpenCV's index coordinates
    fill = int(np.median(gray))
    out = cv2.warpPerspective(
        gray, M, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill
    )
    mask = cv2.warpPerspective(np.ones_like(gray), M, size, flags=cv2.INTER_NEAREST, borderValue=0)
    return out, mask > 0


def _disparity_range(d: np.ndarray, cap: int = 512) -> tuple[int, int]:
    """(minDisparity, numDisparities) for SGBM covering the sparse disparities d (n,) with a margin."""
    lo, hi = np.percentile(d, [1, 99])
    margin = 8 + 0.15 * (hi - lo)
    lo, hi = int(np.floor(lo - margin)), int(np.ceil(hi + margin))
    num = min(cap, ((hi - lo) + 15) // 16 * 16)
    return lo, max(16, num)


def _sgbm(left: np.ndarray, right: np.ndarray, lo: int, num: int, block: int = 5) -> np.ndarray:
    """Left-image disparity (H,W) float32 with a left-right check; NaN where invalid."""
    sgbm = cv2.StereoSGBM_create(
        minDisparity=lo,
        numDisparities=num,
        blockSize=block,
        P1=8 * block**2,
        P2=32 * block**2,
        disp12MaxDiff=1,
        uniquenessRatio=10,
        speckleWindowSize=100,
        speckleRange=2,
        mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY,
    )
    d = sgbm.compute(left, right).astype(np.float32) / 16.0
    return np.where(d >= lo, d, np.nan)


def _fill(seed: np.ndarray, valid: np.ndarray, fallback: np.ndarray | None) -> np.ndarray:
    """Flow (H,W,2): seed where valid, elsewhere the fallback flow or the nearest valid seed."""
    if fallback is not None:
        return np.where(valid[..., None], seed, fallback).astype(np.float32)
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return seed[idx[0], idx[1]].astype(np.float32)


def sgbm_seeds(
    r0: np.ndarray,
    r1: np.ndarray,
    d_sparse: np.ndarray,
    fallback01=None,
    fallback10=None,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Seed flows r0 -> r1 and r1 -> r0 (H,W,2) on a rectified pair from SGBM in both directions.

    Args:
        r0, r1: rectified uint8 images (H,W).
        d_sparse: (n,) disparities x0 - x1 of verified sparse matches, to bound the search.
        fallback01, fallback10: flows used where SGBM finds nothing (else the nearest valid value).
    Returns (None, None) when SGBM finds almost nothing.
    """
    lo, num = _disparity_range(d_sparse)
    d01 = _sgbm(r0, r1, lo, num)  # r0 pixel x matches r1 at x - d
    d10 = _sgbm(np.ascontiguousarray(r1[:, ::-1]), np.ascontiguousarray(r0[:, ::-1]), lo, num)[:, ::-1]
    v01, v10 = np.isfinite(d01), np.isfinite(d10)  # r1 pixel x matches r0 at x + d
    if v01.mean() < 0.01 or v10.mean() < 0.01:
        return None, None
    zeros = np.zeros_like(d01)
    f01 = np.stack([-np.nan_to_num(d01), zeros], -1)
    f10 = np.stack([np.nan_to_num(d10), zeros], -1)
    return _fill(f01, v01, fallback01), _fill(f10, v10, fallback10)
