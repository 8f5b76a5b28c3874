"""Training inputs: images as float tensors, and resizing views to a maximum side."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from splat.types import Cameras


def image_tensor(image: Tensor | np.ndarray, device=None) -> Tensor:
    """One image (H, W, 3) as float32 in [0, 1] on `device` (uint8 is divided by 255)."""
    t = torch.from_numpy(np.ascontiguousarray(image)) if isinstance(image, np.ndarray) else image
    if t.dtype == torch.uint8:
        t = t.float() / 255
    if t.ndim != 3 or t.shape[-1] != 3:
        raise ValueError(f"training images must be (H, W, 3), got {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.float32)


def image_tensors(images: Tensor | Sequence, device=None) -> list[Tensor]:
    """(V, H, W, 3) tensor or a sequence of (H, W, 3) arrays/tensors -> list of float32 tensors."""
    return [image_tensor(im, device) for im in images]


def check_sizes(cameras: Cameras, images: list[Tensor]) -> None:
    """ValueError unless every image is exactly its camera's width x height."""
    if len(cameras) != len(images):
        raise ValueError(f"{len(cameras)} cameras but {len(images)} images")
    for v, im in enumerate(images):
        w, h = int(cameras.width[v]), int(cameras.height[v])
        if im.shape[:2] != (h, w):
            raise ValueError(
                f"image {cameras.names[v]} is {im.shape[1]}x{im.shape[0]} but its camera is {w}x{h}"
            )


def limit_side(cameras: Cameras, images: list[Tensor], max_side: int | None) -> tuple[Cameras, list[Tensor]]:
    """Downscale views whose longer side exceeds max_side (area filter); K scaled to match.

    K scales per axis by new/old size, exact for COLMAP's convention (pixel centres at +0.5).
    """
    if not max_side:
        return cameras, images
    K, width, height, out = cameras.K.clone(), cameras.width.clone(), cameras.height.clone(), []
    for v, im in enumerate(images):
        h, w = im.shape[:2]
        s = max_side / max(h, w)
        if s >= 1:
            out.append(im)
            continue
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        small = F.interpolate(im.permute(2, 0, 1)[None], size=(nh, nw), mode="area")[0].permute(1, 2, 0)
        out.append(small.contiguous())
        K[v, 0] *= nw / w
        K[v, 1] *= nh / h
        width[v], height[v] = nw, nh
    return Cameras(K, cameras.w2c.clone(), width, height, list(cameras.names)), out


def resolution_levels(
    cameras: Cameras, images: list[Tensor], factors, min_side: int
) -> dict[int, tuple[Cameras, list[Tensor]]]:
    """factor -> (cameras, images) downscaled by that factor (limit_side), for each factor > 1 whose
    longer side stays >= min_side; factor 1 is the input itself."""
    levels = {1: (cameras, images)}
    longest = int(max(int(cameras.width.max()), int(cameras.height.max())))
    for factor in factors:
        if factor > 1 and longest // factor >= min_side:
            levels[factor] = limit_side(cameras, images, longest // factor)
    return levels


def psnr_value(image: Tensor, gt: Tensor) -> float:
    """PSNR in dB of one (H, W, 3) image clamped to [0, 1]."""
    mse = float((image.detach().clamp(0, 1) - gt).square().mean())
    return -10 * math.log10(mse) if mse > 0 else float("inf")
