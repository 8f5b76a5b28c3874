"""Point-map initialisation: one Gaussian per confident depth-map pixel, each surface kept once.

Input is one depth map per posed view (z-depth along the optical axis, at the image size) with an
optional confidence map: from two-view dense triangulation (splat.init.edgs) today, from a learned
point-map model (DUSt3R-style) later. Pixels on a `stride` grid become isotropic Gaussians whose
footprint covers the grid cell. Co-visibility filtering works with the other views' depth maps:
a point is projected into each other view and its depth there is compared with that view's own
depth map at the landing pixel:
- about equal: the other view sees the same surface. When that view comes earlier and already
  placed Gaussians there, the point is a duplicate and is dropped, so a surface is kept once;
- clearly smaller: the point floats in free space the other view looks through. Points with more
  such views than agreeing ones are dropped as floaters;
- larger: the point is occluded there, which says nothing.
Optionally, pixels below the confidence threshold fill what the confident set left uncovered, at
their own (low) confidence, so that pruning to a budget by confidence drops them first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from splat.errors import InputError
from splat.types import Cameras, Gaussians


@dataclass
class PointmapConfig:
    stride: int = 2  # one Gaussian per stride x stride pixel cell
    min_confidence: float = 0.5
    scale_factor: float = 0.75  # sigma = factor * stride * depth / focal
    opacity: float = 0.9
    same_surface_tol: float = 0.03  # relative depth difference that still counts as one surface
    free_space_tol: float = 0.08  # a point this much (relative) in front of another view's surface floats
    fill_holes: bool = True  # emit unconfident pixels where the confident set leaves the view uncovered
    sh_degree: int = 3


def pixel_rays(camera: Cameras, stride: int = 1, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Camera centre (3,) and world directions (h,w,3) with unit z-depth, one per sampled pixel centre."""
    H, W = int(camera.height[0]), int(camera.width[0])
    u, v = np.meshgrid(np.arange(offset, W, stride) + 0.5, np.arange(offset, H, stride) + 0.5)
    K = camera.K[0].double().numpy()
    R = camera.w2c[0, :3, :3].double().numpy()
    cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    return camera.centers[0].double().numpy(), cam @ R  # rows: R^T applied to each direction


def unproject(depth: np.ndarray, camera: Cameras) -> np.ndarray:
    """World points (H,W,3) of a z-depth map (H,W) seen by a one-view camera."""
    center, dirs = pixel_rays(camera)
    return center + depth[..., None] * dirs


