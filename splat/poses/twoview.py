"""Two-view relative pose hypotheses from tentative matches, for calibrated views.

A pair can be ambiguous: a dominant plane (ground, wall) explains two different motions equally
well, and MAGSAC on the essential matrix may return the wrong one. So each pair yields several
hypotheses: the essential-matrix solution, the physically valid homography decompositions, and
an essential matrix re-estimated away from the first solution's inliers. The view graph decides.

Convention: x_j = R x_i + t for camera-frame points of views i and j; |t| = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Hypothesis:
    """A relative pose (R (3,3), t (3,) unit) and its inliers (bool mask over the tentative matches)."""

    R: np.ndarray
    t: np.ndarray
    inliers: np.ndarray
    source: str

    @property
    def score(self) -> int:
        return int(self.inliers.sum())


def skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])


def normalize_points(xy: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels (N,2) -> normalized camera coordinates (N,2)."""
    return (xy - K[:2, 2]) / np.array([K[0, 0], K[1, 1]])


def sampson_px(E: np.ndarray, n0: np.ndarray, n1: np.ndarray, f: float) -> np.ndarray:
    """Sampson distance (N,) of normalized correspondences to E, in pixels (scaled by focal f)."""
    x0 = np.c_[n0, np.ones(len(n0))]
    x1 = np.c_[n1, np.ones(len(n1))]
    Ex0, Etx1 = x0 @ E.T, x1 @ E
    num = (x1 * Ex0).sum(1) ** 2
    den = Ex0[:, 0] ** 2 + Ex0[:, 1] ** 2 + Etx1[:, 0] ** 2 + Etx1[:, 1] ** 2
    return f * np.sqrt(num / np.maximum(den, 1e-30))


