"""Sparse features for wide baselines: affine-simulated SIFT (ASIFT), mutual ratio-test matching,
and two-view geometric verification (essential matrix with a known focal, else fundamental).

Pixel convention: keypoints are returned in COLMAP/`Cameras` pixel coordinates, where the centre
of the top-left pixel is (0.5, 0.5) (OpenCV's keypoint coordinates + 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from splat.io.images import to_uint8


@dataclass
class Features:
    """Keypoints (N,2) float64 pixels, descriptors (N,D) float32 unit-norm, colours (N,3) float32 [0,1]."""

    keypoints: np.ndarray
    descriptors: np.ndarray
    colors: np.ndarray
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.keypoints)


@dataclass
class PairMatches:
    """Verified matches between views i and j.

    idx: (M,2) keypoint indices into features[i], features[j]; model: 'E' or 'F';
    R, t: relative pose (x_j = R x_i + t, |t| = 1) when model == 'E', else None;
    num_tentative: matches before verification.
    """

    i: int
    j: int
    idx: np.ndarray
    model: str
    R: np.ndarray | None
    t: np.ndarray | None
    num_tentative: int

    def __len__(self) -> int:
        return len(self.idx)


def to_gray_u8(image: np.ndarray) -> np.ndarray:
    """(H,W,3) float [0,1] or uint8 RGB -> (H,W) uint8 gray."""
    im = to_uint8(image)
    return cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) if im.ndim == 3 else im


def _detector(method: str, nfeatures: int, max_tilt: int, contrast: float):
    if method == "sift":
        return cv2.SIFT_create(nfeatures=nfeatures, contrastThreshold=contrast)
    if method == "asift":
        # fewer tilts than the paper's 5 (3: tilt up to 2^1.5 = 2.8): most wide-baseline matches, 1/3 the cost
        sift = cv2.SIFT_create(nfeatures=nfeatures, contrastThreshold=contrast)
        return cv2.AffineFeature_create(sift, maxTilt=max_tilt)
    raise ValueError(f"unknown feature method {method!r} (use 'asift' or 'sift')")


def detect_features(
    image: np.ndarray,
    method: str = "asift",
    max_keypoints: int = 8000,
    max_tilt: int = 3,
    contrast_threshold: float = 0.04,
) -> Features:
    """Detect keypoints and RootSIFT descriptors, sorted by response, at most `max_keypoints`.

    method: 'asift' (affine-simulated SIFT, tilts up to 2^(max_tilt/2)) or 'sift'.
    contrast_threshold: SIFT's DoG contrast threshold (OpenCV default 0.04; lower finds more
    keypoints on plain, texture-poor surfaces).
    """
    gray = to_gray_u8(image)
    det = _detector(method, 0 if method == "asift" else max_keypoints, max_tilt, contrast_threshold)
    kps, desc = det.detectAndCompute(gray, None)
    H, W = gray.shape
    if desc is None or not kps:
        return Features(np.zeros((0, 2)), np.zeros((0, 128), np.float32), np.zeros((0, 3), np.float32), W, H)
    resp = np.array([k.response for k in kps], np.float32)
    order = np.argsort(-resp, kind="stable")[:max_keypoints]
    xy = np.array([kps[k].pt for k in order], np.float64)
    desc = desc[order].astype(np.float32)
    desc = np.sqrt(desc / np.maximum(desc.sum(1, keepdims=True), 1e-12))  # RootSIFT: unit L2 norm
    return Features(xy + 0.5, desc, sample_colors(image, xy + 0.5), W, H)


def sample_colors(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """(N,3) float32 [0,1] colours of an (H,W,3) or (H,W) image at (N,2) COLMAP pixel positions
    (nearest pixel)."""
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, -1)
    rgb = rgb.astype(np.float32) / (255.0 if rgb.dtype == np.uint8 else 1.0)
    H, W = rgb.shape[:2]
    px = np.clip(np.floor(xy).astype(int), 0, [W - 1, H - 1])
    return rgb[px[:, 1], px[:, 0], :3].astype(np.float32)


def match_descriptors(
    d0: np.ndarray, d1: np.ndarray, ratio: float = 0.85, mutual: bool = True, with_ratio: bool = False
):
    """Nearest-neighbour matches (M,2) that pass Lowe's ratio test (on distances) and a mutual check.

    With `with_ratio`, returns (matches (M,2), ratios (M,)) so callers can tighten the test later.
    """
    if len(d0) < 2 or len(d1) < 2:
        empty = np.zeros((0, 2), np.int64)
        return (empty, np.zeros(0)) if with_ratio else empty
    a, b = torch.from_numpy(d0), torch.from_numpy(d1)
    nn01, sim01, rat = [], [], []
    colmax = torch.full((len(b),), -2.0)
    for s in range(0, len(a), 2048):
        sim = a[s : s + 2048] @ b.T
        top, arg = sim.topk(2, dim=1)
        dist = (2 - 2 * top).clamp_min(0).sqrt()
        nn01.append(arg[:, 0])
        sim01.append(top[:, 0])
        rat.append(dist[:, 0] / dist[:, 1].clamp_min(1e-12))
        colmax = torch.maximum(colmax, sim.amax(0))  # amax: a column argmax is far slower on CPU
    nn01, sim01, rat = torch.cat(nn01), torch.cat(sim01), torch.cat(rat)
    ok = rat < ratio
    if mutual:  # i -> j is mutual when no other row of column j is more similar
        ok &= sim01 >= colmax[nn01]
    i0 = torch.nonzero(ok)[:, 0]
    m = torch.stack([i0, nn01[i0]], 1).numpy().astype(np.int64)
    return (m, rat[i0].numpy()) if with_ratio else m


def _normalized(xy: np.ndarray, K: np.ndarray) -> np.ndarray:
    return (xy - K[:2, 2]) / np.array([K[0, 0], K[1, 1]])


def verify_pair(
    f0: Features,
    f1: Features,
    matches: np.ndarray,
    K0: np.ndarray | None = None,
    K1: np.ndarray | None = None,
    thresh_px: float = 1.5,
    min_inliers: int = 15,
) -> tuple[np.ndarray, str, np.ndarray | None, np.ndarray | None]:
    """Geometric verification. With K0, K1: essential matrix (USAC MAGSAC) + cheirality -> (inlier matches,
    'E', R, t); without: fundamental matrix -> (inlier matches, 'F', None, None). Empty when it fails."""
    empty = (np.zeros((0, 2), np.int64), "none", None, None)
    if len(matches) < min_inliers:
        return empty
    p0, p1 = f0.keypoints[matches[:, 0]], f1.keypoints[matches[:, 1]]
    if K0 is None or K1 is None:
        F, mask = cv2.findFundamentalMat(p0, p1, cv2.USAC_MAGSAC, thresh_px, 0.9999, 10000)
        if F is None or mask is None or int(mask.sum()) < min_inliers:
            return empty
        return matches[mask.ravel() > 0], "F", None, None
    n0, n1 = _normalized(p0, K0), _normalized(p1, K1)
    f_mean = (K0[0, 0] + K1[0, 0]) / 2
    E, mask = cv2.findEssentialMat(n0, n1, np.eye(3), cv2.USAC_MAGSAC, 0.9999, thresh_px / f_mean)
    if E is None or mask is None or E.shape != (3, 3):
        return empty
    mask = mask.ravel() > 0
    _, R, t, pose_mask = cv2.recoverPose(E, n0[mask], n1[mask], np.eye(3))
    keep = np.flatnonzero(mask)[pose_mask.ravel() > 0]
    if len(keep) < min_inliers:
        return empty
    return matches[keep], "E", R, t.ravel() / max(np.linalg.norm(t), 1e-12)


def match_pairs(
    features: list[Features],
    pairs: list[tuple[int, int]],
    K: np.ndarray | None = None,
    ratio: float = 0.85,
    thresh_px: float = 1.5,
    min_inliers: int = 15,
) -> dict[tuple[int, int], PairMatches]:
    """Match and verify every pair; K (V,3,3) or None (fundamental only). Keeps pairs with enough inliers."""
    out = {}
    for i, j in pairs:
        m = match_descriptors(features[i].descriptors, features[j].descriptors, ratio)
        Ki, Kj = (K[i], K[j]) if K is not None else (None, None)
        idx, model, R, t = verify_pair(features[i], features[j], m, Ki, Kj, thresh_px, min_inliers)
        if len(idx) >= min_inliers:
            out[(i, j)] = PairMatches(i, j, idx, model, R, t, len(m))
    return out


def fundamental_from_poses(K0: np.ndarray, K1: np.ndarray, w2c0: np.ndarray, w2c1: np.ndarray) -> np.ndarray:
    """F (3,3) with x1^T F x0 = 0 for pixels of view 0 and view 1 (world-to-camera 4x4 poses)."""
    R = w2c1[:3, :3] @ w2c0[:3, :3].T
    t = w2c1[:3, 3] - R @ w2c0[:3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(K1).T @ tx @ R @ np.linalg.inv(K0)


def match_guided(
    f0: Features, f1: Features, F: np.ndarray, thresh_px: float = 2.0, ratio: float = 0.9
) -> np.ndarray:
    """Epipolar-guided matches (M,2): nearest neighbours among keypoints within `thresh_px` of the
    epipolar line (both directions), with the ratio test and mutual check inside that band.

    Restricting candidates to the band makes repetitive texture (bricks, tiles) matchable.
    """
    if len(f0) < 2 or len(f1) < 2:
        return np.zeros((0, 2), np.int64)
    a, b = torch.from_numpy(f0.descriptors), torch.from_numpy(f1.descriptors)
    x0 = torch.from_numpy(np.c_[f0.keypoints, np.ones(len(f0))]).float()
    x1 = torch.from_numpy(np.c_[f1.keypoints, np.ones(len(f1))]).float()
    Ft = torch.from_numpy(F / np.abs(F).max()).float()
    l1 = x0 @ Ft.T  # epipolar lines in image 1 of the keypoints of image 0, (N0,3)
    l0 = x1 @ Ft  # lines in image 0 of the keypoints of image 1, (N1,3)
    l1 = l1 / l1[:, :2].norm(dim=1, keepdim=True).clamp_min(1e-12)
    l0 = l0 / l0[:, :2].norm(dim=1, keepdim=True).clamp_min(1e-12)
    nn01, sim01, rat, colmax = [], [], [], torch.full((len(b),), -3.0)
    # keypoints are in pixels (~1e2), so float32 line distances are accurate to ~1e-4 px
    for s in range(0, len(a), 2048):
        # both point-to-line distances: keypoint j of image 1 to the line of i, and i to the line of j
        band = ((l1[s : s + 2048] @ x1.T).abs() < thresh_px) & ((x0[s : s + 2048] @ l0.T).abs() < thresh_px)
        sim = torch.where(band, a[s : s + 2048] @ b.T, -3.0)
        top, arg = sim.topk(2, dim=1)
        dist = (2 - 2 * top.clamp(-1, 1)).clamp_min(0).sqrt()
        valid = top[:, 0] > -2
        r = torch.where(top[:, 1] > -2, dist[:, 0] / dist[:, 1].clamp_min(1e-12), 0.0)
        nn01.append(arg[:, 0])
        sim01.append(torch.where(valid, top[:, 0], -3.0))
        rat.append(torch.where(valid, r, 9.0))
        colmax = torch.maximum(colmax, sim.amax(0))
    nn01, sim01, rat = torch.cat(nn01), torch.cat(sim01), torch.cat(rat)
    ok = (rat < ratio) & (sim01 >= colmax[nn01]) & (sim01 > -2)
    i0 = torch.nonzero(ok)[:, 0]
    return torch.stack([i0, nn01[i0]], 1).numpy().astype(np.int64)
