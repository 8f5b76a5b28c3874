"""The 3DGS photometric loss: (1 - lambda) L1 + lambda (1 - SSIM), lambda = 0.2; and the optional depth
term against the init's depth maps (TrainConfig.depth_weight)."""

from __future__ import annotations

import torch
from torch import Tensor

from splat.eval.metrics import ssim


def photometric_loss(image: Tensor, gt: Tensor, lambda_dssim: float = 0.2) -> Tensor:
    """Mean absolute error blended with the SSIM dissimilarity, as 3DGS trains.

    Args:
        image: rendered (H, W, 3) (or (B, H, W, 3)).
        gt: target of the same shape, in [0, 1].
        lambda_dssim: weight of 1 - SSIM (0.2 in 3DGS).

    Returns:
        0-d tensor (the mean over a batch).
    """
    l1 = (image - gt).abs().mean()
    if lambda_dssim == 0:
        return l1
    return (1 - lambda_dssim) * l1 + lambda_dssim * (1 - ssim(image, gt).mean())


def depth_loss(depth: Tensor, alpha: Tensor, packed: Tensor, min_confidence: float = 0.5) -> Tensor:
    """Mean relative difference of the rendered depth from a target depth map, confidence-weighted.

    Args:
        depth: rendered alpha-weighted depth (H, W) (RenderOutput.depth); alpha: (H, W).
        packed: target (H, W, 2) as `pack_depth` makes it: [confidence * depth, confidence] (area-resized
            packed maps stay a confidence-weighted mean).
        min_confidence: pixels below it do not count; neither do those the render leaves transparent
            (alpha <= 0.5, where depth / alpha is unstable).

    Returns:
        0-d tensor; 0 where no pixel counts.
    """
    conf = packed[..., 1]
    target = packed[..., 0] / conf.clamp_min(1e-6)
    weight = conf * (conf >= min_confidence) * (alpha.detach() > 0.5)
    total = weight.sum().clamp_min(1e-12)  # no pixel counts: the weighted sum is 0 (and no host sync)
    rendered = depth / alpha.clamp_min(1e-6)
    return (weight * (rendered - target).abs() / target.clamp_min(1e-6)).sum() / total


def pack_depth(depth, confidence, device=None) -> Tensor:
    """(H, W) depth (NaN/<=0 where unknown) and (H, W) confidence -> (H, W, 2) float32
    [confidence * depth, confidence], 0 where unknown."""
    d = torch.as_tensor(depth, dtype=torch.float32, device=device)
    c = torch.as_tensor(confidence, dtype=torch.float32, device=device).clamp(0, 1)
    known = torch.isfinite(d) & (d > 0)
    c = torch.where(known, c, 0.0)
    return torch.stack([torch.where(known, d, 0.0) * c, c], -1)


def anisotropy_loss(log_scales: Tensor, visible: Tensor, max_ratio: float) -> Tensor:
    """Mean over the visible Gaussians of max(0, longest / shortest axis - max_ratio).

    log_scales: (N, 3); visible: (N,) bool. 0 when none is visible."""
    s = log_scales[visible]
    if len(s) == 0:
        return log_scales.sum() * 0.0
    ratio = torch.exp(s.max(-1).values - s.min(-1).values)
    return torch.relu(ratio - max_ratio).mean()
