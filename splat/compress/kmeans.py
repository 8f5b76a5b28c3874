"""Weighted k-means codebooks: exact-assignment 1D (scalar) and vector (VQ) variants.

Weights are optional per-sample importances (SqueezeLLM's sensitivity weighting); the quantized
container uses equal weights by default (see splat/compress/quantize.py for why). Both functions are
deterministic for a given input and seed.
"""

from __future__ import annotations

import numpy as np
import torch


def kmeans_1d(x: np.ndarray, k: int, weights: np.ndarray | None = None, iters: int = 30) -> np.ndarray:
    """Weighted Lloyd-Max quantizer levels for scalars.

    Args:
        x: (M,) values. weights: (M,) non-negative, default all ones. k: at most k levels.
    Returns:
        (k',) sorted float32 levels, k' <= k (all distinct values when there are at most k).
    """
    x = np.asarray(x, np.float64).reshape(-1)
    w = np.ones_like(x) if weights is None else np.asarray(weights, np.float64).reshape(-1) + 1e-12
    distinct = np.unique(x)
    if len(distinct) <= k:
        return distinct.astype(np.float32)
    order = np.argsort(x, kind="stable")
    xs, ws = x[order], w[order]
    cdf = np.cumsum(ws) / ws.sum()
    levels = np.unique(xs[np.searchsorted(cdf, (np.arange(k) + 0.5) / k).clip(0, len(xs) - 1)])
    for _ in range(iters):
        codes = np.searchsorted(0.5 * (levels[1:] + levels[:-1]), xs)
        mass = np.bincount(codes, ws, len(levels))
        moved = np.bincount(codes, ws * xs, len(levels))
        new = np.where(mass > 0, moved / np.maximum(mass, 1e-300), levels)
        new = np.unique(new)
        if len(new) == len(levels) and np.allclose(new, levels, rtol=0, atol=1e-9):
            levels = new
            break
        levels = new
    return levels.astype(np.float32)


def assign_1d(x: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the nearest level (levels sorted ascending), (M,) int64."""
    levels = levels.astype(np.float64)
    codes = np.searchsorted(0.5 * (levels[1:] + levels[:-1]), np.asarray(x, np.float64))
    return codes.astype(np.int64)


def kmeans_vq(
    x: np.ndarray,
    k: int,
    weights: np.ndarray | None = None,
    iters: int = 10,
    seed: int = 0,
    max_train: int = 32_768,
) -> np.ndarray:
    """Weighted k-means codebook for vectors (Lloyd iterations on a sample of at most max_train rows).

    Args:
        x: (M, D) float vectors. k: codebook size. weights: (M,) non-negative.
    Returns:
        (k', D) float32 codebook, k' = min(k, number of distinct rows).
    """
    x = np.asarray(x, np.float32)
    rows = np.unique(x, axis=0)
    if len(rows) <= k:
        return rows
    gen = torch.Generator().manual_seed(seed)
    w = torch.ones(len(x)) if weights is None else torch.as_tensor(weights, dtype=torch.float32) + 1e-12
    X = torch.from_numpy(x)
    if len(X) > max_train:  # importance sampling keeps the weighting: sample by w, then unit weights
        pick = torch.multinomial(w, max_train, replacement=False, generator=gen)
        X, w = X[pick], torch.ones(max_train)
    C = X[torch.randperm(len(X), generator=gen)[:k]].clone()
    for _ in range(iters):
        codes, dist = _nearest(X, C)
        mass = torch.zeros(k).index_add_(0, codes, w)
        sums = torch.zeros_like(C).index_add_(0, codes, X * w[:, None])
        empty = mass <= 0
        C = torch.where(empty[:, None], C, sums / mass.clamp_min(1e-30)[:, None])
        if empty.any():  # re-seed empty clusters at the worst-served samples
            worst = torch.argsort(dist * w, descending=True, stable=True)[: int(empty.sum())]
            C[empty] = X[worst]
    return C.numpy().astype(np.float32)


def assign_vq(x: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the nearest codebook row for each row of x, (M,) int64."""
    codes, _ = _nearest(torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(codebook))
    return codes.numpy()


def _nearest(X: torch.Tensor, C: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centre (M,) and squared distance (M,), computed in row chunks to bound memory."""
    cc = (C * C).sum(1)
    codes, dists = [], []
    for i in range(0, len(X), chunk):
        xb = X[i : i + chunk]
        best = torch.addmm(cc.expand(len(xb), -1), xb, C.T, alpha=-2).min(1)  # |c|^2 - 2 x.c
        codes.append(best.indices)
        dists.append((best.values + (xb * xb).sum(1)).clamp_min(0))
    if not codes:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0)
    return torch.cat(codes), torch.cat(dists)
