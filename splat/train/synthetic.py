"""Small synthetic scenes for tests and benchmarks: random Gaussians seen by cameras on an arc."""

from __future__ import annotations

import torch
from torch import Tensor

from splat.geometry.se3 import look_at_w2c
from splat.types import Cameras, Gaussians


def arc_cameras(
    n_views: int, width: int = 64, height: int = 48, radius: float = 3.0, arc: float = 1.2
) -> Cameras:
    """Cameras on a horizontal arc (radians) of the given radius, all looking at the origin (float32)."""
    ang = torch.linspace(0, arc, n_views) if n_views > 1 else torch.zeros(1)
    eye = torch.stack([radius * torch.sin(ang), 0.3 * torch.ones(n_views), -radius * torch.cos(ang)], -1)
    w2c = look_at_w2c(eye, torch.zeros(n_views, 3), torch.tensor([0.0, -1.0, 0.0]).expand(n_views, 3))
    f = 0.9 * width
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]]).repeat(n_views, 1, 1)
    return Cameras(K, w2c, [width] * n_views, [height] * n_views)


def random_gaussians(
    n: int,
    sh_degree: int = 1,
    spread: float = 0.6,
    log_scale: float = -2.3,
    generator: torch.Generator | None = None,
) -> Gaussians:
    """n Gaussians around the origin (normal means of std `spread`), fairly opaque, random colours."""
    K = (sh_degree + 1) ** 2 - 1

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator)

    return Gaussians(
        means=randn(n, 3) * spread,
        log_scales=log_scale + 0.3 * randn(n, 3),
        quats=torch.nn.functional.normalize(randn(n, 4), dim=-1),
        opacity_logits=randn(n) + 1.0,
        sh_dc=randn(n, 3),
        sh_rest=0.3 * randn(n, K, 3),
    )


@torch.no_grad()
def render_views(gaussians: Gaussians, cameras: Cameras, backend: str = "auto") -> list[Tensor]:
    """Ground-truth images (H, W, 3) in [0, 1], one per view."""
    from splat.render import render

    return [render(gaussians, cameras[v], backend=backend).image.clamp(0, 1) for v in range(len(cameras))]


def fastest_cpu_backend() -> str:
    """'cpu' when the native kernel builds and loads, else the 'torch' reference."""
    from splat.native import build

    return "cpu" if build.available() else "torch"
