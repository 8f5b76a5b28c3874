"""Per-view learnable pose (and optional focal) corrections, and test-time pose refinement.

A view's corrected pose is w2c' = exp(delta) @ w2c, the twist delta = [rho, omega] (se3_exp) taken
in a frame at the view's pivot: the point on its optical axis at the depth of the scene
(w2c' = P^-1 exp(delta) P w2c, P moving the pivot to the origin; still a left-multiplied SE(3)
exponential, only the Lie-algebra coordinates differ). Why: about the camera centre, a small
rotation and a sideways translation shift the image almost identically, a narrow diagonal valley
that Adam's per-coordinate steps cross slowly; about the pivot, translation shifts the image and
rotation only changes parallax, so the two coordinates are nearly independent. pivot 0 gives the
plain camera-frame twist.

rho is stored in units of the scene extent so one learning rate suits translation and rotation
(radians). Deltas start at zero; view 0 stays fixed (it fixes the gauge: the Gaussians and all
cameras could otherwise drift together). Focal refinement multiplies fx and fy by exp(log_focal)
per view; it is off by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from splat.geometry.se3 import make_w2c, se3_exp
from splat.train.data import check_sizes, image_tensors, resolution_levels
from splat.train.losses import photometric_loss
from splat.types import Cameras, Gaussians


@dataclass
class PoseDeltas:
    """Learnable corrections for V views.

    Attributes:
        twist: (V, 6) leaf, [rho / extent, omega]; zero = no correction.
        log_focal: (V,) leaf or None (focal refinement off).
        fixed: (V,) bool, views never corrected (their gradients are zeroed).
        pivot: (V,) depth of each view's pivot on its optical axis (0 = the camera centre).
        extent: the length unit of rho.
    """

    twist: Tensor
    log_focal: Tensor | None
    fixed: Tensor
    pivot: Tensor
    extent: float = 1.0

    @staticmethod
    def create(
        n_views: int,
        *,
        extent: float = 1.0,
        fixed: Sequence[int] = (0,),
        focal: bool = False,
        pivot: Tensor | None = None,
        device=None,
    ) -> PoseDeltas:
        twist = torch.zeros(n_views, 6, device=device, requires_grad=True)
        log_focal = torch.zeros(n_views, device=device, requires_grad=True) if focal else None
        mask = torch.zeros(n_views, dtype=torch.bool, device=device)
        mask[list(fixed)] = True
        pivot = torch.zeros(n_views, device=device) if pivot is None else pivot.detach().float().to(device)
        return PoseDeltas(twist, log_focal, mask, pivot, float(extent))

    def transform(self, v, dtype=torch.float32) -> Tensor:
        """The corrections exp(delta) about the pivots as (..., 4, 4) camera-frame transforms."""
        t = self.twist[v].to(dtype)
        T = se3_exp(torch.cat([t[..., :3] * self.extent, t[..., 3:]], -1))
        d = self.pivot[v].to(dtype)[..., None]
        e3 = torch.tensor([0.0, 0.0, 1.0], dtype=dtype, device=T.device)
        shift = d * (e3 - T[..., :3, 2])  # P^-1 T P: t' = t + d (e3 - R e3)
        return make_w2c(T[..., :3, :3], T[..., :3, 3] + shift)

    def camera(self, cameras: Cameras, v: int) -> Cameras:
        """View v with its correction applied, differentiable w.r.t. the deltas (one-view Cameras)."""
        w2c, K = cameras.w2c[v], cameras.K[v]
        if not bool(self.fixed[v]):
            w2c = self.transform(v, w2c.dtype) @ w2c
        if self.log_focal is not None:
            K = K * (1 + (self.log_focal[v].to(K.dtype).exp() - 1) * _focal_entries(K))
        return Cameras(
            K[None], w2c[None], cameras.width[v : v + 1], cameras.height[v : v + 1], [cameras.names[v]]
        )

    @torch.no_grad()
    def apply(self, cameras: Cameras) -> Cameras:
        """All views corrected (detached, in the cameras' dtype)."""
        T = self.transform(slice(None), cameras.w2c.dtype)
        T[self.fixed] = torch.eye(4, dtype=T.dtype, device=T.device)
        K = cameras.K.clone()
        if self.log_focal is not None:
            K = K * (1 + (self.log_focal.to(K.dtype).exp()[:, None, None] - 1) * _focal_entries(K))
        return Cameras(K, T @ cameras.w2c, cameras.width.clone(), cameras.height.clone(), list(cameras.names))

    def parameters(self) -> list[Tensor]:
        return [self.twist] + ([self.log_focal] if self.log_focal is not None else [])

    @torch.no_grad()
    def zero_fixed_grads(self) -> None:
        for p in self.parameters():
            if p.grad is not None:
                p.grad[self.fixed] = 0

    def state_dict(self) -> dict:
        return {
            "twist": self.twist.detach().clone(),
            "log_focal": None if self.log_focal is None else self.log_focal.detach().clone(),
            "fixed": self.fixed.clone(),
            "pivot": self.pivot.clone(),
            "extent": self.extent,
        }

    @torch.no_grad()
    def load_state_dict(self, sd: dict) -> None:
        self.twist.copy_(sd["twist"])
        if self.log_focal is not None and sd["log_focal"] is not None:
            self.log_focal.copy_(sd["log_focal"])
        self.fixed.copy_(sd["fixed"])
        self.pivot.copy_(sd["pivot"])
        self.extent = float(sd["extent"])


def _focal_entries(K: Tensor) -> Tensor:
    """(3, 3) mask of fx and fy in K."""
    return torch.diag(torch.tensor([1.0, 1.0, 0.0], dtype=K.dtype, device=K.device))


def pose_optimizer(deltas: PoseDeltas, lr: float, focal_lr: float) -> torch.optim.Adam:
    """Adam over the twists (and focal deltas): group 0 = twist, group 1 = log_focal."""
    groups = [{"params": [deltas.twist], "lr": lr}]
    if deltas.log_focal is not None:
        groups.append({"params": [deltas.log_focal], "lr": focal_lr})
    return torch.optim.Adam(groups, eps=1e-15)


def scene_depths(means: Tensor, cameras: Cameras) -> Tensor:
    """(V,) median camera-space depth of the points in front of each camera (1 where none are)."""
    out = []
    for v in range(len(cameras)):
        w2c = cameras.w2c[v].to(means)
        z = means.detach() @ w2c[2, :3] + w2c[2, 3]
        z = z[z > 0]
        out.append(z.median() if len(z) else z.new_ones(()))
    return torch.stack(out).float()


def refine_poses(
    gaussians: Gaussians,
    cameras: Cameras,
    images: Tensor | Sequence,
    steps: int = 200,
    lr: float = 5e-3,
    *,
    backend: str = "auto",
    sh_degree: int | None = None,
    background=None,
    lambda_dssim: float = 0.2,
    extent: float | None = None,
    coarse_to_fine: bool = True,
) -> Cameras:
    """Refine the poses of `cameras` against `images` with the Gaussians frozen (test-time alignment).

    Every view gets its own twist (none fixed: the frozen Gaussians fix the frame); Adam with `lr`
    decaying exponentially to lr/100 minimises the photometric loss. With coarse_to_fine the first
    half of the steps render at a quarter of the size, the next 30% at half, the last 20% at full
    size (a coarse render costs ~1/10 and has the wider basin a large initial error needs); a level
    whose longer side would fall under 128 px is skipped.

    Args:
        gaussians: trained Gaussians; never modified and given no gradient.
        cameras: V views to refine.
        images: V images (H, W, 3) matching the cameras' sizes.
        steps: optimisation steps (each renders every view once).
        lr: initial rate for [rho / extent, omega (radians)].
        extent: unit of the translation part; default the median depth of the Gaussians.

    Returns:
        Refined Cameras (same dtype, names and intrinsics).
    """
    from splat.render import render
    from splat.train.schedule import exponential_lr

    device = gaussians.device
    frozen = gaussians.detach()
    cams = cameras.to(device=device)
    targets = image_tensors(images, device)
    check_sizes(cams, targets)
    depths = scene_depths(frozen.means, cams)
    scale = float(depths.median()) if extent is None else float(extent)
    deltas = PoseDeltas.create(len(cams), extent=scale, fixed=(), pivot=depths, device=device)
    opt = pose_optimizer(deltas, lr, 0.0)
    # under 128 px a coarse view loses the detail that fixes the pose
    levels = resolution_levels(cams, targets, (2, 4) if coarse_to_fine else (), min_side=128)
    for step in range(steps):
        f = 4 if step < 0.5 * steps else 2 if step < 0.8 * steps else 1
        level_cams, level_targets = levels.get(f) or levels.get(f // 2) or levels[1]
        opt.param_groups[0]["lr"] = exponential_lr(step, lr, lr / 100, steps)
        opt.zero_grad(set_to_none=True)
        for v in range(len(cams)):
            out = render(
                frozen,
                deltas.camera(level_cams, v),
                sh_degree=sh_degree,
                background=background,
                backend=backend,
            )
            photometric_loss(out.image, level_targets[v], lambda_dssim).backward()
        opt.step()
    return deltas.apply(cams).to(device=cameras.device)
