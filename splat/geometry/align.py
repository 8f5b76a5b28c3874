"""Sim(3) alignment (Umeyama) and absolute trajectory error (ATE) of camera centres.

ATE protocol: align the estimated camera centres to the ground truth (Sim(3) by default, since
pose-free reconstructions have arbitrary gauge and scale), then report the RMSE of the residual
centre distances. `rel` divides it by the camera spread of the ground truth, defined as the RMS
distance of the ground-truth centres from their mean, so scenes of different scale compare.
"""

from __future__ import annotations

import torch
from torch import Tensor

from splat.geometry.se3 import make_w2c


def _as_f64(x) -> Tensor:
    return torch.as_tensor(x).detach().to(torch.float64)


def umeyama(src, dst, with_scale: bool = True) -> tuple[float, Tensor, Tensor]:
    """Least-squares similarity with dst ~= s R src + t (Umeyama 1991), in float64.

    Args:
        src: (N, 3) points; dst: (N, 3) corresponding points; N >= 3 for a unique rotation.
        with_scale: if False, s = 1 (rigid SE(3) alignment).

    Returns:
        s (float), R (3, 3) proper rotation (det +1, reflections excluded), t (3,); float64 on
        the device of src.
    """
    src, dst = _as_f64(src), _as_f64(dst).to(_as_f64(src).device)
    if src.ndim != 2 or src.shape[-1] != 3 or src.shape != dst.shape or src.shape[0] < 2:
        raise ValueError(f"umeyama needs src, dst of equal shape (N>=2, 3), got {src.shape}, {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / src.shape[0]
    U, D, Vh = torch.linalg.svd(cov)
    sign = torch.ones(3, dtype=src.dtype, device=src.device)
    if torch.det(U) * torch.det(Vh) < 0:  # the best orthogonal map is a reflection: flip the weakest axis
        sign[2] = -1
    R = U @ torch.diag(sign) @ Vh
    s = 1.0
    if with_scale:
        var_s = (xs * xs).sum(-1).mean()
        if var_s <= 0:
            raise ValueError("umeyama: source points all coincide, scale is undefined")
        s = float((D * sign).sum() / var_s)
    t = mu_d - s * (R @ mu_s)
    return s, R, t


def ate(est_centers, gt_centers, align: str = "sim3") -> dict:
    """Absolute trajectory error of camera centres (V, 3) after alignment.

    Args:
        est_centers: (V, 3) estimated camera centres.
        gt_centers: (V, 3) ground-truth camera centres, same order.
        align: 'sim3' (Umeyama with scale), 'se3' (rigid) or 'none'.

    Returns:
        dict with rmse (float, gt units), rel (rmse / spread, where spread is the RMS distance of
        the gt centres from their mean; nan if the spread is 0), per_view ((V,) float64 distances),
        s (float), R (3, 3), t (3,): the alignment mapping est into the gt frame.
    """
    est, gt = _as_f64(est_centers), _as_f64(gt_centers)
    gt = gt.to(est.device)
    if est.shape != gt.shape or est.ndim != 2 or est.shape[-1] != 3:
        raise ValueError(f"ate needs (V,3) centres of equal shape, got {est.shape}, {gt.shape}")
    if align == "none":
        s, R, t = 1.0, torch.eye(3, dtype=est.dtype, device=est.device), est.new_zeros(3)
    elif align in ("sim3", "se3"):
        s, R, t = umeyama(est, gt, with_scale=align == "sim3")
    else:
        raise ValueError(f"ate: align must be 'sim3', 'se3' or 'none', got {align!r}")
    per_view = (s * est @ R.T + t - gt).norm(dim=-1)
    rmse = float(per_view.square().mean().sqrt())
    spread = float((gt - gt.mean(0)).square().sum(-1).mean().sqrt())
    rel = rmse / spread if spread > 0 else float("nan")
    return {"rmse": rmse, "rel": rel, "per_view": per_view, "s": s, "R": R, "t": t}


def apply_sim3_to_w2c(w2c: Tensor, s: float, R: Tensor, t: Tensor) -> Tensor:
    """Move cameras (V, 4, 4) w2c into the frame X' = s R X + t; result stays rigid, same dtype.

    A centre C goes to s R C + t and the orientation to R_cam R^T, so camera-frame coordinates of
    the mapped scene are s times the old ones: t_cam' = s t_cam - R_cam R^T t.
    """
    R = torch.as_tensor(R, dtype=w2c.dtype, device=w2c.device)
    t = torch.as_tensor(t, dtype=w2c.dtype, device=w2c.device)
    R_cam, t_cam = w2c[..., :3, :3], w2c[..., :3, 3]
    R_new = R_cam @ R.T
    return make_w2c(R_new, s * t_cam - (R_new @ t[:, None])[..., 0])
