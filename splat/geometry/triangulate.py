"""Batched linear (DLT) triangulation from many views, and reprojection errors."""

from __future__ import annotations

import torch
from torch import Tensor


def _hartley(uv: Tensor, mask: Tensor) -> Tensor:
    """Per-view similarity T (V, 3, 3) moving the observed uv (V, N, 2) to mean 0, RMS norm sqrt(2)."""
    w = mask.to(uv.dtype)[..., None]
    cnt = w.sum(1).clamp_min(1)
    mean = (uv * w).sum(1) / cnt
    rms = (((uv - mean[:, None]) ** 2).sum(-1, keepdim=True) * w).sum(1) / cnt
    scale = torch.where(rms > 0, 2.0 / rms.clamp_min(1e-300), 1.0).sqrt()[:, 0]
    T = torch.zeros(uv.shape[0], 3, 3, dtype=uv.dtype, device=uv.device)
    T[:, 0, 0] = T[:, 1, 1] = scale
    T[:, :2, 2] = -scale[:, None] * mean
    T[:, 2, 2] = 1
    return T


def triangulate_dlt(P: Tensor, uv: Tensor, mask: Tensor | None = None) -> Tensor:
    """Linear triangulation of N points, each from all views that observe it, in float64.

    For each point the rows u P3 - P1 and v P3 - P2 of every observing view are stacked (after
    per-view Hartley normalisation of the pixels and unit row norms, which improves conditioning
    and leaves noise-free solutions unchanged) and the null vector comes from one batched SVD.

    Args:
        P: (V, 3, 4) projection matrices K [R | t] (pixel coordinates as in `camera.project`).
        uv: (V, N, 2) observed pixels; entries with mask False are ignored (may hold anything finite).
        mask: (V, N) bool, True where view v observes point n; None means all.

    Returns:
        X: (N, 3) float64 world points; NaN for points seen in fewer than 2 views, inf for points
        at infinity.
    """
    P, uv = P.to(torch.float64), uv.to(torch.float64)
    V, N = uv.shape[:2]
    if P.shape != (V, 3, 4) or uv.shape[-1] != 2:
        raise ValueError(f"triangulate_dlt: P must be (V,3,4) and uv (V,N,2), got {P.shape}, {uv.shape}")
    mask = torch.ones(V, N, dtype=torch.bool, device=uv.device) if mask is None else mask.bool()
    uv = torch.where(mask[..., None], uv, 0)
    T = _hartley(uv, mask)
    Pn = T @ P  # (V, 3, 4)
    uvn = uv * T[:, None, 0, 0, None] + T[:, None, :2, 2]
    rows = uvn[..., None] * Pn[:, None, 2:3, :] - Pn[:, None, :2, :]  # (V, N, 2, 4)
    rows = torch.nn.functional.normalize(rows, dim=-1) * mask[..., None, None]
    A = rows.permute(1, 0, 2, 3).reshape(N, 2 * V, 4)
    if 2 * V < 4:  # too few rows for a 4-column SVD null vector: pad with zero rows
        A = torch.cat([A, A.new_zeros(N, 4 - 2 * V, 4)], 1)
    Xh = torch.linalg.svd(A, full_matrices=False).Vh[:, -1]
    X = Xh[:, :3] / Xh[:, 3:]
    return torch.where((mask.sum(0) >= 2)[:, None], X, torch.nan)


def reprojection_errors(X: Tensor, P: Tensor, uv: Tensor, mask: Tensor | None = None) -> Tensor:
    """Pixel distances (V, N) between the projections of X (N, 3) by P (V, 3, 4) and uv (V, N, 2).

    NaN where mask (V, N) is False. Points behind a camera are not flagged here: check depth.
    """
    Xh = torch.cat([X, torch.ones_like(X[:, :1])], -1).to(P.dtype)
    h = torch.einsum("vij,nj->vni", P, Xh)
    err = (h[..., :2] / h[..., 2:] - uv.to(h.dtype)).norm(dim=-1)
    return err if mask is None else err.masked_fill(~mask.bool(), torch.nan)
