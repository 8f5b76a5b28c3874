"""Far-field Gaussians: a shell of large Gaussians far beyond the scene, for the sky and distant background.

Views see sky, far hills and the ends of streets that no two views triangulate; the dense init leaves them
empty, so a view that looks a little past the training views' coverage shows the background colour (black)
at its edges. A Fibonacci sphere of `n` directions around the camera centroid, at `radius_factor` times the
distance of the farthest initial Gaussians (95th percentile), each Gaussian as wide as the spacing of the
directions, coloured from the training views that see its direction (the more central in a view, the more
weight) and, where none does, from the nearest direction that one sees. Training then refines them like any
other Gaussian; in front of them the scene occludes them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from splat.types import Cameras, Gaussians


def fibonacci_sphere(n: int) -> np.ndarray:
    """(n, 3) unit vectors spread evenly over the sphere."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    r = np.sqrt(np.clip(1 - z * z, 0, None))
    phi = k * math.pi * (3 - math.sqrt(5))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


def far_field(
    images: list[np.ndarray],
    cameras: Cameras,
    scene_points: np.ndarray,
    n: int = 8000,
    radius_factor: float = 10.0,
    opacity: float = 0.9,
    sh_degree: int = 3,
) -> Gaussians:
    """`n` far-field Gaussians (see the module docstring).

    Args:
        images: V float images (H_v, W_v, 3) in [0,1] sized as `cameras`.
        cameras: V posed cameras.
        scene_points: (P, 3) the initial Gaussians' means (the scene's extent), P may be 0.
    """
    centres = cameras.centers.double().cpu().numpy()
    centroid = centres.mean(0)
    reach = np.linalg.norm(centres - centroid, axis=1).max()
    if len(scene_points):
        reach = max(reach, float(np.percentile(np.linalg.norm(scene_points - centroid, axis=1), 95)))
    radius = radius_factor * max(reach, 1e-6)
    dirs = fibonacci_sphere(n)
    X = centroid + radius * dirs
    colour = np.zeros((n, 3))
    weight = np.zeros(n)
    for v, image in enumerate(images):
        w2c = cameras.w2c[v].double().cpu().numpy()
        K = cameras.K[v].double().cpu().numpy()
        Xc = X @ w2c[:3, :3].T + w2c[:3, 3]
        z = Xc[:, 2]
        front = z > 0
        uv = np.full((n, 2), -1.0)
        uv[front] = (Xc[front] / z[front, None] @ K.T)[:, :2]
        H, W = image.shape[:2]
        inside = front & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
        col, row = uv[inside, 0].astype(int), uv[inside, 1].astype(int)
        # the centre of the view counts most: 1 there, ~0 at the corners
        off = np.hypot((uv[inside, 0] - W / 2) / (W / 2), (uv[inside, 1] - H / 2) / (H / 2)) / math.sqrt(2)
        w = np.clip(1 - off, 0.05, 1)
        colour[inside] += w[:, None] * np.asarray(image, np.float64)[row, col, :3]
        weight[inside] += w
    seen = weight > 0
    if not seen.any():
        return Gaussians.empty(sh_degree)
    colour[seen] /= weight[seen, None]
    if (~seen).any():  # the colour of the nearest seen direction
        from scipy.spatial import cKDTree

        nearest = cKDTree(dirs[seen]).query(dirs[~seen])[1]
        colour[~seen] = colour[seen][nearest]
    sigma = 0.8 * radius * math.sqrt(4 * math.pi / n)  # neighbouring footprints overlap: no gaps
    return Gaussians.from_points(
        torch.from_numpy(X.astype(np.float32)),
        torch.from_numpy(np.clip(colour, 0, 1).astype(np.float32)),
        torch.full((n,), sigma, dtype=torch.float32),
        opacity=opacity,
        sh_degree=sh_degree,
    )
