"""Server-side rendering of one view for the viewer: our renderer, full SH.

Uses `splat.render.render` when it exists; until then (or if it fails to import) the torch
reference pieces (projection, SH, tiled compositing) give the same image more slowly.
"""

from __future__ import annotations

import numpy as np
import torch

from splat.types import Cameras, Gaussians


def one_view(w2c: np.ndarray, K: np.ndarray, width: int, height: int, device=None) -> Cameras:
    """A one-view `Cameras` from numpy w2c (4,4) and K (3,3)."""
    return Cameras(
        torch.as_tensor(K, dtype=torch.float32, device=device)[None],
        torch.as_tensor(w2c, dtype=torch.float32, device=device)[None],
        [int(width)],
        [int(height)],
    )


def _render_reference(gaussians: Gaussians, camera: Cameras, background: torch.Tensor) -> torch.Tensor:
    from splat.render.composite_torch import composite_torch
    from splat.render.project import project_gaussians
    from splat.render.sh import eval_sh

    W, H = int(camera.width[0]), int(camera.height[0])
    g = gaussians
    p = project_gaussians(g.means, g.log_scales, g.quats, camera.w2c[0], camera.K[0], W, H)
    dirs = torch.nn.functional.normalize(gaussians.means - camera.centers[0], dim=-1)
    colors = (eval_sh(gaussians.sh_degree, gaussians.sh_dc, dirs, gaussians.sh_rest) + 0.5).clamp_min(0)
    image, _, _ = composite_torch(
        p.means2d, p.conics, colors, gaussians.opacities, p.depths, p.radii, W, H, background
    )
    return image


def render_rgb(
    gaussians: Gaussians, camera: Cameras, background: tuple[float, float, float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    """Render a one-view camera -> (H, W, 3) uint8, on the Gaussians' device, without gradients."""
    bg = torch.tensor(background, dtype=gaussians.dtype, device=gaussians.device)
    camera = camera.to(device=gaussians.device, dtype=gaussians.dtype)
    with torch.no_grad():
        try:
            from splat.render import render
        except ImportError:
            image = _render_reference(gaussians, camera, bg)
        else:
            image = render(gaussians, camera, background=bg).image
    return (image.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
