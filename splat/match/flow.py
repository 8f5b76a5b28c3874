"""Dense optical flow pieces: DIS flow with an initial guess, cycle consistency, texture strength.

Flow fields are (H,W,2) float32 displacements in pixels: pixel (i, j) of image 0 moves to
(j + u, i + v) in the same pixel grid convention, so a flow is the same in index and in
pixel-centre coordinates.
"""

from __future__ import annotations

import cv2
import numpy as np

OUT_OF_BOUNDS = 1e6  # cycle error given to pixels whose match leaves the other image


def dis_flow(
    gray0: np.ndarray,
    gray1: np.ndarray,
    init: np.ndarray | None = None,
    finest_scale: int = 0,
    refine_iters: int = 5,
) -> np.ndarray:
    """DIS optical flow (Kroeger et al. 2016) from gray0 to gray1, both uint8 (H,W).

    `init` (H,W,2) seeds the coarsest pyramid level; the flow is refined down to `finest_scale`
    (0 = full resolution) with `refine_iters` variational refinement iterations per level.
    """
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(finest_scale)
    dis.setVariationalRefinementIterations(refine_iters)
    flow = None if init is None else np.ascontiguousarray(init, np.float32).copy()
    return dis.calc(gray0, gray1, flow)


def warp_field(
    field: np.ndarray, flow: np.ndarray, fill: float, border: int = cv2.BORDER_CONSTANT
) -> np.ndarray:
    """Sample `field` (H1,W1,C) at x + flow(x) for every pixel x of flow (H,W,2), bilinear."""
    H, W = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    return cv2.remap(
        field,
        gx + flow[..., 0],
        gy + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=border,
        borderValue=(fill,) * 4,
    )


def cycle_error(flow01: np.ndarray, flow10: np.ndarray, valid1: np.ndarray | None = None) -> np.ndarray:
    """(H,W) forward-backward error |f01(x) + f10(x + f01(x))| in pixels.

    Pixels whose match lands outside image 1 (or outside `valid1`, (H1,W1) bool) get OUT_OF_BOUNDS.
    """
    back = warp_field(flow10, flow01, OUT_OF_BOUNDS)
    err = np.linalg.norm(flow01 + back, axis=-1)
    if valid1 is not None:
        inside = warp_field(valid1.astype(np.float32), flow01, 0.0) > 0.999
        err = np.where(inside, err, OUT_OF_BOUNDS)
    return np.minimum(err, OUT_OF_BOUNDS).astype(np.float32)


def texture_strength(gray: np.ndarray, window: int = 7) -> np.ndarray:
    """(H,W) RMS intensity gradient per pixel over a window, for a uint8 gray image (units: 1/255 per px)."""
    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    energy = cv2.boxFilter(gx * gx + gy * gy, -1, (window, window))
    return np.sqrt(energy)


def flow_discontinuity(flow: np.ndarray) -> np.ndarray:
    """(H,W) largest flow change (px) between a pixel and its 3x3 neighbours."""
    out = np.zeros(flow.shape[:2], np.float32)
    kernel = np.ones((3, 3), np.uint8)
    for c in range(2):
        hi = cv2.dilate(flow[..., c], kernel)
        lo = cv2.erode(flow[..., c], kernel)
        out = np.maximum(out, hi - lo)
    return out
