"""Spherical harmonics colour: constants, conversions and evaluation (3DGS real SH basis)."""

from __future__ import annotations

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (
    1.0925484305920792,
    -1.0925484305920792,
    0.31539156525252005,
    -1.0925484305920792,
    0.5462742152960396,
)
SH_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """RGB in [0,1] (...,3) -> SH DC coefficients (...,3)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh_dc: Tensor) -> Tensor:
    """SH DC coefficients (...,3) -> view-independent RGB (...,3), not clamped."""
    return sh_dc * SH_C0 + 0.5


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per channel up to `degree`: (degree+1)^2."""
    return (degree + 1) ** 2


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """Real SH basis (3DGS sign convention) at unit directions (N,3) -> (N, (degree+1)^2)."""
    x, y, z = dirs.unbind(-1)
    out = [dirs.new_full(x.shape, SH_C0)]
    if degree >= 1:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            SH_C2[0] * x * y,
            SH_C2[1] * y * z,
            SH_C2[2] * (2 * zz - xx - yy),
            SH_C2[3] * x * z,
            SH_C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            SH_C3[0] * y * (3 * xx - yy),
            SH_C3[1] * x * y * z,
            SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            SH_C3[4] * x * (4 * zz - xx - yy),
            SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, sh: Tensor, dirs: Tensor | None, sh_rest: Tensor | None = None) -> Tensor:
    """Evaluate SH colour (without the +0.5 offset and without clamping).

    Args:
        degree: 0..3, the highest band used.
        sh: all coefficients (N, K+1, 3) with K+1 >= (degree+1)^2, or the DC (N, 3) when `sh_rest` is given.
        dirs: unit view directions (N, 3) (Gaussian mean minus camera centre); unused for degree 0.
        sh_rest: optional higher-order coefficients (N, K, 3).

    Returns:
        (N, 3) sum_k basis_k(dir) * sh_k. The renderer adds 0.5 and clamps at 0.
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be in 0..3, got {degree}")
    dc = sh if sh_rest is not None else sh[:, 0]
    if degree == 0:
        return SH_C0 * dc
    rest = sh_rest if sh_rest is not None else sh[:, 1:]
    n = num_sh_bases(degree)
    if rest.shape[1] < n - 1:
        raise ValueError(f"SH degree {degree} needs {n - 1} rest coefficients, got {rest.shape[1]}")
    basis = sh_basis(degree, dirs)  # (N, n)
    return SH_C0 * dc + (basis[:, 1:, None] * rest[:, : n - 1]).sum(1)
