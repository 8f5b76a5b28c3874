"""Camera centres once rotations are known: incremental registration over the view graph.

Start from the strongest pair, triangulate its tracks, then add views one at a time by
known-rotation PnP (the translation is linear in the observations, 2 points suffice), falling
back to the intersection of pairwise baseline directions when a view sees too few 3D points.
"""

from __future__ import annotations

import numpy as np

from splat.poses.tracks import Tracks, reprojection, triangulate_tracks
from splat.poses.twoview import normalize_points


def pnp_translation(
    R: np.ndarray, X: np.ndarray, xn: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Least-squares t with x ~ R X + t for points X (N,3) and normalized observations xn (N,2)."""
    y = X @ R.T
    u, v = xn[:, 0], xn[:, 1]
    z = np.zeros_like(u)
    A = np.concatenate([np.stack([z, -np.ones_like(u), v], 1), np.stack([np.ones_like(u), z, -u], 1)])
    b = np.concatenate([y[:, 1] - v * y[:, 2], u * y[:, 2] - y[:, 0]])
    if weights is not None:
        w = np.concatenate([weights, weights])
        A, b = A * w[:, None], b * w
    return np.linalg.lstsq(A, b, rcond=None)[0]


def ransac_pnp_translation(
    R: np.ndarray,
    K: np.ndarray,
    X: np.ndarray,
    uv: np.ndarray,
    thresh_px: float = 4.0,
    iters: int = 300,
    seed: int = 0,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Robust known-rotation PnP: (t (3,) or None, inlier mask (N,))."""
    N = len(X)
    if N < 3:
        return None, np.zeros(N, bool)
    xn = normalize_points(uv, K)
    rng = np.random.default_rng(seed)
    w2c = np.eye(4)[None].repeat(1, 0)
    best_t, best_inl = None, np.zeros(N, bool)

    def inliers(t):
        w2c[0, :3, :3], w2c[0, :3, 3] = R, t
        err, z = reprojection(K[None], w2c, X, np.zeros(N, int), uv)
        return (err < thresh_px) & (z > 0), z

    # all minimal samples at once: 2 points give 4 linear equations in t (see pnp_translation)
    s = np.stack([rng.choice(N, 2, replace=False) for _ in range(iters)])  # (iters, 2)
    y = X @ R.T
    u, v = xn[:, 0], xn[:, 1]
    z0, one = np.zeros(N), np.ones(N)
    rows = np.stack([np.stack([z0, -one, v], 1), np.stack([one, z0, -u], 1)], 1)  # (N,2,3)
    rhs = np.stack([y[:, 1] - v * y[:, 2], u * y[:, 2] - y[:, 0]], 1)  # (N,2)
    A = rows[s].reshape(iters, 4, 3)
    b = rhs[s].reshape(iters, 4)
    AtA = A.transpose(0, 2, 1) @ A + 1e-12 * np.eye(3)
    ts = np.linalg.solve(AtA, (A.transpose(0, 2, 1) @ b[..., None]))[..., 0]  # (iters,3)
    Xc = y[None] + ts[:, None, :]  # (iters,N,3)
    with np.errstate(divide="ignore", invalid="ignore"):
        px = Xc[..., :2] / Xc[..., 2:] * np.array([K[0, 0], K[1, 1]]) + K[:2, 2]
    err = np.linalg.norm(px - uv[None], axis=-1)
    ok = (err < thresh_px) & (Xc[..., 2] > 0)
    k = int(np.argmax(ok.sum(1)))
    best_t, best_inl = ts[k], ok[k]
    if best_t is None or best_inl.sum() < 3:
        return None, best_inl
    for _ in range(3):  # reweight rows by 1/depth so the algebraic error approximates the image error
        _, z = inliers(best_t)
        best_t = pnp_translation(R, X[best_inl], xn[best_inl], 1 / np.maximum(z[best_inl], 1e-6))
        best_inl, _ = inliers(best_t)
        if best_inl.sum() < 3:
            return None, best_inl
    return best_t, best_inl


def centre_from_directions(centres: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Least-squares point closest to the lines c_k + s d_k (K,3), (K,3) unit directions."""
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for c, d in zip(centres, dirs):
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ c
    return np.linalg.lstsq(A, b, rcond=None)[0]


def register_views(
    R: np.ndarray,
    K: np.ndarray,
    tracks: Tracks,
    pair_t: dict[tuple[int, int], np.ndarray],
    pair_count: dict[tuple[int, int], int],
    min_points: int = 8,
    thresh_px: float = 4.0,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Place camera centres given rotations R (V,3,3) and intrinsics K (V,3,3).

    Args:
        tracks: feature tracks over the verified matches.
        pair_t: (i, j) -> unit t_ij with x_j = R_ij x_i + t_ij (R_ij = R_j R_i^T), for consistent edges.
        pair_count: (i, j) -> number of verified matches (edge strength).
    Returns: w2c (V,4,4), registered (V,) bool, info (how each view was placed).
    """
    V = len(R)
    w2c = np.tile(np.eye(4), (V, 1, 1))
    w2c[:, :3, :3] = R
    reg = np.zeros(V, bool)
    if not pair_t:
        return w2c, reg, {"order": []}
    a, b = max(pair_t, key=lambda e: pair_count[e])
    # t_ab = R_b (c_a - c_b): with c_a = 0 the second centre is c_b = -R_b^T t_ab (unit baseline)
    centres = np.zeros((V, 3))
    centres[b] = -R[b].T @ pair_t[(a, b)]
    reg[[a, b]] = True
    info = {"order": [(a, "origin"), (b, f"pair {a}-{b} direction")]}
    _set_translations(w2c, centres, reg)
    X = np.full((tracks.num_tracks, 3), np.nan)
    new_views = [a, b]
    while not reg.all():
        # only tracks seen by the newly placed view change their triangulation
        touched = np.unique(tracks.track[np.isin(tracks.view, new_views)])
        X[touched] = triangulate_tracks(tracks, K, w2c, reg, touched)[0][touched]
        good = _good_points(tracks, K, w2c, X, reg, thresh_px)
        obs_ok = ~reg[tracks.view] & good[tracks.track]
        n_obs = np.bincount(tracks.view[obs_ok], minlength=V)
        n_obs[reg] = -1
        v = int(np.argmax(n_obs))
        placed = None
        if n_obs[v] >= min_points:
            m = obs_ok & (tracks.view == v)
            t, inl = ransac_pnp_translation(R[v], K[v], X[tracks.track[m]], tracks.uv[m], thresh_px)
            if t is not None and inl.sum() >= min_points:
                centres[v] = -R[v].T @ t
                placed = f"pnp ({int(inl.sum())} of {int(m.sum())} points)"
        if placed is None:
            v, placed = _place_by_directions(R, centres, reg, pair_t, pair_count)
            if v is None:
                break
        reg[v] = True
        new_views = [v]
        info["order"].append((v, placed))
        _set_translations(w2c, centres, reg)
    return w2c, reg, info


def _set_translations(w2c, centres, reg):
    for v in np.flatnonzero(reg):
        w2c[v, :3, 3] = -w2c[v, :3, :3] @ centres[v]


def _good_points(tracks, K, w2c, X, reg, thresh_px):
    """Tracks whose triangulation reprojects within thresh in every registered view, in front."""
    T = tracks.num_tracks
    ok = np.isfinite(X).all(1)
    m = reg[tracks.view] & ok[tracks.track]
    err, z = reprojection(K, w2c, X[tracks.track[m]], tracks.view[m], tracks.uv[m])
    bad = np.zeros(T, bool)
    np.logical_or.at(bad, tracks.track[m], (err > thresh_px) | (z <= 0))
    return ok & ~bad


def _place_by_directions(R, centres, reg, pair_t, pair_count):
    """Place the unregistered view with the most baseline directions to registered views."""
    cands: dict[int, list[tuple[np.ndarray, np.ndarray, int]]] = {}
    for (i, j), t in pair_t.items():
        if reg[i] and not reg[j]:
            # t_ij = R_j (c_i - c_j): direction from c_i to c_j is -R_j^T t_ij
            cands.setdefault(j, []).append((centres[i], -R[j].T @ t, pair_count[(i, j)]))
        elif reg[j] and not reg[i]:
            # c_i - c_j = R_j^T t_ij: direction from c_j to c_i
            cands.setdefault(i, []).append((centres[j], R[j].T @ t, pair_count[(i, j)]))
    if not cands:
        return None, None
    v = max(cands, key=lambda k: (len(cands[k]), sum(c[2] for c in cands[k])))
    lines = cands[v]
    if len(lines) >= 2:
        c = centre_from_directions(np.array([l[0] for l in lines]), np.array([l[1] for l in lines]))
        centres[v] = c
        return v, f"intersection of {len(lines)} baseline directions"
    # one direction only: the distance is unknown; use the mean baseline of the registered views
    base = np.linalg.norm(centres[reg] - centres[reg].mean(0), axis=1).mean() * 2 or 1.0
    centres[v] = lines[0][0] + base * lines[0][1]
    return v, "single baseline direction (scale guessed)"
