"""render(): one differentiable view of a set of Gaussians, on one of three backends.

backend "torch": projection + SH colour in PyTorch (project_torch, autograd reaches the Gaussians,
the pose and K) and `composite_torch`: the reference. backend "cpu": the same two steps in the
native C++ extension (project_cpu with a hand-written exact backward, composite_cpu).
backend "cuda": gsplat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from splat.config import BACKENDS
from splat.errors import SplatError
from splat.geometry.camera import camera_centers
from splat.native import build as native_build
from splat.native.ops import composite_cpu, project_cpu
from splat.render.composite_torch import composite_torch
from splat.render.project import project_gaussians
from splat.render.sh import SH_C0, eval_sh
from splat.types import Cameras, Gaussians


@dataclass(frozen=True)
class RenderSettings:
    """Rarely changed rendering options.

    Attributes:
        near, far: camera-space z range drawn.
        eps2d: 2D covariance low-pass in pixels^2 (0.3 as in 3DGS).
        antialias: Mip-Splatting opacity compensation (gsplat's 'antialiased' mode).
        tile_size: compositing tile edge in pixels; None: the backend's own (cpu 64, torch and cuda 16).
            A Gaussian is drawn on the pixels of the tiles its radius reaches (where alpha >= 1/255),
            so the tile size only decides how much of the far tail beyond the radius is drawn; the
            native kernel runs fastest with 64 px tiles (fewer tile-Gaussian pairs: docs/PERF.md).
        clamp_colors: clamp SH colours at 0 (as 3DGS and gsplat do).
    """

    near: float = 0.01
    far: float = 1e10
    eps2d: float = 0.3
    antialias: bool = False
    tile_size: int | None = None
    clamp_colors: bool = True


@dataclass
class RenderOutput:
    """One rendered view.

    Attributes:
        image: (H, W, 3) colour, background included.
        alpha: (H, W) accumulated opacity 1 - T_final.
        depth: (H, W) alpha-weighted depth sum_i w_i z_i (not normalised; see normalized_depth()).
        radii: (N,) int32 screen footprint radius, 0 = not drawn.
        visible: (N,) bool, radii > 0.
        means2d: (N, 2) pixel positions; for torch/cpu it retains its grad (read `means2d_grad`).
        backend: the backend that ran ("torch", "cpu" or "cuda").
    """

    image: Tensor
    alpha: Tensor
    depth: Tensor
    radii: Tensor
    visible: Tensor
    means2d: Tensor
    backend: str
    means2d_graph: Tensor | None = field(default=None, repr=False)  # tensor whose .grad holds dL/dmeans2d

    def normalized_depth(self, eps: float = 1e-6) -> Tensor:
        """Expected depth per pixel, depth / alpha, (H, W); 0 where alpha is ~0."""
        return torch.where(self.alpha > eps, self.depth / self.alpha.clamp_min(eps), 0.0)

    @property
    def means2d_grad(self) -> Tensor | None:
        """dLoss/dmeans2d (N, 2) after backward(), or None."""
        g = (self.means2d_graph if self.means2d_graph is not None else self.means2d).grad
        return None if g is None else g.reshape(-1, 2)


def camera_parts(camera: Cameras | Sequence) -> tuple[Tensor, Tensor, int, int]:
    """A one-view Cameras or (K (3,3), w2c (4,4), width, height) -> (K, w2c, width, height)."""
    if isinstance(camera, Cameras):
        if len(camera) != 1:
            raise ValueError(f"render() takes one view, got Cameras with {len(camera)} views (index it)")
        return camera.K[0], camera.w2c[0], int(camera.width[0]), int(camera.height[0])
    K, w2c, width, height = camera
    return K, w2c, int(width), int(height)


def gaussian_colors(gaussians: Gaussians, w2c: Tensor, sh_degree: int, clamp: bool = True) -> Tensor:
    """View-dependent RGB (N, 3): SH at the view direction (mean - camera centre) + 0.5, clamped >= 0."""
    if sh_degree == 0:
        rgb = SH_C0 * gaussians.sh_dc
    else:
        dirs = torch.nn.functional.normalize(gaussians.means - camera_centers(w2c), dim=-1)
        rgb = eval_sh(sh_degree, gaussians.sh_dc, dirs, sh_rest=gaussians.sh_rest)
    rgb = rgb + 0.5
    return rgb.clamp_min(0) if clamp else rgb


def project_torch(
    gaussians: Gaussians,
    w2c: Tensor,
    K: Tensor,
    width: int,
    height: int,
    sh_degree: int,
    settings: RenderSettings,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Screen-space Gaussians in PyTorch (the reference twin of project_cpu.project_cpu).

    Returns means2d (N,2), conics (N,3), colors (N,3), opacities (N,), depths (N,), radii (N,) int32.
    """
    s = settings
    proj = project_gaussians(
        gaussians.means, gaussians.log_scales, gaussians.quats, w2c, K, width, height,
        near=s.near, far=s.far, eps2d=s.eps2d, antialias=s.antialias,
    )  # fmt: skip
    opacities = gaussians.opacities
    if proj.opacity_compensation is not None:
        opacities = opacities * proj.opacity_compensation
    colors = gaussian_colors(gaussians, w2c, sh_degree, s.clamp_colors)
    return proj.means2d, proj.conics, colors, opacities, proj.depths, proj.radii


def _project_native(
    gaussians: Gaussians,
    w2c: Tensor,
    K: Tensor,
    width: int,
    height: int,
    sh_degree: int,
    settings: RenderSettings,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    s = settings
    return project_cpu(
        gaussians, w2c, K, width, height, sh_degree,
        near=s.near, far=s.far, eps2d=s.eps2d, antialias=s.antialias, clamp_colors=s.clamp_colors,
    )  # fmt: skip


def native_backend():
    """(project, composite) of the native CPU kernel (built on first use); SplatError if unavailable."""
    try:
        native_build.load()
    except SplatError as e:
        raise SplatError(f"the native CPU rasterizer is unavailable ({e}); use backend='torch'") from e
    return _project_native, composite_cpu


def _pick_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown render backend {backend!r}; choose one of {BACKENDS}")
    if backend != "auto":
        return backend
    if device.type == "cuda":
        return "cuda"
    return "cpu" if dtype == torch.float32 and native_build.available() else "torch"


def render(
    gaussians: Gaussians,
    camera: Cameras | Sequence,
    *,
    sh_degree: int | None = None,
    background: Tensor | Sequence[float] | None = None,
    backend: str = "auto",
    settings: RenderSettings = RenderSettings(),  # noqa: B008 (frozen, immutable)
) -> RenderOutput:
    """Render one view of `gaussians`.

    Args:
        gaussians: N Gaussians (any may require grad).
        camera: one-view Cameras, or (K (3,3), w2c (4,4), width, height); K and w2c may require grad.
        sh_degree: SH bands used, default all that are stored.
        background: (3,) RGB, default black.
        backend: "torch" (reference), "cpu" (native kernel), "cuda" (gsplat) or "auto"
            (cuda for CUDA tensors, else cpu when the native kernel loads and dtype is float32, else torch).
        settings: RenderSettings.
    """
    K, w2c, width, height = camera_parts(camera)
    degree = gaussians.sh_degree if sh_degree is None else int(sh_degree)
    if not 0 <= degree <= gaussians.sh_degree:
        raise ValueError(f"sh_degree {degree} not in 0..{gaussians.sh_degree} (the stored SH bands)")
    device, dtype = gaussians.device, gaussians.dtype
    bg = torch.zeros(3) if background is None else background
    bg = torch.as_tensor(bg, dtype=dtype).to(device).reshape(3)
    K, w2c = K.to(device=device, dtype=dtype), w2c.to(device=device, dtype=dtype)
    chosen = _pick_backend(backend, device, dtype)
    if chosen == "cuda":
        return _render_cuda(gaussians, K, w2c, width, height, degree, bg, settings)
    if chosen == "torch":
        project, composite = project_torch, composite_torch
    else:
        project, composite = native_backend()
    means2d, conics, colors, opacities, depths, radii = project(
        gaussians, w2c, K, width, height, degree, settings
    )
    tile = {} if settings.tile_size is None else {"tile_size": settings.tile_size}  # else the backend's own
    image, alpha, depth = composite(
        means2d, conics, colors, opacities, depths, radii, width, height, bg, **tile
    )
    if means2d.requires_grad:
        means2d.retain_grad()
    return RenderOutput(image, alpha, depth, radii, radii > 0, means2d, chosen)


def _render_cuda(
    g: Gaussians, K: Tensor, w2c: Tensor, width: int, height: int, degree: int, bg: Tensor, s: RenderSettings
) -> RenderOutput:
    from splat.render.gsplat_backend import render_gsplat, require_cuda

    require_cuda(g.means, K, w2c, bg)
    if len(g) == 0:  # nothing to draw: skip gsplat, which does not expect empty inputs
        zeros = torch.zeros(height, width, dtype=g.dtype, device=g.device)
        empty = torch.zeros(0, dtype=torch.int32, device=g.device)
        means2d = g.means.new_zeros(0, 2)
        return RenderOutput(
            bg.expand(height, width, 3).clone(), zeros, zeros.clone(), empty, empty > 0, means2d, "cuda"
        )
    if s.clamp_colors:
        colors, sh_arg = torch.cat([g.sh_dc[:, None], g.sh_rest[:, : (degree + 1) ** 2 - 1]], 1), degree
    else:
        colors, sh_arg = gaussian_colors(g, w2c, degree, clamp=False), None
    tile = {} if s.tile_size is None else {"tile_size": s.tile_size}
    image, alpha, depth, radii, means2d = render_gsplat(
        g.means, g.log_scales, g.quats, g.opacities, colors, K, w2c, width, height,
        sh_degree=sh_arg, background=bg, near=s.near, far=s.far, eps2d=s.eps2d,
        antialias=s.antialias, **tile,
    )  # fmt: skip
    if means2d.requires_grad:
        means2d.retain_grad()
    return RenderOutput(image, alpha, depth, radii, radii > 0, means2d.detach()[0], "cuda", means2d)
