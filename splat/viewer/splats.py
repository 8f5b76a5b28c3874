"""Gaussians -> what viser's client-side splat renderer takes, in a rescaled display frame.

viser packs covariances as float16, so a scene in metres far from the origin (or a tiny one)
loses its shapes. The viewer therefore shows the scene through one similarity
`x_display = scale * (x_world - centre)`, applied to centres, covariances and cameras alike, and
undone for anything shown to the user.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from splat.geometry.se3 import quat_wxyz_to_rotmat
from splat.render.sh import sh_to_rgb
from splat.types import Cameras, Gaussians

DISPLAY_EXTENT = 3.0  # robust radius of the scene in display units


@dataclass(frozen=True)
class DisplayFrame:
    """The similarity world -> display: x_display = scale * (x_world - centre)."""

    centre: np.ndarray  # (3,) float64, world units
    scale: float

    def to_display(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> display points."""
        return self.scale * (np.asarray(points, np.float64) - self.centre)

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) display points -> world points."""
        return np.asarray(points, np.float64) / self.scale + self.centre


def fit_display_frame(means: Tensor, cameras: Cameras | None = None) -> DisplayFrame:
    """A frame centred on the median of the means, scaled so the robust scene radius is ~3.

    The radius is the 90th percentile distance of the means from the centre, or the median camera
    distance when cameras are given and that is larger (so the frustums fit too).
    """
    pts = means.detach().to("cpu", torch.float64)
    if len(pts) == 0:
        return DisplayFrame(np.zeros(3), 1.0)
    centre = pts.median(0).values
    radius = float(torch.quantile((pts - centre).norm(dim=-1), 0.9)) if len(pts) > 1 else 0.0
    if cameras is not None and len(cameras):
        radius = max(radius, float((cameras.centers.cpu().double() - centre).norm(dim=-1).median()))
    radius = radius if np.isfinite(radius) and radius > 1e-12 else 1.0
    return DisplayFrame(centre.numpy(), DISPLAY_EXTENT / radius)


def importance(gaussians: Gaussians) -> Tensor:
    """(N,) opacity times the largest cross-section (product of the two largest scales)."""
    log_area = gaussians.log_scales.sort(-1).values[:, 1:].sum(-1)
    return gaussians.opacities * log_area.clamp(-80, 80).exp()


def select(gaussians: Gaussians, max_count: int, min_opacity: float = 0.0) -> Tensor:
    """Indices (M,) of at most `max_count` Gaussians with opacity >= min_opacity, most important first."""
    keep = (gaussians.opacities >= min_opacity).nonzero().reshape(-1)
    if len(keep) > max_count:
        top = torch.topk(importance(gaussians[keep]), max(0, max_count)).indices
        keep = keep[top]
    return keep


def covariances(log_scales: Tensor, quats: Tensor) -> Tensor:
    """Sigma = R diag(s)^2 R^T from log-scales (N,3) and wxyz quaternions (N,4) -> (N,3,3)."""
    R = quat_wxyz_to_rotmat(quats)  # the renderer's own convention
    M = R * log_scales.exp()[:, None, :]
    return M @ M.transpose(1, 2)


def splat_arrays(gaussians: Gaussians, frame: DisplayFrame) -> dict[str, np.ndarray]:
    """Arguments of viser's add_gaussian_splats in display units.

    Returns:
        centers (N,3), covariances (N,3,3), rgbs (N,3) in [0,1] (SH DC only, view-independent),
        opacities (N,1); all float32.
    """
    g = gaussians.detach().to("cpu", torch.float64)
    centers = frame.to_display(g.means.numpy())
    cov = covariances(g.log_scales, g.quats).numpy() * frame.scale**2
    rgbs = sh_to_rgb(g.sh_dc).clamp(0, 1).numpy()
    return {
        "centers": centers.astype(np.float32),
        "covariances": cov.astype(np.float32),
        "rgbs": rgbs.astype(np.float32),
        "opacities": g.opacities.numpy().reshape(-1, 1).astype(np.float32),
    }
