"""Feature tracks: connected components of pairwise keypoint matches, and their triangulation.

A track is a set of (view, keypoint) observations linked by matches. Tracks that hold two
different keypoints of the same view are inconsistent and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


@dataclass
class Tracks:
    """Observations of T tracks: track id (M,), view (M,), keypoint index (M,), pixel (M,2)."""

    track: np.ndarray
    view: np.ndarray
    kp: np.ndarray
    uv: np.ndarray
    num_tracks: int
    distinct: np.ndarray | None = None  # (M,) bool: the track has no look-alike (see mark_distinct)

    def lengths(self) -> np.ndarray:
        return np.bincount(self.track, minlength=self.num_tracks)

    def subset(self, keep: np.ndarray) -> Tracks:
        """The observations where keep (M,) bool is set (track ids unchanged)."""
        d = None if self.distinct is None else self.distinct[keep]
        return Tracks(self.track[keep], self.view[keep], self.kp[keep], self.uv[keep], self.num_tracks, d)


def mark_distinct(
    tracks: Tracks, keypoints: list[np.ndarray], descriptors: list[np.ndarray], ratio: float, radius_px: float
) -> Tracks:
    """Flag the tracks whose keypoints have no look-alike in their own image.

    On repeated texture (bricks, tiles, a fence) a keypoint's descriptor has near-twins a period away in
    the same image, and so does its match in the other image: a match may join the wrong copy, and wrong
    matches that all slip by one period agree with each other and with a wrong pose. A track is distinct
    when no observation's nearest other descriptor in its image (beyond radius_px, which excludes the same
    corner detected twice) lies within 1/ratio of the closest descriptor distance between the track's own
    observations: the ratio test, asked of the image itself. keypoints/descriptors: per view (N_v,2),
    (N_v,D). Returns the tracks with `distinct` set."""
    import cv2

    twin = np.full(len(tracks.view), np.inf)  # nearest look-alike's descriptor distance, per observation
    for v in np.unique(tracks.view):
        rows = np.flatnonzero(tracks.view == v)
        d = np.ascontiguousarray(descriptors[v], np.float32)
        knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d[tracks.kp[rows]], d, k=min(8, len(d)))
        for row, kp, found in zip(rows, tracks.kp[rows], knn):
            for m in found:
                far = np.hypot(*(keypoints[v][m.trainIdx] - keypoints[v][kp])) > radius_px
                if m.trainIdx != kp and far:
                    twin[row] = m.distance
                    break
    match = np.full(tracks.num_tracks, np.inf)  # closest descriptor distance between a track's views
    order = np.argsort(tracks.track, kind="stable")
    t, v, kp = tracks.track[order], tracks.view[order], tracks.kp[order]
    same = np.flatnonzero(t[1:] == t[:-1])  # consecutive observations of one track
    if len(same):
        dist = np.array(
            [np.linalg.norm(descriptors[v[a]][kp[a]] - descriptors[v[a + 1]][kp[a + 1]]) for a in same]
        )
        np.minimum.at(match, t[same], dist)
    look_alike = np.zeros(tracks.num_tracks, bool)
    np.logical_or.at(look_alike, tracks.track, ratio * twin < match[tracks.track])
    return replace(tracks, distinct=~look_alike[tracks.track])


def build_tracks(keypoints: list[np.ndarray], matches: dict[tuple[int, int], np.ndarray]) -> Tracks:
    """keypoints: per view (N_v,2) pixels; matches: (i,j) -> (M,2) keypoint indices. Returns Tracks."""
    offsets = np.concatenate([[0], np.cumsum([len(k) for k in keypoints])])
    rows, cols = [], []
    for (i, j), m in matches.items():
        rows.append(offsets[i] + m[:, 0])
        cols.append(offsets[j] + m[:, 1])
    n = int(offsets[-1])
    if not rows or n == 0:
        e = np.zeros(0, np.int64)
        return Tracks(e, e, e, np.zeros((0, 2)), 0)
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    used = np.unique(np.concatenate([r, c]))
    view = np.searchsorted(offsets, used, side="right") - 1
    lab = label[used]
    # drop tracks that see one view twice
    key = lab.astype(np.int64) * len(keypoints) + view
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    bad_labels = np.unique(lab[first[counts > 1]])
    ok = ~np.isin(lab, bad_labels)
    used, view, lab = used[ok], view[ok], lab[ok]
    uniq, track = np.unique(lab, return_inverse=True)
    kp = used - offsets[view]
    uv = np.concatenate([keypoints[v][k][None] for v, k in zip(view, kp)]) if len(kp) else np.zeros((0, 2))
    order = np.argsort(track, kind="stable")
    return Tracks(track[order], view[order], kp[order], uv[order], len(uniq))


def triangulate_tracks(
    tracks: Tracks,
    K: np.ndarray,
    w2c: np.ndarray,
    registered: np.ndarray,
    track_ids: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Linear (DLT) triangulation of tracks from their observations in registered views.

    Each observation gives two rows (x P3 - P1, y P3 - P2) in normalized camera coordinates, scaled
    to unit norm; the rows of a track are summed into a 4x4 normal matrix whose smallest
    eigenvector is the point (one batched eigh, cheaper than an SVD per track over all views).

    Args: K (V,3,3), w2c (V,4,4), registered (V,) bool, track_ids: tracks to triangulate (all by default).
    Returns: X (T,3) (NaN where fewer than 2 registered observations), count of registered observations (T,).
    """
    T = tracks.num_tracks
    sel = registered[tracks.view]
    if track_ids is not None:
        want = np.zeros(T, bool)
        want[track_ids] = True
        sel &= want[tracks.track]
    count = np.bincount(tracks.track[sel], minlength=T)
    X = np.full((T, 3), np.nan)
    obs = sel & (count[tracks.track] >= 2)
    if not obs.any():
        return X, count
    v, tid = tracks.view[obs], tracks.track[obs]
    P = w2c[:, :3, :]  # (V,3,4) in normalized coordinates
    uv = tracks.uv[obs]
    xn = (uv - K[v, :2, 2]) / np.stack([K[v, 0, 0], K[v, 1, 1]], 1)
    Pv = P[v]
    rows = np.stack([xn[:, 0:1] * Pv[:, 2] - Pv[:, 0], xn[:, 1:2] * Pv[:, 2] - Pv[:, 1]], 1)  # (M,2,4)
    rows /= np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12)
    outer = np.einsum("mri,mrj->mij", rows, rows)
    flat = outer.reshape(-1, 16)
    A = np.stack([np.bincount(tid, flat[:, k], minlength=T) for k in range(16)], 1).reshape(T, 4, 4)
    tri = np.flatnonzero(count >= 2)
    _, vecs = np.linalg.eigh(A[tri])
    Xh = vecs[:, :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        X[tri] = Xh[:, :3] / Xh[:, 3:]
    X[~np.isfinite(X).all(1)] = np.nan
    return X, count


def reprojection(K: np.ndarray, w2c: np.ndarray, X: np.ndarray, view: np.ndarray, uv: np.ndarray):
    """Pixel errors (M,) and depths (M,) of points X (M,3) seen in views (M,) at pixels uv (M,2)."""
    Xc = np.einsum("mij,mj->mi", w2c[view, :3, :3], X) + w2c[view, :3, 3]
    z = Xc[:, 2]
    proj = np.einsum("mij,mj->mi", K[view], Xc)
    with np.errstate(divide="ignore", invalid="ignore"):
        px = proj[:, :2] / proj[:, 2:]
    err = np.linalg.norm(px - uv, axis=1)
    return np.where(np.isfinite(err), err, np.inf), z
