"""CUDA backend: gsplat's `rasterization()` (gsplat >= 1.0), imported lazily, CUDA tensors only.

Conventions map one to one: viewmats = w2c (OpenCV), Ks = COLMAP K, quats wxyz, scales = exp(log_scales),
pixel centres at +0.5. Note: gsplat gives no gradient to K (the pose gets one).
"""

from __future__ import annotations

import torch
from torch import Tensor

from splat.errors import SplatError


def require_cuda(*tensors: Tensor) -> None:
    """Raise SplatError unless every tensor is on a CUDA device."""
    if not all(t.is_cuda for t in tensors):
        # Never hand CPU tensors to gsplat: on a machine with nvcc that starts a CUDA build that fails.
        raise SplatError("backend='cuda' needs CUDA tensors; move the Gaussians and camera with .to('cuda')")


def _rasterization():
    try:
        from gsplat import rasterization
    except ImportError as e:
        raise SplatError(f"backend='cuda' needs gsplat ({e}); install it with `pip install gsplat`") from e
    return rasterization


def render_gsplat(
    means: Tensor,  # (N, 3)
    log_scales: Tensor,  # (N, 3)
    quats: Tensor,  # (N, 4) wxyz
    opacities: Tensor,  # (N,) in [0, 1]
    colors: Tensor,  # (N, K, 3) SH coefficients when sh_degree is set, else (N, 3) RGB
    K: Tensor,  # (3, 3)
    w2c: Tensor,  # (4, 4)
    width: int,
    height: int,
    *,
    sh_degree: int | None,
    background: Tensor,  # (3,)
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
    antialias: bool = False,
    tile_size: int = 16,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Render one view with gsplat.

    Returns:
        image (H, W, 3), alpha (H, W), depth (H, W) alpha-weighted (not normalised),
        radii (N,) int32, means2d (1, N, 2) gsplat's own screen means (call retain_grad() on it).
    """
    require_cuda(means, log_scales, quats, opacities, colors, K, w2c, background)
    rasterization = _rasterization()
    render_colors, render_alphas, meta = rasterization(
        means,
        quats,
        log_scales.exp(),
        opacities,
        colors,
        w2c[None],
        K[None],
        width,
        height,
        near_plane=near,
        far_plane=far,
        eps2d=eps2d,
        sh_degree=sh_degree,
        packed=False,
        tile_size=tile_size,
        backgrounds=background[None],
        render_mode="RGB+D",  # accumulated depth sum_i w_i z_i, like the other backends
        rasterize_mode="antialiased" if antialias else "classic",
    )
    radii = meta["radii"][0]  # (N,) in gsplat < 1.5, (N, 2) per-axis in later versions
    if radii.dim() == 2:
        radii = torch.where((radii > 0).all(-1), radii.amax(-1), torch.zeros_like(radii[:, 0]))
    image = render_colors[0, ..., :3]
    depth = render_colors[0, ..., 3]
    return image, render_alphas[0, ..., 0], depth, radii.to(torch.int32), meta["means2d"]