def triangulate_depths(
    R: np.ndarray, t: np.ndarray, n0: np.ndarray, n1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Depths (N,), (N,) of the midpoint triangulation of rays n0 (view i) and n1 (view j)."""
    d0 = np.c_[n0, np.ones(len(n0))] @ R.T  # ray of view i expressed in view j's frame
    d1 = np.c_[n1, np.ones(len(n1))]
    # solve z0 * d0 + t = z1 * d1 in least squares for (z0, z1)
    a, b, c = (d0 * d0).sum(1), (d0 * d1).sum(1), (d1 * d1).sum(1)
    e, g = (d0 * t).sum(1), (d1 * t).sum(1)
    den = a * c - b * b
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    z0 = (b * g - c * e) / den
    z1 = (a * g - b * e) / den
    return z0, z1


def score_pose(R, t, n0, n1, f, thresh_px):
    """Inlier mask: Sampson error below thresh and the point in front of both cameras."""
    err = sampson_px(skew(t) @ R, n0, n1, f)
    z0, z1 = triangulate_depths(R, t, n0, n1)
    return (err < thresh_px) & (z0 > 0) & (z1 > 0)


def refine_translation(R: np.ndarray, n0: np.ndarray, n1: np.ndarray, t0: np.ndarray) -> np.ndarray:
    """Translation direction for a fixed rotation: t is orthogonal to (R x0) x x1 for every inlier."""
    x0 = np.c_[n0, np.ones(len(n0))] @ R.T
    x1 = np.c_[n1, np.ones(len(n1))]
    A = np.cross(x0, x1)
    A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
    t = np.linalg.svd(A, full_matrices=False)[2][-1]
    return t if t @ t0 >= 0 else -t


def pose_hypotheses(
    xy0: np.ndarray,
    xy1: np.ndarray,
    K0: np.ndarray,
    K1: np.ndarray,
    thresh_px: float = 2.0,
    min_inliers: int = 12,
    thorough: bool = True,
    colmap_below: int = 150,
) -> list[Hypothesis]:
    """Relative pose hypotheses for tentative matches xy0, xy1 (N,2 pixels), best score first.

    Sources: OpenCV USAC_ACCURATE essential matrix, with `thorough` also COLMAP's LO-RANSAC
    (slower, better on weak pairs; used when OpenCV's solution has fewer than `colmap_below`
    inliers), a second essential matrix on the first one's outliers, and
    the homography decompositions.
    """
    if len(xy0) < min_inliers:
        return []
    n0, n1 = normalize_points(xy0, K0), normalize_points(xy1, K1)
    f = float(K0[0, 0] + K1[0, 0]) / 2
    raw: list[tuple[np.ndarray, np.ndarray, str]] = []
    raw += _essential_solutions(n0, n1, f, thresh_px, "E")
    if thorough and (not raw or score_pose(*raw[0][:2], n0, n1, f, thresh_px).sum() < colmap_below):
        raw += _colmap_essential(xy0, xy1, K0, K1, thresh_px)
    if raw:  # a second motion among the matches the first one does not explain
        out = ~score_pose(raw[0][0], raw[0][1], n0, n1, f, thresh_px)
        if out.sum() >= min_inliers:
            raw += _essential_solutions(n0[out], n1[out], f, thresh_px, "E2")
    raw += _homography_solutions(xy0, xy1, K0, K1, thresh_px)
    hyps: list[Hypothesis] = []
    for R, t, src in raw:
        t = t / max(np.linalg.norm(t), 1e-12)
        inl = score_pose(R, t, n0, n1, f, thresh_px)
        if inl.sum() >= 8:  # polish t with the rotation fixed (homography t is rough)
            t = refine_translation(R, n0[inl], n1[inl], t)
            inl = score_pose(R, t, n0, n1, f, thresh_px)
        if inl.sum() >= min_inliers and not any(_same(h, R, t) for h in hyps):
            hyps.append(Hypothesis(R, t, inl, src))
    return sorted(hyps, key=lambda h: -h.score)


def _same(h: Hypothesis, R: np.ndarray, t: np.ndarray) -> bool:
    ang = np.degrees(np.arccos(np.clip((np.trace(h.R.T @ R) - 1) / 2, -1, 1)))
    return ang < 1.0 and float(h.t @ t) > np.cos(np.radians(3))


def _essential_solutions(n0, n1, f, thresh_px, tag):
    if len(n0) < 5:
        return []
    E, mask = cv2.findEssentialMat(n0, n1, np.eye(3), cv2.USAC_ACCURATE, 0.9999, thresh_px / f)
    if E is None or mask is None:
        return []
    out = []
    for k in range(E.shape[0] // 3):  # findEssentialMat may stack several solutions
        Ek = E[3 * k : 3 * k + 3]
        R1, R2, t = cv2.decomposeEssentialMat(Ek)
        best = max(
            ((R, s * t.ravel()) for R in (R1, R2) for s in (1, -1)),
            key=lambda p: score_pose(p[0], p[1], n0, n1, f, thresh_px).sum(),
        )
        out.append((best[0], best[1], tag))
    return out


def _colmap_essential(xy0, xy1, K0, K1, thresh_px):
    import pycolmap

    def cam(K):
        return pycolmap.Camera(
            model="PINHOLE",
            width=int(2 * K[0, 2]),
            height=int(2 * K[1, 2]),
            params=[K[0, 0], K[1, 1], K[0, 2], K[1, 2]],
        )

    opts = pycolmap.RANSACOptions()
    opts.max_error = thresh_px
    opts.random_seed = 0
    opts.min_num_trials = 200
    opts.max_num_trials = 3000  # low inlier ratios would otherwise run up to 100k trials
    r = pycolmap.estimate_essential_matrix(xy0, xy1, cam(K0), cam(K1), opts)
    if not r:
        return []
    pose = r["cam2_from_cam1"]
    return [(pose.rotation.matrix(), np.asarray(pose.translation, float), "Ecolmap")]


def _homography_solutions(xy0, xy1, K0, K1, thresh_px):
    if len(xy0) < 8:
        return []
    H, mask = cv2.findHomography(xy0, xy1, cv2.USAC_MAGSAC, 2 * thresh_px)
    if H is None or mask is None or mask.sum() < 8:
        return []
    inl = xy0[mask.ravel() > 0]
    if np.sqrt(max(np.linalg.eigvalsh(np.cov(inl.T))[0], 0.0)) < 0.06 * max(K0[0, 2], K0[1, 2]) * 2:
        return []  # inliers on a thin band (a distant hedge): any smooth map fits, its decomposition is noise
    # H maps pixels of view 0 to view 1; in normalized coordinates Hn = K1^-1 H K0 = R + t n^T / d
    Hn = np.linalg.inv(K1) @ H @ K0
    n_sol, Rs, ts, normals = cv2.decomposeHomographyMat(Hn, np.eye(3))
    out = []
    inl0 = normalize_points(xy0[mask.ravel() > 0], K0)
    for R, t, n in zip(Rs, ts, normals):
        # visible plane: every inlier ray must hit the plane in front of view 0 (n . x > 0)
        if (np.c_[inl0, np.ones(len(inl0))] @ n.ravel() > 0).mean() < 0.9:
            continue
        out.append((R, t.ravel(), "H"))
    return out
