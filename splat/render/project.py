"""EWA projection of 3D Gaussians to screen-space 2D Gaussians (pinhole camera, COLMAP pixels).

Everything except `radii` is differentiable w.r.t. means, log_scales, quats, w2c and K.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from splat.geometry.se3 import quat_wxyz_to_rotmat


@dataclass
class Projected:
    """Screen-space Gaussians for one view; entries with radii == 0 are culled.

    Attributes:
        means2d: (N, 2) pixel coordinates, COLMAP convention (pixel (x, y) has centre (x+0.5, y+0.5)).
        conics: (N, 3) (a, b, c) of the inverse 2D covariance [[a, b], [b, c]].
        depths: (N,) camera-space z.
        radii: (N,) int32 footprint radius in pixels; 0 = culled.
        opacity_compensation: (N,) factor multiplying opacity (antialias mode) or None.
        cov2d: (N, 2, 2) 2D covariance including the eps2d low-pass.
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor
    opacity_compensation: Tensor | None
    cov2d: Tensor


def covariance_camera(log_scales: Tensor, quats: Tensor, R_w2c: Tensor) -> Tensor:
    """Camera-space 3D covariance R_w2c (Rq S S^T Rq^T) R_w2c^T, (N, 3, 3)."""
    M = R_w2c @ quat_wxyz_to_rotmat(quats) * log_scales.exp()[:, None, :]  # (N,3,3) = R_w2c Rq S
    return M @ M.transpose(1, 2)


def _jacobian(p_cam: Tensor, z: Tensor, K: Tensor, width: int, height: int) -> Tensor:
    """Pinhole Jacobian (N, 2, 3) at the camera-space mean, x/z and y/z clamped to 1.3x the FoV."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    # Asymmetric limits reduce to 3DGS's 1.3 * tan(fov/2) when the principal point is centred.
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    tx = z * torch.minimum(torch.maximum(p_cam[:, 0] / z, -lim_x_neg), lim_x_pos)
    ty = z * torch.minimum(torch.maximum(p_cam[:, 1] / z, -lim_y_neg), lim_y_pos)
    zero = torch.zeros_like(z)
    row0 = torch.stack([fx / z, zero, -fx * tx / (z * z)], -1)
    row1 = torch.stack([zero, fy / z, -fy * ty / (z * z)], -1)
    return torch.stack([row0, row1], -2)


@torch.no_grad()
def _radii(cov2d: Tensor, det: Tensor, means2d: Tensor, ok: Tensor, width: int, height: int) -> Tensor:
    """ceil(3 sqrt(largest eigenvalue)); 0 where culled or the footprint misses the image. (N,) int32."""
    a, c = cov2d[:, 0, 0], cov2d[:, 1, 1]
    mid = 0.5 * (a + c)
    lam = mid + (mid * mid - det).clamp_min(0).sqrt()
    r = torch.ceil(3 * lam.clamp_min(0).sqrt())
    mx, my = means2d[:, 0], means2d[:, 1]
    inside = (mx + r > 0) & (mx - r < width) & (my + r > 0) & (my - r < height)
    keep = ok & (det > 0) & inside & torch.isfinite(r) & torch.isfinite(means2d).all(-1)
    return torch.where(keep, r, torch.zeros_like(r)).clamp_max(2**30).to(torch.int32)


def project_gaussians(
    means: Tensor,
    log_scales: Tensor,
    quats: Tensor,
    w2c: Tensor,
    K: Tensor,
    width: int,
    height: int,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
    antialias: bool = False,
) -> Projected:
    """Project Gaussians (means (N,3), log_scales (N,3), quats wxyz (N,4)) into one view.

    Args:
        w2c: (4, 4) OpenCV world-to-camera. K: (3, 3) COLMAP pinhole intrinsics.
        near, far: camera-space z range kept; outside it radii = 0.
        eps2d: added to the 2D covariance diagonal (the 0.3 px low-pass filter).
        antialias: also return sqrt(det(cov2d) / det(cov2d + eps2d I)) (Mip-Splatting / gsplat 'antialiased').
    """
    R, t = w2c[:3, :3], w2c[:3, 3]
    p_cam = means @ R.T + t
    z_raw = p_cam[:, 2]
    in_depth = (z_raw >= near) & (z_raw <= far)
    z = torch.where(in_depth, z_raw, torch.ones_like(z_raw))  # finite maths (and grads) for culled ones
    J = _jacobian(p_cam, z, K, width, height)
    cov2d = J @ covariance_camera(log_scales, quats, R) @ J.transpose(1, 2)
    det_orig = cov2d[:, 0, 0] * cov2d[:, 1, 1] - cov2d[:, 0, 1] * cov2d[:, 1, 0]
    cov2d = cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)
    a, b, c = cov2d[:, 0, 0], 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0]), cov2d[:, 1, 1]
    det = a * c - b * b
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1)
    means2d = torch.stack([K[0, 0] * p_cam[:, 0] / z + K[0, 2], K[1, 1] * p_cam[:, 1] / z + K[1, 2]], -1)
    comp = None
    if antialias:
        comp = (det_orig / det_safe).clamp_min(1e-12).sqrt()
    radii = _radii(cov2d.detach(), det.detach(), means2d.detach(), in_depth, width, height)
    return Projected(means2d, conics, z_raw, radii, comp, cov2d)
