"""A synthetic splat scene for the viewer's tests, screenshot and benchmark.

A checkered ground disc with three shaded balls on it, seen by a ring of cameras. World axes
follow the OpenCV habit of COLMAP scenes: y points down, so the ground is at y = +0.5.
"""

from __future__ import annotations

import math

import torch

from splat.geometry.se3 import look_at_w2c
from splat.render.sh import rgb_to_sh
from splat.types import Cameras, Gaussians

GROUND_Y, GROUND_RADIUS = 0.5, 2.0
BALLS = [  # (centre x, z, radius, rgb)
    (-0.75, 0.1, 0.45, (0.90, 0.30, 0.20)),
    (0.7, 0.3, 0.38, (0.15, 0.60, 0.65)),
    (0.05, -0.7, 0.32, (0.95, 0.75, 0.20)),
]
LIGHT = torch.tensor([0.4, -1.0, 0.3]) / math.sqrt(0.16 + 1 + 0.09)


def _ground(n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    r = GROUND_RADIUS * torch.rand(n, generator=gen).sqrt()
    a = 2 * math.pi * torch.rand(n, generator=gen)
    means = torch.stack([r * a.cos(), torch.full_like(r, GROUND_Y), r * a.sin()], -1)
    checker = ((means[:, 0] / 0.5).floor() + (means[:, 2] / 0.5).floor()).remainder(2)[:, None]
    rgb = checker * torch.tensor([0.85, 0.82, 0.72]) + (1 - checker) * torch.tensor([0.45, 0.55, 0.40])
    s = 0.6 * math.sqrt(math.pi * GROUND_RADIUS**2 / n)
    scales = torch.tensor([s, 0.1 * s, s]).expand(n, 3)
    return means, scales, rgb


def _balls(n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    areas = torch.tensor([r * r for _, _, r, _ in BALLS])
    which = torch.multinomial(areas, n, replacement=True, generator=gen)
    table = torch.tensor([[x, GROUND_Y - r, z, r, *rgb] for x, z, r, rgb in BALLS])[which]
    normals = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    means = table[:, :3] + table[:, 3:4] * normals
    shade = 0.55 + 0.6 * (normals @ -LIGHT).clamp_min(0)[:, None]
    s = (0.8 * (4 * math.pi * areas.sum() / n).sqrt()).item()
    return means, torch.full((n, 3), s), (table[:, 4:] * shade).clamp(0, 1)


def demo_cameras(views: int = 8, width: int = 320, height: int = 240) -> Cameras:
    """A ring of cameras above the scene looking at its middle."""
    a = torch.arange(views, dtype=torch.float64) * 2 * math.pi / views
    eye = torch.stack([3.2 * a.cos(), torch.full_like(a, -1.4), 3.2 * a.sin()], -1)
    target = torch.tensor([0.0, 0.2, 0.0], dtype=torch.float64)
    w2c = look_at_w2c(eye, target, torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64))
    f = 0.9 * width
    K = torch.tensor([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=torch.float64)
    K = K.repeat(views, 1, 1)
    return Cameras(K, w2c, [width] * views, [height] * views, [f"view_{v:02d}.png" for v in range(views)])


def demo_scene(n: int = 4000, seed: int = 0, sh_degree: int = 0) -> Gaussians:
    """n Gaussians (40% ground, 60% balls), opaque, SH DC colour (rest zero up to sh_degree)."""
    gen = torch.Generator().manual_seed(seed)
    n_ground = int(0.4 * n)
    parts = [_ground(n_ground, gen), _balls(n - n_ground, gen)]
    means, scales, rgb = (torch.cat(x).float() for x in zip(*parts))
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1
    K = (sh_degree + 1) ** 2 - 1
    return Gaussians(means, scales.log(), quats, torch.full((n,), 3.0), rgb_to_sh(rgb), torch.zeros(n, K, 3))
