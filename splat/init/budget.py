"""Reduce an initial set of Gaussians to a budget: random, by confidence, or one per voxel."""

from __future__ import annotations

import torch
from torch import Tensor

from splat.types import Gaussians

RULES = ("random", "confidence", "voxel")


def budget_indices(
    means: Tensor, budget: int, rule: str = "random", confidence: Tensor | None = None, seed: int = 0
) -> Tensor:
    """Indices (M,) of at most `budget` Gaussians to keep, sorted ascending.

    Args:
        means: (N, 3) centres.
        budget: the number to keep; N or more keeps everything.
        rule: "random" (uniform without replacement), "confidence" (highest first) or
            "voxel" (the most confident Gaussian per voxel, voxel size chosen by bisection so that
            about `budget` voxels are occupied, topped up or trimmed at random to the exact count).
        confidence: (N,) scores for "confidence"/"voxel"; uniform when None.
    """
    N = means.shape[0]
    if rule not in RULES:
        raise ValueError(f"unknown budget rule {rule!r}; choose one of {', '.join(RULES)}")
    if budget >= N:
        return torch.arange(N, device=means.device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    conf = confidence if confidence is not None else torch.ones(N, device=means.device)
    if rule == "random":
        keep = torch.randperm(N, generator=gen)[:budget].to(means.device)
    elif rule == "confidence":
        keep = torch.argsort(conf, descending=True, stable=True)[:budget]
    else:
        keep = _voxel_keep(means, conf, budget)
        if keep.numel() > budget:  # trim at random
            keep = keep[torch.randperm(keep.numel(), generator=gen)[:budget].to(keep.device)]
        elif keep.numel() < budget:  # top up with random others
            rest = torch.ones(N, dtype=torch.bool, device=means.device)
            rest[keep] = False
            others = rest.nonzero().reshape(-1)
            extra = others[torch.randperm(others.numel(), generator=gen)[: budget - keep.numel()]]
            keep = torch.cat([keep, extra.to(keep.device)])
    return torch.sort(keep).values


def _voxel_keep(means: Tensor, conf: Tensor, budget: int) -> Tensor:
    """Most confident Gaussian per voxel, with a voxel size giving roughly `budget` voxels."""
    lo, hi = means.amin(0), means.amax(0)
    extent = float((hi - lo).max().clamp_min(1e-9))
    small, large = extent * 1e-6, extent
    best = None
    for _ in range(30):  # bisection on log voxel size
        size = (small * large) ** 0.5
        keep = _one_per_voxel(means, conf, lo, size)
        best = keep
        if abs(keep.numel() - budget) <= max(1, budget // 100):
            break
        if keep.numel() > budget:
            small = size
        else:
            large = size
    return best


def _one_per_voxel(means: Tensor, conf: Tensor, origin: Tensor, size: float) -> Tensor:
    cell = ((means - origin) / size).floor().long()
    _, voxel = torch.unique(cell, dim=0, return_inverse=True)
    # Sort by (voxel, -confidence): the first entry of each voxel is its most confident Gaussian.
    order = torch.argsort(conf, descending=True, stable=True)
    order = order[torch.argsort(voxel[order], stable=True)]
    v_sorted = voxel[order]
    first = torch.ones_like(v_sorted, dtype=torch.bool)
    first[1:] = v_sorted[1:] != v_sorted[:-1]
    return order[first]


def prune_to_budget(
    gaussians: Gaussians, budget: int, rule: str = "random", confidence: Tensor | None = None, seed: int = 0
) -> Gaussians:
    """Subset of `gaussians` with at most `budget` members chosen by `rule` (see budget_indices)."""
    return gaussians[budget_indices(gaussians.means, budget, rule, confidence, seed)]
