"""DUSt3R-style global alignment of pairwise point maps.

Input: for some image pairs (i, j), 3D points for pixels of view i and of view j, both expressed
in the camera frame of view i and at the pair's own (unknown) scale, with confidences. This is
what a learned two-view model (DUSt3R/MASt3R) outputs densely; today we produce it sparsely by
two-view triangulation of verified matches (`pointmaps_from_matches`).

Unknowns: per-view depth of every referenced pixel (log depth), per-view world-to-camera pose,
one shared focal (principal points at the image centres), and per pair a similarity
(scale s_e, rotation, translation) from the pair frame to the world. Loss (DUSt3R eq. 5):

    sum_e sum_{v in e} sum_p conf_v^e(p) * || X_v(p) - s_e (R_e X_v^e(p) + t_e) ||

where X_v(p) is pixel p of view v back-projected with its depth, the focal and the view's pose.
The first pair's scale is held fixed (gauge). Initialisation: a maximum spanning
tree over pair confidences, chaining pair frames with PnP and depth ratios.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import roma
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from splat.poses.bundle import torch_threads


@dataclass
class PairPointMaps:
    """Point maps of the pair (i, j), both in view i's camera frame, at the pair's own scale.

    idx_i: (N_i,) indices into `pixels[i]` (the pixel set of view i: all pixels for dense maps,
        keypoints for sparse ones); pts_i: (N_i,3); conf_i: (N_i,) > 0. Same for view j.
    w2c_ji: optional (4,4) pose of view j in view i's frame at the pair scale, when the producer
        knows it (two-view triangulation does); otherwise it is found by PnP.
    """

    i: int
    j: int
    idx_i: np.ndarray
    pts_i: np.ndarray
    conf_i: np.ndarray
    idx_j: np.ndarray
    pts_j: np.ndarray
    conf_j: np.ndarray
    w2c_ji: np.ndarray | None = None

    @property
    def weight(self) -> float:
        return float(self.conf_i.sum() + self.conf_j.sum())


@dataclass
class AlignResult:
    w2c: np.ndarray  # (V,4,4)
    focal: float
    depths: list[np.ndarray]  # per view, depth of each pixel in pixels[v] (NaN where unreferenced)
    points: list[np.ndarray]  # per view, world points (P_v,3) of the referenced pixels
    loss_history: list[float]


def pointmaps_from_matches(
    kp_i: np.ndarray,
    kp_j: np.ndarray,
    matches: np.ndarray,
    K_i: np.ndarray,
    K_j: np.ndarray,
    R: np.ndarray,
    t: np.ndarray,
    i: int,
    j: int,
) -> PairPointMaps:
    """Sparse point maps by triangulating matches (M,2) with the relative pose x_j = R x_i + t."""
    P0 = K_i @ np.eye(3, 4)
    P1 = K_j @ np.c_[R, t]
    Xh = cv2.triangulatePoints(P0, P1, kp_i[matches[:, 0]].T, kp_j[matches[:, 1]].T)
    X = (Xh[:3] / Xh[3]).T
    z1 = X @ R[2] + t[2]
    ok = (X[:, 2] > 0) & (z1 > 0) & np.isfinite(X).all(1)
    # confidence: triangulation angle (depth is uncertain when rays are near parallel)
    c0 = -np.zeros(3)
    c1 = -R.T @ t
    r0 = X - c0
    r1 = X - c1
    cosang = (r0 * r1).sum(1) / np.maximum(np.linalg.norm(r0, axis=1) * np.linalg.norm(r1, axis=1), 1e-12)
    conf = np.clip(np.degrees(np.arccos(np.clip(cosang, -1, 1))) / 5.0, 0.05, 1.0)
    X, conf, m = X[ok], conf[ok], matches[ok]
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, t
    return PairPointMaps(i, j, m[:, 0], X, conf, m[:, 1], X.copy(), conf.copy(), w2c)


def _pnp(pts: np.ndarray, uv: np.ndarray, f: float, pp: np.ndarray) -> np.ndarray:
    K = np.array([[f, 0, pp[0]], [0, f, pp[1]], [0, 0, 1.0]])
    ok, rvec, tvec, _ = cv2.solvePnPRansac(pts, uv, K, None, reprojectionError=4.0, iterationsCount=500)
    T = np.eye(4)
    if ok:
        T[:3, :3] = cv2.Rodrigues(rvec)[0]
        T[:3, 3] = tvec.ravel()
    return T


def _pair_pose_j(pm: PairPointMaps, pixels, f, pp) -> np.ndarray:
    if pm.w2c_ji is not None:
        return pm.w2c_ji
    return _pnp(pm.pts_j, pixels[pm.j][pm.idx_j], f, pp[pm.j])


def init_from_tree(pairs: list[PairPointMaps], pixels: list[np.ndarray], focal: float, pp: np.ndarray):
    """Initial world-to-camera poses (V,4,4) and per-view depth references {pixel index: depth},
    chaining the pairs of a maximum spanning tree (root: the view with the most confidence)."""
    V = len(pixels)
    w = np.array([p.weight for p in pairs])
    ij = np.array([(min(p.i, p.j), max(p.i, p.j)) for p in pairs])
    g = coo_matrix((1.0 / (1.0 + w), (ij[:, 0], ij[:, 1])), shape=(V, V))
    tree = minimum_spanning_tree(g).tocoo()
    tree_edges = {(int(a), int(b)) for a, b in zip(tree.row, tree.col)}
    by_edge = {}
    for k, p in enumerate(pairs):
        e = (min(p.i, p.j), max(p.i, p.j))
        if e in tree_edges and (e not in by_edge or p.weight > pairs[by_edge[e]].weight):
            by_edge[e] = k
    root = int(np.argmax(np.bincount(ij.ravel(), weights=np.r_[w, w], minlength=V)))
    order, pred = breadth_first_order(tree + tree.T, root, directed=False)
    c2w = {root: np.eye(4)}
    depth_ref: dict[int, dict[int, float]] = {}
    for v in order[1:]:
        a = int(pred[v])
        k = by_edge[(min(a, v), max(a, v))]
        pm = pairs[k]
        T_j = _pair_pose_j(pm, pixels, focal, pp)  # view j in the pair frame (= view i's camera)
        pose_in_pair = {pm.i: np.eye(4), pm.j: T_j}  # world-to-camera within the pair frame
        # pair frame -> world: through the placed view a, with a depth ratio for the scale
        s = _pair_scale(pm, a, pose_in_pair[a], depth_ref.get(a, {}))
        # pair frame -> world similarity: x_world = c2w_a (s * T_a x_pair) = s Rw x_pair + tw
        Tpa = pose_in_pair[a]
        pw = np.eye(4)
        pw[:3, :3] = c2w[a][:3, :3] @ Tpa[:3, :3]
        pw[:3, 3] = c2w[a][:3, :3] @ (s * Tpa[:3, 3]) + c2w[a][:3, 3]
        Tv = pose_in_pair[v]  # camera v from pair frame; world -> camera v: scale the translation
        c2w_v = np.eye(4)
        c2w_v[:3, :3] = pw[:3, :3] @ Tv[:3, :3].T
        c2w_v[:3, 3] = pw[:3, :3] @ (-Tv[:3, :3].T @ Tv[:3, 3]) * s + pw[:3, 3]
        c2w[int(v)] = c2w_v
        for vv, idx, pts in ((pm.i, pm.idx_i, pm.pts_i), (pm.j, pm.idx_j, pm.pts_j)):
            z = (pts @ pose_in_pair[vv][:3, :3].T + pose_in_pair[vv][:3, 3])[:, 2] * s
            depth_ref.setdefault(vv, {}).update(zip(idx.tolist(), z.tolist()))
    if len(c2w) < V:
        raise ValueError(f"point-map graph does not connect views {sorted(set(range(V)) - set(c2w))}")
    w2c = np.stack([np.linalg.inv(c2w[v]) for v in range(V)])
    return w2c, depth_ref


def _pair_scale(pm: PairPointMaps, a: int, T_a: np.ndarray, ref: dict[int, float]) -> float:
    idx, pts = (pm.idx_i, pm.pts_i) if a == pm.i else (pm.idx_j, pm.pts_j)
    z = (pts @ T_a[:3, :3].T + T_a[:3, 3])[:, 2]
    common = [(r, zz) for k, zz in zip(idx.tolist(), z.tolist()) if (r := ref.get(k)) is not None and zz > 0]
    if not common:
        return 1.0
    return float(np.median([r / zz for r, zz in common]))


def global_align(
    pairs: list[PairPointMaps],
    pixels: list[np.ndarray],
    sizes: list[tuple[int, int]],
    focal: float,
    optimize_focal: bool = True,
    steps: int = 500,
    lr: float = 0.02,
) -> AlignResult:
    """Optimise depths, poses, focal and pair similarities (module docstring). pixels: per view (P_v,2)."""
    V = len(pixels)
    pp = np.array([(w / 2, h / 2) for w, h in sizes], float)
    w2c0, depth_ref = init_from_tree(pairs, pixels, focal, pp)
    dt = torch.float64
    # all views' log depths in one vector (init from the tree, else the view's median depth)
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pixels])])
    d0 = []
    for v in range(V):
        d = np.full(len(pixels[v]), np.nan)
        for k, z in depth_ref.get(v, {}).items():
            d[k] = z
        med = np.nanmedian(d) if np.isfinite(d).any() else 1.0
        d0.append(np.where(np.isfinite(d) & (d > 0), d, med))
    log_d = torch.tensor(np.log(np.concatenate(d0)), dtype=dt, requires_grad=True)
    rot = torch.zeros(V, 3, dtype=dt, requires_grad=True)  # left rotation updates of the init
    trans = torch.tensor(w2c0[:, :3, 3], dtype=dt, requires_grad=True)
    R0 = torch.tensor(w2c0[:, :3, :3], dtype=dt)
    log_f = torch.tensor(np.log(focal), dtype=dt, requires_grad=optimize_focal)
    E = len(pairs)
    pair_rot = torch.zeros(E, 3, dtype=dt)
    pair_t = torch.zeros(E, 3, dtype=dt)
    pair_logs = torch.zeros(E, dtype=dt)
    for k, pm in enumerate(pairs):  # pair -> world from the initial pose of view i and its depths
        c2w_i = np.linalg.inv(w2c0[pm.i])
        pair_rot[k] = roma.rotmat_to_rotvec(torch.tensor(c2w_i[:3, :3], dtype=dt))
        pair_t[k] = torch.tensor(c2w_i[:3, 3], dtype=dt)
        pair_logs[k] = float(np.log(max(_pair_scale(pm, pm.i, np.eye(4), depth_ref.get(pm.i, {})), 1e-9)))
    for t in (pair_rot, pair_t, pair_logs):
        t.requires_grad_(True)
    # one row per (pair, view, pixel): global depth index, view, pair, pair-frame point, confidence
    rows = [
        (offsets[v] + idx, np.full(len(idx), v), np.full(len(idx), k), pts, conf)
        for k, pm in enumerate(pairs)
        for v, idx, pts, conf in (
            (pm.i, pm.idx_i, pm.pts_i, pm.conf_i),
            (pm.j, pm.idx_j, pm.pts_j, pm.conf_j),
        )
    ]
    g_idx, g_view, g_pair = (torch.from_numpy(np.concatenate([r[c] for r in rows])).long() for c in range(3))
    g_pts = torch.from_numpy(np.concatenate([r[3] for r in rows])).to(dt)
    g_conf = torch.from_numpy(np.concatenate([r[4] for r in rows])).to(dt)
    g_conf = g_conf / g_conf.sum()
    all_pix = torch.from_numpy(np.concatenate([pixels[v] - pp[v] for v in range(V)])).to(dt)
    all_view = torch.from_numpy(np.repeat(np.arange(V), np.diff(offsets))).long()
    params = [log_d, rot, trans, pair_rot, pair_t, pair_logs] + ([log_f] if optimize_focal else [])
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    history = []

    def world_points(gidx, view):
        """Back-project pixels (global index) of their views with depth, focal and pose -> (N,3)."""
        z = log_d[gidx].exp()
        xc = torch.cat([all_pix[gidx] / log_f.exp() * z[:, None], z[:, None]], 1)
        Rv = roma.rotvec_to_rotmat(rot) @ R0
        return ((xc - trans[view])[:, None, :] @ Rv[view])[:, 0]  # c2w: R^T (x - t)

    with torch.enable_grad(), torch_threads(1):
        for _ in range(steps):
            opt.zero_grad()
            Rp = roma.rotvec_to_rotmat(pair_rot)
            target = pair_logs.exp()[g_pair, None] * (Rp[g_pair] @ g_pts[..., None])[..., 0] + pair_t[g_pair]
            loss = (g_conf * (world_points(g_idx, g_view) - target).norm(dim=-1)).sum()
            loss.backward()
            pair_logs.grad[0] = 0  # gauge: the first pair keeps its scale
            opt.step()
            sched.step()
            history.append(float(loss.detach()))
    with torch.no_grad():
        w2c = np.tile(np.eye(4), (V, 1, 1))
        w2c[:, :3, :3] = (roma.rotvec_to_rotmat(rot) @ R0).numpy()
        w2c[:, :3, 3] = trans.numpy()
        pts_all = world_points(torch.arange(len(all_pix)), all_view).numpy()
        d_all = log_d.exp().numpy()
        depths = [d_all[offsets[v] : offsets[v + 1]] for v in range(V)]
        points = [pts_all[offsets[v] : offsets[v + 1]] for v in range(V)]
    return AlignResult(w2c, float(log_f.detach().exp()), depths, points, history)
