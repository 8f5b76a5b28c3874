"""Pinhole projection for OpenCV world-to-camera poses, in COLMAP pixel coordinates.

Pixel convention (COLMAP, also 3DGS): the image's top-left corner is (0, 0) and the centre of
pixel (col, row) is at (col + 0.5, row + 0.5), so a principal point (W/2, H/2) is the image
centre and resizing an image by (sx, sy) scales K's first two rows exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor


def project(points: Tensor, K: Tensor, w2c: Tensor) -> tuple[Tensor, Tensor]:
    """Project world points into a view.

    Args:
        points: (N, 3) world points (leading batch dims broadcast with K and w2c).
        K: (3, 3) intrinsics.
        w2c: (4, 4) OpenCV world-to-camera.

    Returns:
        uv: (N, 2) pixel coordinates (meaningless where depth <= 0).
        depth: (N,) camera-frame z.
    """
    pc = points @ w2c[..., :3, :3].transpose(-1, -2) + w2c[..., None, :3, 3]
    depth = pc[..., 2]
    h = pc @ K.transpose(-1, -2)
    return h[..., :2] / h[..., 2:3], depth


def unproject(uv: Tensor, depth: Tensor, K: Tensor, w2c: Tensor) -> Tensor:
    """World points (N, 3) at camera-frame depth (N,) along the rays of pixels uv (N, 2)."""
    pix = torch.cat([uv, torch.ones_like(uv[..., :1])], -1)
    cam = torch.linalg.solve(K, pix.transpose(-1, -2)).transpose(-1, -2) * depth[..., None]
    R, t = w2c[..., :3, :3], w2c[..., None, :3, 3]
    return (cam - t) @ R


def camera_centers(w2c: Tensor) -> Tensor:
    """Camera centres (V, 3) in world coordinates from w2c (V, 4, 4): C = -R^T t."""
    R, t = w2c[..., :3, :3], w2c[..., :3, 3:4]
    return -(R.transpose(-1, -2) @ t)[..., 0]


def scale_intrinsics(K: Tensor, sx: float, sy: float) -> Tensor:
    """Intrinsics (..., 3, 3) for the image resized by (sx, sy): rows 0 and 1 of K scaled.

    Exact under the COLMAP pixel convention (fx*sx, cx*sx, fy*sy, cy*sy; no half-pixel shift).
    """
    out = K.clone()
    out[..., 0, :] = K[..., 0, :] * sx
    out[..., 1, :] = K[..., 1, :] * sy
    return out