def _project(X: np.ndarray, camera: Cameras) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions (n,2) and z-depths (n,) of world points X (n,3) in a one-view camera."""
    w2c = camera.w2c[0].double().numpy()
    K = camera.K[0].double().numpy()
    Xc = X @ w2c[:3, :3].T + w2c[:3, 3]
    z = Xc[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = Xc[:, :2] / z[:, None] * [K[0, 0], K[1, 1]] + K[:2, 2]
    return uv, z


def _check_inputs(images, cameras: Cameras, depths, confidences) -> None:
    V = len(cameras)
    if not (len(images) == len(depths) == V) or (confidences is not None and len(confidences) != V):
        raise InputError(
            f"point-map init needs one image, depth map and confidence map per camera "
            f"({V} cameras, {len(images)} images, {len(depths)} depth maps)"
        )
    for v in range(V):
        H, W = int(cameras.height[v]), int(cameras.width[v])
        shapes = [images[v].shape[:2], depths[v].shape] + (
            [] if confidences is None else [confidences[v].shape]
        )
        if any(tuple(s) != (H, W) for s in shapes):
            raise InputError(
                f"view {cameras.names[v]}: image/depth/confidence sizes {shapes} differ from {W}x{H}"
            )


class _Views:
    """Per-view depth maps prepared for co-visibility look-ups."""

    def __init__(self, cameras: Cameras, depths, confidences, cfg: PointmapConfig):
        self.cameras = cameras
        self.depth, self.near_depth, self.covered = [], [], []
        for v in range(len(cameras)):
            d = np.asarray(depths[v], np.float64)
            ok = np.isfinite(d) & (d > 0)
            if confidences is not None:
                ok &= np.nan_to_num(np.asarray(confidences[v], np.float64)) >= cfg.min_confidence
            d = np.where(ok, d, np.nan)
            self.depth.append(d)
            # nearest surface within 3x3: landing one pixel off a silhouette is not free space
            near = cv2.erode(np.where(ok, d, np.inf).astype(np.float32), np.ones((3, 3), np.uint8))
            self.near_depth.append(near.astype(np.float64))
            self.covered.append(np.zeros(d.shape, bool))

    def look(self, X: np.ndarray, u: int):
        """Points X (n,3) seen from view u: landing pixel rows, cols (n,), inside (n,) bool, z-depth (n,)."""
        uv, z = _project(X, self.cameras[u])
        H, W = self.depth[u].shape
        cols = np.floor(np.nan_to_num(uv[:, 0], nan=-1.0)).astype(np.int64)
        rows = np.floor(np.nan_to_num(uv[:, 1], nan=-1.0)).astype(np.int64)
        inside = (z > 0) & (cols >= 0) & (cols < W) & (rows >= 0) & (rows < H)
        rows, cols = np.where(inside, rows, 0), np.where(inside, cols, 0)
        return rows, cols, inside, z


def _covis_keep(X: np.ndarray, v: int, views: _Views, cfg: PointmapConfig):
    """(keep (n,) bool, duplicates, floaters) for view v's confident points X (n,3)."""
    n = len(X)
    support, violation = np.zeros(n, np.int32), np.zeros(n, np.int32)
    duplicate = np.zeros(n, bool)
    for u in range(len(views.cameras)):
        if u == v:
            continue
        rows, cols, inside, z = views.look(X, u)
        d_u = views.depth[u][rows, cols]
        with np.errstate(invalid="ignore"):
            same = inside & (np.abs(z - d_u) <= cfg.same_surface_tol * d_u)
            near = views.near_depth[u][rows, cols]  # inf where view u has no depth nearby
            front = inside & np.isfinite(near) & (z < near * (1 - cfg.free_space_tol))
        support += same
        violation += front
        if u < v:
            duplicate |= same & views.covered[u][rows, cols]
    floater = violation > support
    return ~duplicate & ~floater, int(duplicate.sum()), int((floater & ~duplicate).sum())


def _mark_covered(shape, rows: np.ndarray, cols: np.ndarray, stride: int) -> np.ndarray:
    """(H,W) bool: the stride x stride cells of the given sample pixels."""
    mask = np.zeros(shape, np.uint8)
    mask[rows, cols] = 1
    if stride > 1:
        mask = cv2.dilate(mask, np.ones((stride, stride), np.uint8), anchor=(0, 0))
    return mask > 0


def _uncovered(v: int, shape, points: list[np.ndarray], views: _Views, stride: int) -> np.ndarray:
    """(H,W) bool: pixels of view v that no emitted point lands near (depth ignored)."""
    hit = np.zeros(shape, np.uint8)
    for X in points:
        if len(X):
            rows, cols, inside, _ = views.look(X, v)
            hit[rows[inside], cols[inside]] = 1
    grow = 2 * stride + 1  # emitted footprints are about one cell wide
    return cv2.dilate(hit, np.ones((grow, grow), np.uint8)) == 0


