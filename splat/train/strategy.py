"""What happens to the set of Gaussians during training: pruning only, or 3DGS densification.

A strategy is a small dataclass of settings with two methods, in the spirit of gsplat's Strategy:
`initialize_state(n)` makes its running state (a dict of tensors, saved in checkpoints), and
`step_post_backward(opt, state, info)` runs after each optimizer step. Both strategies change the
Gaussians only through `GaussianAdam.keep / append / reset_state`, so parameters and Adam moments
always stay row-aligned.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from splat.geometry.se3 import quat_wxyz_to_rotmat
from splat.render.render import RenderOutput
from splat.train.adam import GaussianAdam


@dataclass
class StrategyInfo:
    """What a strategy sees after a step.

    Attributes:
        step: steps completed so far (1 after the first step), as 3DGS counts iterations.
        out: the step's RenderOutput (visible, radii, means2d with its grad).
        width, height: the rendered view's size in pixels.
        extent: scene extent (see schedule.scene_extent).
        generator: the trainer's seeded CPU generator (split sampling).
    """

    step: int
    out: RenderOutput
    width: int
    height: int
    extent: float
    generator: torch.Generator


def _prune(opt: GaussianAdam, mask: Tensor) -> int:
    """Remove the Gaussians in mask (N,) bool, never all of them; returns the number removed."""
    n = int(mask.sum())
    if n == 0:
        return 0
    if n == len(opt):
        warnings.warn("pruning would remove every Gaussian; skipped", stacklevel=3)
        return 0
    opt.keep(~mask)
    return n


@dataclass
class NoDensify:
    """Our method's strategy: the Gaussian count never grows; unsupported Gaussians are pruned.

    Every `prune_every` steps after `warmup` (and before `stop`, if set): opacities are multiplied by
    `opacity_decay` (1 = off; Gaussians the data support regain opacity through their gradients,
    the others fade), then Gaussians with opacity below `prune_opacity` are removed, and, when
    `prune_scale3d` is set, those whose largest scale exceeds prune_scale3d x scene extent.
    """

    prune_opacity: float = 0.005
    prune_every: int = 100
    warmup: int = 500
    stop: int | None = None
    opacity_decay: float = 1.0
    prune_scale3d: float | None = None

    def initialize_state(self, n: int, device=None) -> dict:
        return {"pruned": 0}

    @torch.no_grad()
    def step_post_backward(self, opt: GaussianAdam, state: dict, info: StrategyInfo) -> None:
        s = info.step
        if s <= self.warmup or s % self.prune_every != 0 or (self.stop is not None and s > self.stop):
            return
        p = opt.params
        if self.opacity_decay < 1:
            decayed = torch.sigmoid(p["opacity_logits"]) * self.opacity_decay
            p["opacity_logits"].copy_(torch.logit(decayed))
        mask = torch.sigmoid(p["opacity_logits"]) < self.prune_opacity
        if self.prune_scale3d is not None:
            mask |= p["log_scales"].exp().amax(-1) > self.prune_scale3d * info.extent
        state["pruned"] += _prune(opt, mask)


@dataclass
class ClassicADC:
    """The adaptive density control of 3DGS (Kerbl et al. 2023), as the baseline.

    While refine_start < step < refine_stop, every `refine_every` steps: Gaussians whose mean
    view-space gradient (accumulated over the steps they were visible, in NDC units: the pixel
    gradient times width/2 and height/2, as 3DGS and gsplat measure it) reaches `grad_threshold`
    are cloned when small (largest scale <= percent_dense x extent) or split in two when large
    (children sampled from the Gaussian, scales / 1.6); then Gaussians with opacity below
    `prune_opacity` are pruned, and after the first opacity reset also those larger than
    prune_scale3d x extent. Every `reset_every` steps opacities are clamped to `reset_opacity`.
    New Gaussians start with zero Adam moments.
    """

    grad_threshold: float = 0.0002
    percent_dense: float = 0.01
    prune_opacity: float = 0.005
    prune_scale3d: float = 0.1
    refine_start: int = 500
    refine_stop: int = 15_000
    refine_every: int = 100
    reset_every: int = 3000
    reset_opacity: float = 0.01

    def initialize_state(self, n: int, device=None) -> dict:
        z = torch.zeros(n, device=device)
        return {"grad2d": z, "count": z.clone(), "cloned": 0, "split": 0, "pruned": 0}

    @torch.no_grad()
    def step_post_backward(self, opt: GaussianAdam, state: dict, info: StrategyInfo) -> None:
        s = info.step
        if s >= self.refine_stop:
            return
        self._accumulate(state, info)
        if s > self.refine_start and s % self.refine_every == 0:
            self._grow(opt, state, info)
            p = opt.params
            mask = torch.sigmoid(p["opacity_logits"]) < self.prune_opacity
            if s > self.reset_every:
                mask |= p["log_scales"].exp().amax(-1) > self.prune_scale3d * info.extent
            state["pruned"] += _prune(opt, mask)
            n, device = len(opt), p["means"].device
            state["grad2d"] = torch.zeros(n, device=device)
            state["count"] = torch.zeros(n, device=device)
        if s % self.reset_every == 0:
            logit = torch.logit(torch.tensor(self.reset_opacity)).item()
            opt.params["opacity_logits"].clamp_(max=logit)
            opt.reset_state("opacity_logits")

    def _accumulate(self, state: dict, info: StrategyInfo) -> None:
        grad = info.out.means2d_grad
        if grad is None:
            raise RuntimeError(
                "ClassicADC needs RenderOutput.means2d_grad (render with gradients, then backward)"
            )
        visible = info.out.visible.reshape(-1)
        ids = visible.nonzero().reshape(-1)
        g = grad.reshape(-1, 2)[ids].float()
        ndc = torch.stack([g[:, 0] * (info.width / 2), g[:, 1] * (info.height / 2)], -1)
        state["grad2d"].index_add_(0, ids, ndc.norm(dim=-1))
        state["count"].index_add_(0, ids, torch.ones_like(ids, dtype=torch.float32))

    def _grow(self, opt: GaussianAdam, state: dict, info: StrategyInfo) -> None:
        p = opt.params
        high = state["grad2d"] / state["count"].clamp_min(1) >= self.grad_threshold
        small = p["log_scales"].exp().amax(-1) <= self.percent_dense * info.extent
        clone, split = high & small, high & ~small
        new = {k: v.detach()[clone] for k, v in p.items()}
        if bool(split.any()):
            children = split_children({k: v.detach()[split] for k, v in p.items()}, info.generator)
            new = {k: torch.cat([new[k], children[k]]) for k in new}
            opt.keep(~split)
        if len(new["means"]):
            opt.append(new)
        state["cloned"] += int(clone.sum())
        state["split"] += int(split.sum())


def split_children(g: dict[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Two children per Gaussian: means sampled from N(mean, R S^2 R^T), scales / 1.6, the rest copied."""
    scales = g["log_scales"].float().exp()  # (M, 3)
    R = quat_wxyz_to_rotmat(g["quats"].float())  # (M, 3, 3)
    z = torch.randn((2, *scales.shape), generator=generator).to(scales.device)
    offsets = torch.einsum("mij,bmj->bmi", R, scales * z)  # (2, M, 3)
    out = {k: torch.cat([v, v]) for k, v in g.items()}
    out["means"] = (g["means"][None] + offsets.to(g["means"].dtype)).reshape(-1, 3)
    out["log_scales"] = (g["log_scales"] - torch.log(torch.tensor(1.6))).repeat(2, 1)
    return out


def make_strategy(name: str, **overrides):
    """'none' -> NoDensify, 'adc' -> ClassicADC, with field overrides."""
    table = {"none": NoDensify, "adc": ClassicADC}
    if name not in table:
        raise ValueError(f"unknown strategy {name!r}; choose 'none' or 'adc'")
    return table[name](**overrides)
