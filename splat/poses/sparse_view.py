"""Sparse-view pose solver: the whole view set at once, for 2 to a few dozen photos.

Flow: ASIFT features -> tentative matches on the pairs of the view graph -> shared focal (EXIF or
search) -> several relative-pose hypotheses per pair -> hypothesis selection + robust rotation
averaging -> camera centres by known-rotation PnP over feature tracks -> bundle adjustment
(poses, points, shared focal; Huber) -> guided re-verification of all matches -> final BA.

Gauge of the result: view 0 at the origin with identity rotation (if it is registered, else the
first registered view), and the mean distance of the camera centres from their centroid is 1.
Principal points are the image centres.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from splat.match.features import (
    Features,
    detect_features,
    fundamental_from_poses,
    match_descriptors,
    match_guided,
)
from splat.match.graph import select_pairs
from splat.poses.bundle import Observations, bundle_adjust, normalize_scale
from splat.poses.register import register_views
from splat.poses.rotations import select_hypotheses
from splat.poses.tracks import Tracks, build_tracks, reprojection, triangulate_tracks
from splat.poses.twoview import Hypothesis, normalize_points, pose_hypotheses, refine_translation, score_pose


@dataclass
class SparseViewConfig:
    feature: str = "asift"
    max_keypoints: int = 8000
    ratio: float = 0.85  # Lowe ratio for the tentative matches used to find poses
    guided_ratio: float = 0.95  # looser ratio for matches re-verified against the solved poses
    thresh_px: float = 2.0  # two-view inlier threshold
    reproj_px: float = 3.0  # tracks with a larger reprojection error after BA are dropped
    min_view_points: int = 12  # a view needs this many inlier observations to count as registered
    focal_range: tuple[float, float] = (0.5, 2.0)  # focal search range, times the image diagonal
    focal_steps: int = 9
    huber_px: float = 1.5


@dataclass
class SparseViewResult:
    K: np.ndarray  # (V,3,3)
    w2c: np.ndarray  # (V,4,4)
    registered: np.ndarray  # (V,) bool
    points: np.ndarray  # (P,3)
    colors: np.ndarray  # (P,3) float32 in [0,1]
    focal: float
    diagnostics: dict = field(default_factory=dict)


def intrinsics(focal: float, sizes: list[tuple[int, int]]) -> np.ndarray:
    """(V,3,3) pinhole matrices with a shared focal and principal points at the image centres."""
    K = np.tile(np.eye(3), (len(sizes), 1, 1))
    K[:, 0, 0] = K[:, 1, 1] = focal
    K[:, 0, 2] = [w / 2 for w, _ in sizes]
    K[:, 1, 2] = [h / 2 for _, h in sizes]
    return K


@dataclass
class _Problem:
    """What stays fixed while the focal and the poses are searched."""

    features: list[Features]
    tentative: dict[tuple[int, int], np.ndarray]  # (i,j) -> (M,2) keypoint indices
    loose: dict[tuple[int, int], np.ndarray]  # looser ratio-test matches for guided re-verification
    sizes: list[tuple[int, int]]


def prepare(images: list[np.ndarray], cfg: SparseViewConfig, log=print) -> tuple[_Problem, dict]:
    """Detect features and match the view-graph pairs. Returns the problem and stage timings."""
    times = {}
    t0 = time.perf_counter()
    feats = [detect_features(im, cfg.feature, cfg.max_keypoints) for im in images]
    times["features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairs = select_pairs(images)
    tentative, loose = {}, {}
    for i, j in pairs:
        m = match_descriptors(feats[i].descriptors, feats[j].descriptors, cfg.guided_ratio, with_ratio=True)
        idx, ratio = m
        loose[(i, j)] = idx
        tentative[(i, j)] = idx[ratio < cfg.ratio]
    times["matching"] = time.perf_counter() - t0
    log(f"features: {[len(f) for f in feats]} keypoints; {len(pairs)} pairs matched")
    sizes = [(im.shape[1], im.shape[0]) for im in images]
    return _Problem(feats, tentative, loose, sizes), times


def pair_hypotheses(prob: _Problem, K: np.ndarray, cfg: SparseViewConfig, pairs=None, thorough: bool = True):
    """(i,j) -> list of Hypothesis for every matched pair (or the given subset)."""
    out = {}
    for (i, j), m in prob.tentative.items():
        if pairs is not None and (i, j) not in pairs:
            continue
        xy0, xy1 = prob.features[i].keypoints[m[:, 0]], prob.features[j].keypoints[m[:, 1]]
        out[(i, j)] = pose_hypotheses(xy0, xy1, K[i], K[j], cfg.thresh_px, thorough=thorough)
    return out


def solve_poses(prob: _Problem, K: np.ndarray, hyps: dict, cfg: SparseViewConfig, views=None, log=print):
    """Rotations, centres, tracks and a first BA for a fixed initial K. Returns a dict (see _finish)."""
    V = len(prob.features)
    views = np.arange(V) if views is None else np.asarray(views)
    sub = {e: h for e, h in hyps.items() if e[0] in views and e[1] in views}
    remap = {int(v): k for k, v in enumerate(views)}
    Vs = len(views)
    rel = {
        (remap[i], remap[j]): [(torch.from_numpy(h.R), float(h.score)) for h in hs]
        for (i, j), hs in sub.items()
    }
    rel = {e: r for e, r in rel.items() if r}
    if not _connected(Vs, list(rel)):
        return None
    R_sub, picked = select_hypotheses(Vs, rel)
    R = np.tile(np.eye(3), (V, 1, 1))
    R[views] = R_sub.numpy()
    # verified matches: inliers of each agreeing hypothesis, re-scored with the global rotation
    matches, pair_t, count = {}, {}, {}
    for (a, b), k in picked.items():
        i, j = int(views[a]), int(views[b])
        h: Hypothesis = sub[(i, j)][k]
        m = prob.tentative[(i, j)]
        n0 = normalize_points(prob.features[i].keypoints[m[:, 0]], K[i])
        n1 = normalize_points(prob.features[j].keypoints[m[:, 1]], K[j])
        Rij = R[j] @ R[i].T
        t = refine_translation(Rij, n0[h.inliers], n1[h.inliers], h.t)
        inl = score_pose(Rij, t, n0, n1, K[i, 0, 0], cfg.thresh_px * 1.5)
        if inl.sum() < 8:
            continue
        matches[(i, j)], pair_t[(i, j)], count[(i, j)] = m[inl], t, int(inl.sum())
    kps = [f.keypoints for f in prob.features]
    tracks = build_tracks(kps, matches)
    w2c, reg, info = register_views(R, K, tracks, pair_t, count)
    reg &= np.isin(np.arange(V), views)
    return {"w2c": w2c, "registered": reg, "tracks": tracks, "matches": matches, "info": info}


def refine(
    prob: _Problem,
    K: np.ndarray,
    w2c: np.ndarray,
    reg: np.ndarray,
    tracks: Tracks,
    cfg: SparseViewConfig,
    optimize_focal: bool = True,
    iters: int = 30,
):
    """Triangulate, BA, drop outliers, BA again. Returns (K, w2c, X (T,3), good (T,) bool, ba residuals)."""
    fixed = int(np.flatnonzero(reg)[0])
    for rnd in range(2):
        X, count = triangulate_tracks(tracks, K, w2c, reg)
        good = _track_quality(tracks, K, w2c, X, reg, cfg.reproj_px * (3 if rnd == 0 else 1))
        obs, pt_ids = _observations(tracks, reg, good)
        if len(obs) == 0:
            return K, w2c, X, good
        regs = np.flatnonzero(reg)
        loc = {int(v): k for k, v in enumerate(regs)}
        obs_local = Observations(torch.tensor([loc[int(v)] for v in obs.cam.tolist()]), obs.pt, obs.uv)
        pp = torch.from_numpy(K[regs, :2, 2])
        res = bundle_adjust(
            torch.from_numpy(w2c[regs]),
            float(K[fixed, 0, 0]),
            pp,
            torch.from_numpy(X[pt_ids]),
            obs_local,
            fixed=(loc[fixed],),
            optimize_focal=optimize_focal,
            huber_px=cfg.huber_px,
            iters=iters,
        )
        w2c = w2c.copy()
        w2c[regs] = res.w2c.numpy()
        K = K.copy()
        K[:, 0, 0] = K[:, 1, 1] = res.focal
        X = X.copy()
        X[pt_ids] = res.points.numpy()
    good = _track_quality(tracks, K, w2c, X, reg, cfg.reproj_px)
    return K, w2c, X, good


def guided_matches(
    prob: _Problem,
    K: np.ndarray,
    w2c: np.ndarray,
    reg: np.ndarray,
    cfg: SparseViewConfig,
    mode: str = "guided",
) -> dict[tuple[int, int], np.ndarray]:
    """Re-verify matches against solved poses: epipolar-band matching ('guided') or the loose
    ratio-test matches filtered by the epipolar constraint ('loose'); points must lie in front."""
    out = {}
    for i, j in prob.tentative:
        if not (reg[i] and reg[j]):
            continue
        fi, fj = prob.features[i], prob.features[j]
        if mode == "guided":
            m = match_guided(fi, fj, fundamental_from_poses(K[i], K[j], w2c[i], w2c[j]), cfg.thresh_px, 0.9)
        else:
            m = prob.loose[(i, j)]
        if len(m) == 0:
            continue
        n0 = normalize_points(fi.keypoints[m[:, 0]], K[i])
        n1 = normalize_points(fj.keypoints[m[:, 1]], K[j])
        Rij = w2c[j, :3, :3] @ w2c[i, :3, :3].T
        t = w2c[j, :3, 3] - Rij @ w2c[i, :3, 3]
        inl = score_pose(Rij, t / max(np.linalg.norm(t), 1e-12), n0, n1, K[i, 0, 0], cfg.thresh_px)
        if inl.sum() >= 8:
            out[(i, j)] = m[inl]
    return out


def _observations(tracks: Tracks, reg: np.ndarray, good: np.ndarray):
    m = reg[tracks.view] & good[tracks.track]
    pt_ids, local = np.unique(tracks.track[m], return_inverse=True)
    obs = Observations(
        torch.from_numpy(tracks.view[m]), torch.from_numpy(local), torch.from_numpy(tracks.uv[m])
    )
    return obs, pt_ids


def _track_quality(tracks, K, w2c, X, reg, thresh):
    """Tracks seen by >= 2 registered views, reprojecting within thresh everywhere, in front of the cameras."""
    T = tracks.num_tracks
    ok = np.isfinite(X).all(1)
    m = reg[tracks.view] & ok[tracks.track]
    err, z = reprojection(K, w2c, X[tracks.track[m]], tracks.view[m], tracks.uv[m])
    bad = np.zeros(T, bool)
    np.logical_or.at(bad, tracks.track[m], (err > thresh) | (z <= 0))
    n = np.bincount(tracks.track[m], minlength=T)
    return ok & ~bad & (n >= 2)


def _connected(V: int, edges: list[tuple[int, int]]) -> bool:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if V <= 1:
        return True
    if not edges:
        return False
    e = np.array(edges)
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(V, V))
    return connected_components(g, directed=False)[0] == 1


def focal_subset(prob: _Problem, size: int = 5) -> list[int]:
    """A well-connected subset of views: grow from the view with the most matches by strongest links."""
    V = len(prob.features)
    if V <= size:
        return list(range(V))
    w = np.zeros((V, V))
    for (i, j), m in prob.tentative.items():
        w[i, j] = w[j, i] = len(m)
    chosen = [int(np.argmax(w.sum(1)))]
    while len(chosen) < size:
        link = w[chosen].sum(0)
        link[chosen] = -1
        chosen.append(int(np.argmax(link)))
    return sorted(chosen)


def score_solution(prob, K, sol, cfg, iters=10):
    """Short BA with free focal; returns (inlier observations, focal, refined state)."""
    K2, w2c, X, good = refine(prob, K, sol["w2c"], sol["registered"], sol["tracks"], cfg, iters=iters)
    tr = sol["tracks"]
    m = sol["registered"][tr.view] & good[tr.track]
    return int(m.sum()), float(K2[0, 0, 0]), (K2, w2c, X, good)


def estimate_focal(prob: _Problem, cfg: SparseViewConfig, log=print) -> tuple[float, dict]:
    """Shared focal by search: for each candidate, solve a subset of views and keep the one whose
    short bundle adjustment (focal free) explains the most observations. Returns (focal, scores)."""
    views = focal_subset(prob)
    W, H = prob.sizes[views[0]]
    diag = float(np.hypot(W, H))
    cands = diag * np.geomspace(*cfg.focal_range, cfg.focal_steps)
    scores = {}
    for f in cands:
        K = intrinsics(f, prob.sizes)
        pairs = {e for e in prob.tentative if e[0] in views and e[1] in views}
        sol = solve_poses(
            prob, K, pair_hypotheses(prob, K, cfg, pairs, thorough=False), cfg, views=views, log=log
        )
        if sol is None or sol["registered"].sum() < 2:
            scores[float(f)] = (0, float(f))
            continue
        n, f_ba, _ = score_solution(prob, K, sol, cfg)
        scores[float(f)] = (n, f_ba)
        log(f"  focal {f:7.1f}: {n} inlier observations, BA focal {f_ba:7.1f}")
    best = max(scores, key=lambda f: scores[f][0])
    return scores[best][1], scores


def solve_sparse_views(
    images: list[np.ndarray], focal: float | None = None, cfg: SparseViewConfig | None = None, log=print
) -> SparseViewResult:
    """Poses, shared focal and sparse points for a small set of views (see module docstring)."""
    cfg = cfg or SparseViewConfig()
    times: dict[str, float] = {}
    prob, t = prepare(images, cfg, log)
    times.update(t)
    t0 = time.perf_counter()
    diag: dict = {}
    if focal is None:
        focal, scores = estimate_focal(prob, cfg, log)
        diag["focal_search"] = {f"{k:.1f}": v for k, v in scores.items()}
        log(f"focal estimate {focal:.1f} px")
    times["focal"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    K = intrinsics(focal, prob.sizes)
    hyps = pair_hypotheses(prob, K, cfg)
    sol = solve_poses(prob, K, hyps, cfg, log=log)
    times["poses"] = time.perf_counter() - t0
    V = len(images)
    if sol is None:
        return SparseViewResult(
            K,
            np.tile(np.eye(4), (V, 1, 1)),
            np.zeros(V, bool),
            np.zeros((0, 3)),
            np.zeros((0, 3), np.float32),
            focal,
            {"times": times, **diag},
        )
    t0 = time.perf_counter()
    reg = sol["registered"]
    K, w2c, X, good = refine(prob, K, sol["w2c"], reg, sol["tracks"], cfg)
    # re-verify the loose matches against the solved cameras with a shrinking threshold, so
    # matches the first pass missed (weak pairs, repetitive texture) join the tracks
    for thresh in (4.0, 2.0, 1.0):
        c = replace(cfg, thresh_px=thresh)
        matches = guided_matches(prob, K, w2c, reg, c, "loose")
        tracks = build_tracks([f.keypoints for f in prob.features], matches)
        K, w2c, X, good = refine(prob, K, w2c, reg, tracks, c)
    sol["tracks"] = tracks
    times["bundle_adjustment"] = time.perf_counter() - t0
    return _result(
        prob, K, w2c, sol, X, good, cfg, {"times": times, "placement": sol["info"]["order"], **diag}
    )


def _result(prob, K, w2c, sol, X, good, cfg, diag) -> SparseViewResult:
    tr = sol["tracks"]
    reg = sol["registered"].copy()
    m = reg[tr.view] & good[tr.track]
    per_view = np.bincount(tr.view[m], minlength=len(reg))
    reg &= per_view >= cfg.min_view_points
    diag["observations_per_view"] = per_view.tolist()
    ids = np.flatnonzero(good)
    # colour of a point: mean of its observed keypoint colours
    col = np.zeros((tr.num_tracks, 3))
    cnt = np.zeros(tr.num_tracks)
    for v in np.unique(tr.view[m]):
        s = m & (tr.view == v)
        np.add.at(col, tr.track[s], prob.features[v].colors[tr.kp[s]])
        np.add.at(cnt, tr.track[s], 1)
    colors = (col[ids] / np.maximum(cnt[ids], 1)[:, None]).astype(np.float32)
    ref = int(np.flatnonzero(reg)[0]) if reg.any() else 0
    w2c_t, pts_t = normalize_scale(
        torch.from_numpy(w2c[reg]), torch.from_numpy(X[ids]), ref=int(np.sum(reg[:ref]))
    )
    w2c = w2c.copy()
    w2c[reg] = w2c_t.numpy()
    return SparseViewResult(K, w2c, reg, pts_t.numpy(), colors, float(K[0, 0, 0]), diag)
