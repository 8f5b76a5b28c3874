"""Server-side rendering of one view for the viewer: our renderer (`splat.render.render`), full SH."""

from __future__ import annotations

import numpy as np
import torch

from splat.io.images import to_uint8
from splat.types import Cameras, Gaussians


def one_view(w2c: np.ndarray, K: np.ndarray, width: int, height: int, device=None) -> Cameras:
    """A one-view `Cameras` from numpy w2c (4,4) and K (3,3)."""
    return Cameras(
        torch.as_tensor(K, dtype=torch.float32, device=device)[None],
        torch.as_tensor(w2c, dtype=torch.float32, device=device)[None],
        [int(width)],
        [int(height)],
    )


def render_rgb(
    gaussians: Gaussians,
    camera: Cameras,
    background: tuple[float, float, float] = (1.0, 1.0, 1.0),
    settings=None,
) -> np.ndarray:
    """Render a one-view camera -> (H, W, 3) uint8, on the Gaussians' device, without gradients; settings:
    splat.render.RenderSettings (None: the defaults)."""
    from splat.render import RenderSettings, render  # on first use: keeps `splat view` start-up short

    with torch.no_grad():
        image = render(gaussians, camera, background=background, settings=settings or RenderSettings()).image
    return to_uint8(image).cpu().numpy()