def pointmap_init(
    images: list[np.ndarray],
    cameras: Cameras,
    depths: list[np.ndarray],
    confidences: list[np.ndarray] | None = None,
    cfg: PointmapConfig | None = None,
) -> tuple[Gaussians, torch.Tensor, dict]:
    """Gaussians from per-view depth maps, each surface seen by several views kept once.

    Args:
        images: V float32 RGB images (H_v, W_v, 3) in [0,1].
        cameras: V posed cameras (OpenCV w2c, K at the image size).
        depths: V z-depth maps (H_v, W_v); NaN, inf or <= 0 where unknown.
        confidences: V maps (H_v, W_v) in [0,1], or None (all depths trusted).
        cfg: PointmapConfig.
    Returns:
        Gaussians (N), their confidence (N,) (the source pixel's), and a report dict.
    """
    cfg = cfg or PointmapConfig()
    _check_inputs(images, cameras, depths, confidences)
    t0 = time.perf_counter()
    views = _Views(cameras, depths, confidences, cfg)
    s = cfg.stride
    report = {"views": len(cameras), "candidates": 0, "duplicates": 0, "floaters": 0, "filled": 0}
    points, colors, scales, conf = [], [], [], []
    for v in range(len(cameras)):
        center, dirs = pixel_rays(cameras[v], s)
        d = views.depth[v][::s, ::s]
        rows, cols = np.nonzero(np.isfinite(d))
        X = center + d[rows, cols, None] * dirs[rows, cols]
        keep, dup, floating = _covis_keep(X, v, views, cfg)
        report["candidates"] += len(X)
        report["duplicates"] += dup
        report["floaters"] += floating
        rows, cols = rows[keep] * s, cols[keep] * s
        views.covered[v] = _mark_covered(views.depth[v].shape, rows, cols, s)
        points.append(X[keep])
        c = np.ones(len(rows)) if confidences is None else np.asarray(confidences[v])[rows, cols]
        _append(cfg, cameras, images, v, rows, cols, X[keep], c, colors, scales, conf)
    if cfg.fill_holes and confidences is not None:
        for v in range(len(cameras)):
            X, rows, cols = _fill_candidates(v, depths[v], confidences[v], cameras, views, points, cfg)
            report["filled"] += len(X)
            points.append(X)
            c = np.asarray(confidences[v])[rows, cols]
            _append(cfg, cameras, images, v, rows, cols, X, c, colors, scales, conf)
    g = _gaussians(points, colors, scales, conf, cfg)
    report["gaussians"] = len(g)
    report["seconds"] = round(time.perf_counter() - t0, 3)
    return g, torch.from_numpy(np.concatenate(conf).astype(np.float32)), report


def _fill_candidates(v, depth, confidence, cameras, views: _Views, points, cfg: PointmapConfig):
    """Unconfident pixels of view v (stride grid) with a usable depth where nothing was placed yet."""
    s = cfg.stride
    d = np.asarray(depth, np.float64)
    usable = np.isfinite(d) & (d > 0) & ~(np.nan_to_num(np.asarray(confidence)) >= cfg.min_confidence)
    usable &= _uncovered(v, d.shape, points, views, s)
    rows, cols = np.nonzero(usable[::s, ::s])
    center, dirs = pixel_rays(cameras[v], s)
    X = center + d[::s, ::s][rows, cols, None] * dirs[rows, cols]
    return X, rows * s, cols * s


def _append(cfg, cameras, images, v, rows, cols, X, c, colors, scales, conf) -> None:
    depth = _project(X, cameras[v])[1]
    focal = float(cameras.K[v, 0, 0])
    colors.append(np.asarray(images[v], np.float32)[rows, cols])
    scales.append(cfg.scale_factor * cfg.stride * depth / focal)
    conf.append(np.clip(np.nan_to_num(np.asarray(c, np.float64)), 0, 1))


def _gaussians(points, colors, scales, conf, cfg: PointmapConfig) -> Gaussians:
    X = np.concatenate(points) if points else np.zeros((0, 3))
    if len(X) == 0:
        return Gaussians.empty(cfg.sh_degree)
    return Gaussians.from_points(
        torch.from_numpy(X.astype(np.float32)),
        torch.from_numpy(np.clip(np.concatenate(colors), 0, 1)),
        torch.from_numpy(np.maximum(np.concatenate(scales), 1e-7).astype(np.float32)),
        cfg.opacity,
        cfg.sh_degree,
    ).validate()
