"""The 3DGS photometric loss: (1 - lambda) L1 + lambda (1 - SSIM), lambda = 0.2."""

from __future__ import annotations

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
