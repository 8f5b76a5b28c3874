"""EDGS-style dense initialisation: triangulate dense correspondences instead of densifying.

Each view is paired with its best-placed neighbours; every pair is matched densely once, both
ways. Each view's pixels are then triangulated along their own rays against all its matched
neighbours (a closed-form least-squares depth per pixel), which gives one depth map and one
confidence map per view: high where several neighbours agree, lower with one, low where they
disagree; untrusted pixels take the depth of the farther trusted side nearby.
`splat.init.pointmap.pointmap_init` turns these maps into Gaussians, keeping each surface once
and filling with untrusted pixels only what the trusted ones leave uncovered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from splat.errors import InputError
from splat.init.pointmap import PointmapConfig, pixel_rays, pointmap_init
from splat.types import Cameras, Gaussians

# A matcher maps (img0 (H,W,3), img1, F (3,3) fundamental matrix from the poses, x1^T F x0 = 0) to
# (xy1 (H,W,2) positions in img1 of each img0 pixel centre, confidence (H,W) in [0,1]), at img0's size.
MatchFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class EdgsConfig:
    n_neighbors: int = 2  # views matched against each view (pairs are matched once, both ways)
    min_angle_deg: float = 2.0  # neighbours closer in viewing direction add little parallax
    max_angle_deg: float = 75.0
    min_confidence: float = 0.5  # match confidence for a neighbour to take part in a pixel's depth
    max_reproj_px: float = 1.5  # neighbours further off the joint depth's projection disagree
    disagreement_penalty: float = 0.25  # confidence factor where matched neighbours disagree
    max_depth_ratio: float = 50.0  # depths beyond this times a view's median depth are not trusted
    # The default matcher works at most at max_side (longer image side), refining DIS flow down to
    # its finest_scale. On the 512x384 test scenes, 320 px at full DIS resolution was both faster
    # and better at step 0 than 512 px at half DIS resolution (depth maps are resized back).
    max_side: int = 320
    finest_scale: int = 0
    max_features: int = 1000  # SIFT keypoints per image guiding the default matcher (found once per image)
    pointmap: PointmapConfig = field(default_factory=PointmapConfig)
    seed: int = 0  # kept for callers; the method is deterministic


def viewing_angles_deg(cameras: Cameras) -> torch.Tensor:
    """(V, V) angle between the optical axes of every pair of views, in degrees."""
    axes = cameras.w2c[:, 2, :3].double()  # third row of R = optical axis in world coordinates
    cos = (axes @ axes.T).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos))


def select_neighbors(cameras: Cameras, k: int, min_angle: float, max_angle: float) -> list[list[int]]:
    """For each view, up to k other views ranked by closeness in viewing direction and position.

    Views closer than min_angle degrees (little parallax) or further than max_angle (little
    overlap) are used only when nothing else is left.
    """
    ang = viewing_angles_deg(cameras)
    centers = cameras.centers.double()
    dist = torch.cdist(centers, centers)
    spread = dist.max().clamp_min(1e-9)
    out = []
    for i in range(len(cameras)):
        others = [j for j in range(len(cameras)) if j != i]
        score = {j: float(ang[i, j]) / 30.0 + float(dist[i, j] / spread) for j in others}
        good = [j for j in others if min_angle <= ang[i, j] <= max_angle]
        ranked = sorted(good, key=score.get) + sorted(set(others) - set(good), key=score.get)
        out.append(ranked[:k])
    return out


def match_pairs(neighbors: list[list[int]]) -> list[tuple[int, int]]:
    """Unordered pairs (i < j) of a neighbour lists, each once, sorted."""
    return sorted({(min(i, j), max(i, j)) for i, nbrs in enumerate(neighbors) for j in nbrs})


def fundamental_matrix(cameras: Cameras, i: int, j: int) -> np.ndarray:
    """(3,3) F with x_j^T F x_i = 0 for pixel-centre coordinates of views i and j."""
    from splat.match.dense import fundamental_from_cameras

    return fundamental_from_cameras(cameras.K[i], cameras.w2c[i], cameras.K[j], cameras.w2c[j])


def _default_fields(images, cameras: Cameras, pairs, cfg: EdgsConfig, progress) -> dict:
    """{(i, j): Field} for both directions of every pair, from the classical matcher.

    SIFT features are computed once per image (not once per pair) and passed as sparse guides.
    """
    from splat.match import guide
    from splat.match.dense import DenseMatchConfig, dense_match, working_gray

    mcfg = DenseMatchConfig(finest_scale=cfg.finest_scale, max_features=cfg.max_features)
    feats = {}
    for v in sorted({v for p in pairs for v in p}):
        H, W = images[v].shape[:2]
        side = min(cfg.max_side, max(H, W))
        gray = working_gray(images[v], side)
        xy, desc = guide.sift_features(gray, cfg.max_features)
        feats[v] = (xy / [gray.shape[1] / W, gray.shape[0] / H], desc)  # back to input pixels
    fields = {}
    for n, (i, j) in enumerate(pairs):
        m = dense_match(
            images[i],
            images[j],
            F=fundamental_matrix(cameras, i, j),
            sparse_matches=guide.match_features(feats[i], feats[j], mcfg.ratio),
            max_side=cfg.max_side,
            cfg=mcfg,
            both_ways=True,
        )
        fields[i, j] = (m.match_xy, m.confidence)
        fields[j, i] = (m.reverse.match_xy, m.reverse.confidence)
        if progress:
            progress(n + 1, len(pairs))
    return fields


def _given_fields(images, cameras: Cameras, pairs, match: MatchFn, progress) -> dict:
    fields = {}
    for n, (i, j) in enumerate(pairs):
        fields[i, j] = match(images[i], images[j], fundamental_matrix(cameras, i, j))
        fields[j, i] = match(images[j], images[i], fundamental_matrix(cameras, j, i))
        if progress:
            progress(n + 1, len(pairs))
    return fields


def _ray_equations(center, dirs, xy, P):
    """Per pixel, a (H,W,2), b (H,W,2), z0, z1 (H,W): projection of center + lam dirs hits xy when a lam = b.

    The projection's homogeneous depth in the other view is z0 + lam z1, so the pixel error of a
    depth lam is |a lam - b| / (z0 + lam z1).
    """
    A = dirs @ P[:, :3].T  # (H,W,3)
    B = P[:, :3] @ center + P[:, 3]  # (3,)
    x, y = xy[..., 0].astype(np.float64), xy[..., 1].astype(np.float64)
    a = np.stack([x * A[..., 2] - A[..., 0], y * A[..., 2] - A[..., 1]], -1)
    b = np.stack([B[0] - x * B[2], B[1] - y * B[2]], -1)
    return a, b, np.full(x.shape, B[2]), A[..., 2]


def view_depth(v: int, nbrs: list[int], cameras: Cameras, fields: dict, cfg: EdgsConfig):
    """Depth (H,W) and confidence (H,W) of view v from its matches into the views nbrs.

    Each pixel's depth along its ray is the least-squares solution over the neighbours whose match
    confidence reaches cfg.min_confidence (weighted by confidence, in pixel units). All agreeing
    (reprojection within cfg.max_reproj_px): confidence 1 - prod(1 - c_j). Otherwise the single
    most confident neighbour decides, at its confidence times cfg.disagreement_penalty. Depths
    beyond cfg.max_depth_ratio times the median are not trusted (sky, near-parallel rays).
    Untrusted pixels keep their (low) confidence and take their depth from trusted pixels nearby
    (`fill_depth`); NaN where there is none.
    """
    center, dirs = pixel_rays(cameras[v])
    P = (cameras.K.double() @ cameras.w2c[:, :3, :].double()).numpy()
    eqs = [_ray_equations(center, dirs, fields[v, j][0], P[j]) for j in nbrs]
    conf = np.stack([np.nan_to_num(fields[v, j][1].astype(np.float64)) for j in nbrs])  # (k,H,W)
    a, b, z0, z1 = (np.stack(t) for t in zip(*eqs))
    with np.errstate(divide="ignore", invalid="ignore"):
        lam_each = (a * b).sum(-1) / (a * a).sum(-1)  # (k,H,W) one neighbour at a time
        z_each = np.abs(z0 + lam_each * z1)
        ok = np.isfinite(lam_each) & (lam_each > 0) & (z0 + lam_each * z1 > 0)
        cand = ok & (conf >= cfg.min_confidence)
        w = np.where(cand, conf / np.maximum(z_each, 1e-12) ** 2, 0.0)
        lam = (w[..., None] * a * b).sum((0, -1)) / (w[..., None] * a * a).sum((0, -1))
        err = np.linalg.norm(a * lam[..., None] - b, axis=-1) / np.abs(z0 + lam * z1)
    agree = cand & (err <= cfg.max_reproj_px)
    all_agree = cand.any(0) & (agree == cand).all(0) & (lam > 0)
    joint_conf = 1 - np.prod(np.where(cand, 1 - conf, 1.0), axis=0)
    best = np.argmax(np.where(ok, conf, -1.0), axis=0)
    best_lam = np.take_along_axis(lam_each, best[None], 0)[0]
    best_conf = np.take_along_axis(np.where(ok, conf, 0.0), best[None], 0)[0]
    best_ok = np.take_along_axis(ok, best[None], 0)[0]
    disagree = cand.any(0) & ~all_agree
    depth = np.where(all_agree, lam, np.where(best_ok, best_lam, np.nan))
    confidence = np.where(
        all_agree, joint_conf, best_conf * np.where(disagree, cfg.disagreement_penalty, 1.0)
    )
    confidence = np.where(np.isfinite(depth), confidence, 0.0)
    trusted = confidence >= cfg.pointmap.min_confidence
    if trusted.any():
        trusted &= depth <= cfg.max_depth_ratio * np.median(depth[trusted])
    return fill_depth(depth, trusted).astype(np.float32), confidence.astype(np.float32)


def fill_depth(depth: np.ndarray, trusted: np.ndarray, max_steps: int = 256) -> np.ndarray:
    """Depth (H,W) with untrusted pixels set from trusted ones nearby, the farthest neighbour winning.

    Untrusted pixels are mostly occlusions next to a nearer object and smooth or empty regions;
    taking the farther side keeps foreground objects from bleeding into their background. Grows
    one pixel per step (3x3 max filter); NaN where no trusted pixel is within reach.
    """
    D = np.where(trusted, depth, 0).astype(np.float32)
    hole = ~trusted
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(max_steps):
        if not hole.any():
            break
        grown = cv2.dilate(D, kernel)
        new = hole & (grown > 0)
        if not new.any():
            break
        D[new] = grown[new]
        hole &= ~new
    return np.where(hole, np.nan, D)


def edgs_depths(
    images: list[np.ndarray],
    cameras: Cameras,
    cfg: EdgsConfig | None = None,
    match: MatchFn | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """Per-view depth and confidence maps (H_v, W_v) from dense matches with neighbouring views.

    Returns:
        depths (float32, NaN where unknown), confidences (float32 in [0,1]), report dict.
    """
    cfg = cfg or EdgsConfig()
    if len(images) < 2:
        raise InputError(f"EDGS initialisation needs at least 2 posed views, got {len(images)}")
    t0 = time.perf_counter()
    neighbors = select_neighbors(cameras, cfg.n_neighbors, cfg.min_angle_deg, cfg.max_angle_deg)
    pairs = match_pairs(neighbors)
    if match is None:
        fields = _default_fields(images, cameras, pairs, cfg, progress)
    else:
        fields = _given_fields(images, cameras, pairs, match, progress)
    t_match = time.perf_counter() - t0
    matched = [sorted({j for (i, j) in fields if i == v}) for v in range(len(images))]
    depths, confs = zip(*(view_depth(v, matched[v], cameras, fields, cfg) for v in range(len(images))))
    confident = int(sum((c >= cfg.pointmap.min_confidence).sum() for c in confs))
    pixels = int(sum(c.size for c in confs))
    report = {
        "views": len(images),
        "pairs": len(pairs),
        "confident_pixels": confident,
        "confident_fraction": round(confident / max(pixels, 1), 4),
        "seconds_match": round(t_match, 3),
        "seconds_depth": round(time.perf_counter() - t0 - t_match, 3),
    }
    return list(depths), list(confs), report


def edgs_init(
    images: list[np.ndarray],
    cameras: Cameras,
    cfg: EdgsConfig | None = None,
    match: MatchFn | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Gaussians, torch.Tensor, dict]:
    """Dense initial Gaussians from posed images.

    Args:
        images: V float32 images (H_v, W_v, 3) in [0,1], sized as `cameras` says.
        cameras: V posed cameras (OpenCV w2c, K at the image size).
        cfg: EdgsConfig (its `pointmap` field configures the Gaussians).
        match: dense matcher (default: splat.match.dense, both ways per pair, SIFT computed once per image).
        progress: called with (pairs matched, pairs) after each pair.
    Returns:
        Gaussians (N), their confidence (N,), and a report dict (counts per stage, time; "depth_maps": the
        per-view (depths, confidences) the Gaussians came from).
    Raises:
        InputError when no confident dense correspondence exists (textureless or non-overlapping views).
    """
    cfg = cfg or EdgsConfig()
    t0 = time.perf_counter()
    depths, confs, report = edgs_depths(images, cameras, cfg, match, progress)
    if report["confident_pixels"] == 0:
        raise InputError(
            "no confident dense correspondence between the views: the images look textureless or do "
            "not overlap; try more overlapping photos, or --init sparse"
        )
    g, conf, pm_report = pointmap_init(images, cameras, depths, confs, cfg.pointmap)
    report.update(pm_report)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    report["depth_maps"] = (depths, confs)  # for training's depth term; not JSON (the pipeline pops it)
    return g, conf, report
