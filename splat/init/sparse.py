"""The standard 3DGS start: one Gaussian per sparse SfM point, scale from its nearest neighbours."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from splat.types import Gaussians


def knn_scales(points: np.ndarray, k: int = 3) -> np.ndarray:
    """(N,) isotropic scale per point: sqrt of the mean squared distance to its k nearest neighbours."""
    n = len(points)
    if n < 2:
        return np.full(n, 0.01)
    k = min(k, n - 1)
    dist, _ = cKDTree(points).query(points, k=k + 1)
    d2 = np.maximum((dist[:, 1:] ** 2).mean(1), 1e-14)
    return np.sqrt(d2)


def sparse_init(
    points: np.ndarray, colors: np.ndarray, opacity: float = 0.1, sh_degree: int = 3
) -> Gaussians:
    """Gaussians at SfM points (P,3) with uint8 or [0,1] colours (P,3), 3DGS defaults (opacity 0.1).

    No points give an empty set (P = 0), never NaNs.
    """
    if len(points) == 0:
        return Gaussians.empty(sh_degree)
    rgb = colors.astype(np.float32)
    if colors.dtype == np.uint8:
        rgb = rgb / 255.0
    scales = knn_scales(points.astype(np.float64))
    return Gaussians.from_points(
        torch.from_numpy(points.astype(np.float32)),
        torch.from_numpy(rgb),
        torch.from_numpy(scales.astype(np.float32)),
        opacity=opacity,
        sh_degree=sh_degree,
    )
