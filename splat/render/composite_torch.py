"""Tiled alpha compositing in pure PyTorch: the reference twin of the native kernels.

Implements docs/RASTER_CONTRACT.md exactly; autograd provides the backward. Tiles are processed in
chunks: each chunk pads its per-tile Gaussian lists to the chunk's longest list and evaluates all
(tile, Gaussian, pixel) triples at once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4


def tile_ranges(means2d: Tensor, radii: Tensor, width: int, height: int, tile_size: int = 16) -> Tensor:
    """Tile rectangle [x0, x1) x [y0, y1) of each Gaussian, (N, 4) int64 (x0, x1, y0, y1); empty if culled."""
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    m = means2d.detach().float()
    r = radii.to(torch.float32)

    def rng(mu: Tensor, n: int) -> tuple[Tensor, Tensor]:
        lo = torch.floor((mu - r) / tile_size).clamp(0, n)
        hi = (torch.floor((mu + r) / tile_size) + 1).clamp(0, n)
        return lo.nan_to_num(0).long(), hi.nan_to_num(0).long()

    x0, x1 = rng(m[:, 0], tiles_x)
    y0, y1 = rng(m[:, 1], tiles_y)
    culled = radii <= 0
    x1 = torch.where(culled, x0, x1)
    return torch.stack([x0, x1, y0, y1], -1)


def bin_gaussians(
    means2d: Tensor, radii: Tensor, depths: Tensor, width: int, height: int, tile_size: int = 16
) -> tuple[Tensor, Tensor]:
    """Tile/Gaussian intersections sorted by (tile, depth, index).

    Returns:
        gaussian_ids: (M,) int64, Gaussians of tile 0 front to back, then tile 1, ...
        tile_counts: (tiles_y * tiles_x,) int64 intersections per tile (row-major tiles).
    """
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    x0, x1, y0, y1 = tile_ranges(means2d, radii, width, height, tile_size).unbind(-1)
    w, h = (x1 - x0).clamp_min(0), (y1 - y0).clamp_min(0)
    counts = w * h
    # Visit Gaussians in (depth, index) order so a final stable sort by tile keeps that order.
    order = torch.sort(depths.detach(), stable=True).indices
    counts_o = counts[order]
    gid = torch.repeat_interleave(order, counts_o)
    start = torch.cumsum(counts_o, 0) - counts_o
    local = torch.arange(gid.numel(), device=gid.device) - torch.repeat_interleave(start, counts_o)
    tx = x0[gid] + local % w[gid].clamp_min(1)
    ty = y0[gid] + torch.div(local, w[gid].clamp_min(1), rounding_mode="floor")
    tile = ty * tiles_x + tx
    tile_sorted, perm = torch.sort(tile, stable=True)
    tile_counts = torch.bincount(tile_sorted, minlength=tiles_x * tiles_y)
    return gid[perm], tile_counts


def _chunks(lengths: list[int], budget: int) -> list[tuple[int, int, int]]:
    """Split a descending list of lengths into runs with n * max_len <= budget: (start, stop, max_len)."""
    out, start = [], 0
    while start < len(lengths):
        longest = lengths[start]
        stop = start + max(1, budget // max(longest, 1))
        out.append((start, min(stop, len(lengths)), longest))
        start = stop
    return out


def _composite_chunk(
    idx: Tensor, tile_ids: Tensor, feats: tuple[Tensor, ...], tiles_x: int, tile_size: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Composite a chunk of B tiles whose padded Gaussian lists are idx (B, L) (pad = index of a dummy).

    Returns colour (B, P, 3), final transmittance (B, P), depth (B, P) with P = tile_size^2.
    """
    means2d, conics, colors, opacities, depths = feats
    dtype = means2d.dtype
    k = torch.arange(tile_size * tile_size, device=idx.device)
    px = (tile_ids % tiles_x)[:, None] * tile_size + k % tile_size  # (B, P)
    py = torch.div(tile_ids, tiles_x, rounding_mode="floor")[:, None] * tile_size + k // tile_size
    m, cn = means2d[idx][:, None], conics[idx][:, None]  # (B, 1, L, 2), (B, 1, L, 3)
    dx = m[..., 0] - (px.to(dtype) + 0.5)[..., None]  # (B, P, L)
    dy = m[..., 1] - (py.to(dtype) + 0.5)[..., None]
    sigma = 0.5 * (cn[..., 0] * dx * dx + cn[..., 2] * dy * dy) + cn[..., 1] * dx * dy
    alpha = (opacities[idx][:, None] * torch.exp(-sigma.clamp_min(0))).clamp_max(ALPHA_MAX)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, 0.0)
    with torch.no_grad():  # a Gaussian is composited only while T stays >= T_MIN (a prefix mask)
        stopped = torch.cumprod(1 - alpha, dim=2) < T_MIN
    alpha = alpha.masked_fill(stopped, 0.0)
    trans = torch.cumprod(1 - alpha, dim=2)  # (B, P, L): T after each Gaussian
    weight = alpha * torch.cat([torch.ones_like(trans[..., :1]), trans[..., :-1]], 2)
    color_depth = torch.cat([colors[idx], depths[idx][..., None]], -1)  # (B, L, 4)
    out = weight @ color_depth  # (B, P, 4)
    return out[..., :3], trans[..., -1], out[..., 3]


