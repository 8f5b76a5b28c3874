"""Test-view alignment: each held-out camera posed (and its focal set) against its image, with the
trained Gaussians frozen, coarse to fine, until a convergence test passes.

Why the focal too: a run's focal can legitimately differ from the ground truth's by a few percent
(the Gaussians are then consistent with the run's focal), and a test view rendered with the other
focal is offset by several pixels at the image border: its score would measure the alignment, not
the scene. Why a convergence test instead of a fixed step count: a view that is still moving when
the steps run out is not aligned, and must be reported as such rather than scored.

The pose and focal corrections are the training's (splat.train.poses.PoseDeltas: a twist about a
pivot at the scene depth, focal as exp(log_focal) on fx and fy). Gradients reach them through the
torch and cpu render backends; gsplat (backend "cuda") gives K no gradient, so there the focal
stays where it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from splat.config import REFINE_STEPS
from splat.geometry.se3 import rotation_angle_deg
from splat.train.data import check_sizes, image_tensors, resolution_levels
from splat.train.losses import photometric_loss
from splat.train.poses import PoseDeltas, pose_optimizer, scene_depths
from splat.types import Cameras, Gaussians


@dataclass(frozen=True)
class AlignSettings:
    """Test-view alignment (`align_views`).

    Each stage renders at 1/factor of the size (a stage whose longer side would fall under
    min_side is skipped) and ends when its convergence test passes: over the last `window` steps
    the scene's projection moved less than tol_px (full-size pixels, times the factor at coarse
    stages) and either the windowed loss fell by less than tol_loss (relative) or the motion stayed
    under tol_px for calm_windows windows in a row (a synthetic target's loss keeps falling
    relatively long after the pose has stopped). The rate halves at every loss plateau, so a view
    that still descends keeps its rate, and when the motion is under twice tol_px but no longer shrinks
    (Adam's jitter at that rate). Unused steps of a stage pass on to the next; a view is
    converged when its full-size stage passed.

    Attributes:
        factors: downscale factors, coarse to fine (1 is always the last stage).
        max_steps: the step cap per view, all stages together.
        lr: Adam rate of [rho / depth, omega (radians)] at the coarsest stage, lr * f / f0 later.
        focal_lr: rate of log focal, scaled likewise; focal=False keeps the focal fixed.
        n_points: scene points whose projection measures the motion.
    """

    factors: tuple[int, ...] = (4, 2, 1)
    min_side: int = 128
    max_steps: int = REFINE_STEPS  # garden 192 px, 1 degree + 4 % focal off: 130-250 steps
    window: int = 10
    min_stage_steps: int = 20
    tol_px: float = 0.1
    tol_loss: float = 1e-3
    calm_windows: int = 3
    lr: float = 5e-3
    focal_lr: float = 2e-3
    focal: bool = True
    lambda_dssim: float = 0.2
    n_points: int = 512


def project_points(points: Tensor, cameras: Cameras) -> Tensor:
    """(M, 3) world points -> (V, M, 2) pixel positions in each of the V views."""
    w2c, K = cameras.w2c.to(points), cameras.K.to(points)
    cam = points @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
    pix = cam @ K.transpose(1, 2)
    return pix[..., :2] / pix[..., 2:].clamp_min(1e-6)


def motion_points(gaussians: Gaussians, camera: Cameras, n: int) -> Tensor:
    """(M, 3) up to n opaque Gaussian centres in front of a one-view camera and inside its image."""
    w2c = camera.w2c[0].to(gaussians.means)
    z = gaussians.means @ w2c[2, :3] + w2c[2, 3]
    uv = project_points(gaussians.means, camera)[0]
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 1] >= 0)
    inside &= (uv[:, 0] < float(camera.width[0])) & (uv[:, 1] < float(camera.height[0]))
    keep = inside & (gaussians.opacities > 0.5)
    idx = torch.nonzero(keep if keep.sum() >= 16 else inside).squeeze(1)
    if len(idx) == 0:
        idx = torch.arange(len(gaussians), device=gaussians.device)
    idx = idx[torch.linspace(0, len(idx) - 1, min(n, len(idx)), device=idx.device).long()]
    return gaussians.means[idx].detach()


def _rms_px(a: Tensor, b: Tensor) -> float:
    return float((a - b).square().sum(-1).mean().sqrt())


def align_views(
    gaussians: Gaussians,
    cameras: Cameras,
    images: Tensor | Sequence,
    settings: AlignSettings = AlignSettings(),  # noqa: B008 (frozen)
    *,
    backend: str = "auto",
    sh_degree: int | None = None,
    background=None,
    render_settings=None,
) -> tuple[Cameras, list[dict]]:
    """Align each of V views to its image with the Gaussians frozen (see AlignSettings).

    Args:
        gaussians: trained Gaussians; never modified.
        cameras: V start views (pose and intrinsics).
        images: V images (H, W, 3) matching the cameras' sizes.

    Returns:
        The aligned Cameras (pose and focal refined; principal point kept), and per view a dict:
        loss (the alignment residual: photometric loss of the aligned view at full size),
        motion_px (RMS motion of the scene's projection over the last window, full-size px; None
        before the first window), moved_px / moved_deg (start to aligned view: RMS projection
        shift, rotation angle), focal_ratio (aligned over start focal), steps, converged.
    """
    frozen = gaussians.detach()
    cams = cameras.to(device=frozen.device)
    targets = image_tensors(images, frozen.device)
    check_sizes(cams, targets)
    out, reports = [], []
    for v in range(len(cams)):
        options = {"sh_degree": sh_degree, "background": background, "backend": backend}
        if render_settings is not None:  # splat.render.RenderSettings (anti-aliased scenes)
            options["settings"] = render_settings
        cam, report = _align_view(frozen, cams[[v]], targets[v], settings, options)
        out.append(cam)
        reports.append(report)
    return Cameras.cat(out).to(device=cameras.device), reports


def _align_view(frozen: Gaussians, cam: Cameras, target: Tensor, s: AlignSettings, options: dict):
    from splat.render import render

    depth = scene_depths(frozen.means, cam)
    deltas = PoseDeltas.create(1, extent=float(depth[0]), fixed=(), focal=s.focal, pivot=depth,
                               device=frozen.device)  # fmt: skip
    opt = pose_optimizer(deltas, s.lr, s.focal_lr)
    levels = resolution_levels(cam, [target], [f for f in s.factors if f > 1], s.min_side)
    stages = [f for f in s.factors if f in levels and f > 1] + [1]
    points = motion_points(frozen, cam, s.n_points)
    start = project_points(points, cam)[0]
    steps, budget, converged, motion = 0, 0, False, None
    for i, f in enumerate(stages):
        budget = s.max_steps if i == len(stages) - 1 else budget + s.max_steps // len(stages)
        level_cam, level_target = levels[f][0], levels[f][1][0]
        for group, base in zip(opt.param_groups, (s.lr, s.focal_lr), strict=False):
            group["lr"] = base * f / stages[0]
        losses, last, converged, calm = [], project_points(points, deltas.apply(cam))[0], False, 0
        previous = float("inf")
        while steps < budget and not converged:
            opt.zero_grad(set_to_none=True)
            image = render(frozen, deltas.camera(level_cam, 0), **options).image
            value = photometric_loss(image, level_target, s.lambda_dssim)
            value.backward()
            opt.step()
            steps += 1
            losses.append(float(value.detach()))
            if len(losses) % s.window or len(losses) < 2 * s.window:
                continue
            now = project_points(points, deltas.apply(cam))[0]
            motion, last = _rms_px(now, last), now
            before = sum(losses[-2 * s.window : -s.window]) / s.window
            after = sum(losses[-s.window :]) / s.window
            plateau = before - after < s.tol_loss * after
            # near the tolerance, motion that no longer shrinks is Adam's jitter at this rate: halve it too
            # (a view on CI's numbers hovered at 0.1000 px for the last 200 steps of its cap)
            jitter = motion < 2 * s.tol_px * f and motion > 0.8 * previous
            previous = motion
            if plateau or jitter:
                for group in opt.param_groups:
                    group["lr"] *= 0.5
            calm = calm + 1 if motion < s.tol_px * f else 0
            settled = plateau or calm >= s.calm_windows
            converged = settled and motion < s.tol_px * f and len(losses) >= s.min_stage_steps
    final = deltas.apply(cam)
    with torch.no_grad():
        residual = float(photometric_loss(render(frozen, final, **options).image, target, s.lambda_dssim))
    report = {
        "loss": residual,
        "motion_px": motion,
        "moved_px": _rms_px(project_points(points, final)[0], start),
        "moved_deg": float(rotation_angle_deg(cam.w2c[0, :3, :3], final.w2c[0, :3, :3])),
        "focal_ratio": float(final.K[0, 0, 0] / cam.K[0, 0, 0]),
        "steps": steps,
        "converged": bool(converged),
    }
    return final, report
