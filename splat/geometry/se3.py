"""SO(3)/SE(3) helpers on batched tensors (built on roma).

Conventions: quaternions are scalar-first (w, x, y, z) as in the 3DGS .ply and COLMAP; roma is
scalar-last (x, y, z, w), so every call into roma converts. Rigid transforms are (..., 4, 4) with
last row [0, 0, 0, 1]; cameras are OpenCV world-to-camera (x right, y down, z forward).
"""

from __future__ import annotations

import math

import roma
import torch
from torch import Tensor


def quat_wxyz_to_rotmat(q: Tensor) -> Tensor:
    """Rotation matrices from quaternions (..., 4) wxyz; q is normalised first (any norm > 0).

    Written out rather than through roma: the renderer differentiates it, and the native projection
    kernel (splat/native/csrc/project_cpu.cpp) computes the same expressions.

    Returns:
        R: (..., 3, 3).
    """
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, -1).reshape(*q.shape[:-1], 3, 3)


def rotmat_to_quat_wxyz(R: Tensor) -> Tensor:
    """Unit quaternions (..., 4) wxyz from rotation matrices (..., 3, 3), sign chosen so w >= 0."""
    q = roma.rotmat_to_unitquat(R)
    q = torch.cat([q[..., 3:], q[..., :3]], -1)
    return torch.where(q[..., :1] < 0, -q, q)


def make_w2c(R: Tensor, t: Tensor) -> Tensor:
    """Rigid 4x4 transforms from rotations (..., 3, 3) and translations (..., 3)."""
    batch = torch.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    T = torch.zeros(*batch, 4, 4, dtype=R.dtype, device=R.device)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1
    return T


def invert_rigid(T: Tensor) -> Tensor:
    """Inverse of rigid transforms (..., 4, 4): [R^T, -R^T t] (exact, no general matrix inverse)."""
    Rt = T[..., :3, :3].transpose(-1, -2)
    return make_w2c(Rt, -(Rt @ T[..., :3, 3:4])[..., 0])


def _skew(w: Tensor) -> Tensor:
    """Cross-product matrices (..., 3, 3) of vectors (..., 3)."""
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*w.shape[:-1], 3, 3)


def _series(theta2: Tensor, coeffs: list[float]) -> Tensor:
    """sum_k coeffs[k] * theta2**k by Horner's rule."""
    out = torch.full_like(theta2, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        out = out * theta2 + c
    return out


def se3_exp(xi: Tensor) -> Tensor:
    """Exponential map of SE(3): twists (..., 6) = [rho, omega] -> rigid transforms (..., 4, 4).

    The true group exponential: R = exp([omega]x) (roma.rotvec_to_rotmat) and t = V rho with
    V = I + (1 - cos th)/th^2 [omega]x + (th - sin th)/th^3 [omega]x^2, th = |omega|. Below
    th = 0.5 the coefficients come from their Taylor series, so values and gradients stay exact
    and finite at xi = 0. Pose refinement applies a delta by left multiplication,
    `w2c_new = se3_exp(xi) @ w2c`, i.e. the twist is expressed in the camera frame.
    """
    rho, omega = xi[..., :3], xi[..., 3:]
    theta2 = (omega * omega).sum(-1)
    small = theta2 < 0.25
    th = torch.where(small, torch.ones_like(theta2), theta2).sqrt()  # safe: no NaN grads at 0
    a_big = (1 - torch.cos(th)) / th**2
    b_big = (th - torch.sin(th)) / th**3
    f = math.factorial
    a = torch.where(small, _series(theta2, [(-1) ** k / f(2 * k + 2) for k in range(7)]), a_big)
    b = torch.where(small, _series(theta2, [(-1) ** k / f(2 * k + 3) for k in range(7)]), b_big)
    W = _skew(omega)
    eye = torch.eye(3, dtype=xi.dtype, device=xi.device)
    V = eye + a[..., None, None] * W + b[..., None, None] * (W @ W)
    return make_w2c(roma.rotvec_to_rotmat(omega), (V @ rho[..., None])[..., 0])


def look_at_w2c(eye: Tensor, target: Tensor, up: Tensor) -> Tensor:
    """OpenCV world-to-camera transforms (..., 4, 4) for cameras at eye (..., 3) looking at target.

    The camera z axis points at target, y points down (opposite to up, projected), x = y cross z.
    Where up is parallel to the viewing direction another world axis is used for up.
    """
    eye, target, up = torch.broadcast_tensors(eye, target, up.to(eye))
    z = torch.nn.functional.normalize(target - eye, dim=-1)
    x = torch.linalg.cross(z, up)
    alt = torch.zeros_like(up)
    alt[..., 0] = torch.where(z[..., 0].abs() < 0.9, 1.0, 0.0)
    alt[..., 1] = 1 - alt[..., 0]
    degenerate = x.norm(dim=-1, keepdim=True) < 1e-8 * up.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    x = torch.where(degenerate, torch.linalg.cross(z, alt), x)
    x = torch.nn.functional.normalize(x, dim=-1)
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z], -2)
    return make_w2c(R, -(R @ eye[..., None])[..., 0])


def rotation_angle_deg(R1: Tensor, R2: Tensor) -> Tensor:
    """Angle in degrees (...,) of the relative rotation R1^T R2, accurate for small angles too."""
    M = R1.transpose(-1, -2) @ R2
    s = torch.stack(
        [M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]], -1
    )
    cos = (M[..., 0, 0] + M[..., 1, 1] + M[..., 2, 2] - 1) / 2
    return torch.rad2deg(torch.atan2(s.norm(dim=-1) / 2, cos))