def _pad_one(x: Tensor) -> Tensor:
    """Append one all-zero row: (N, ...) -> (N+1, ...)."""
    return torch.cat([x, x.new_zeros(1, *x.shape[1:])])


def composite_torch(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    background: Tensor,
    tile_size: int = 16,
    chunk_budget: int = 2048,
) -> tuple[Tensor, Tensor, Tensor]:
    """Alpha-composite screen-space Gaussians front to back (docs/RASTER_CONTRACT.md).

    Args:
        means2d (N,2), conics (N,3), colors (N,3), opacities (N,), depths (N,), radii (N,) int.
        background: (3,). chunk_budget: max (tiles x padded list length) evaluated at once.

    Returns:
        image (H, W, 3) = C + T_final * background, alpha (H, W) = 1 - T_final,
        depth (H, W) = sum of T * alpha * depth (not normalised).
    """
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    n_tiles, P = tiles_x * tiles_y, tile_size * tile_size
    dtype, device = means2d.dtype, means2d.device
    gids, counts = bin_gaussians(means2d, radii, depths, width, height, tile_size)
    # One dummy Gaussian (index N, all zeros: opacity 0) pads the per-tile lists.
    feats = tuple(_pad_one(x) for x in (means2d, conics, colors, opacities, depths))
    n = means2d.shape[0]
    offsets = torch.cumsum(counts, 0) - counts
    tile_order = torch.sort(counts, descending=True, stable=True).indices  # similar lengths share a chunk
    lengths = counts[tile_order].tolist()
    colors_out, trans_out, depth_out = [], [], []
    for start, stop, longest in _chunks(lengths, chunk_budget):
        tile_ids = tile_order[start:stop]
        B = tile_ids.numel()
        if longest == 0:
            colors_out.append(torch.zeros(B, P, 3, dtype=dtype, device=device))
            trans_out.append(torch.ones(B, P, dtype=dtype, device=device))
            depth_out.append(torch.zeros(B, P, dtype=dtype, device=device))
            continue
        slot = torch.arange(longest, device=device)
        src = (offsets[tile_ids][:, None] + slot).clamp_max(gids.numel() - 1)
        idx = torch.where(slot < counts[tile_ids][:, None], gids[src], n)
        c, t, d = _composite_chunk(idx, tile_ids, feats, tiles_x, tile_size)
        colors_out.append(c)
        trans_out.append(t)
        depth_out.append(d)
    inverse = torch.argsort(tile_order)
    color, trans, depth = (torch.cat(x)[inverse] for x in (colors_out, trans_out, depth_out))

    def untile(x: Tensor) -> Tensor:  # (n_tiles, P, ...) -> (H, W, ...)
        x = x.reshape(tiles_y, tiles_x, tile_size, tile_size, *x.shape[2:]).transpose(1, 2)
        return x.reshape(tiles_y * tile_size, tiles_x * tile_size, *x.shape[4:])[:height, :width]

    assert color.shape[0] == n_tiles
    T = untile(trans)
    image = untile(color) + T[..., None] * background.to(dtype)
    return image, 1 - T, untile(depth)
