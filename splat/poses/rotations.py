"""Rotation averaging over a view graph: spectral (chordal) initialisation + robust IRLS refinement.

Convention: `R[i]` is the world-to-camera rotation of view i and an edge (i, j) carries the
relative rotation `R_ij = R[j] @ R[i].T` (camera i coordinates -> camera j coordinates).
The gauge is fixed by `R[0] = I` (rotate the result so view 0 is the identity).
"""

from __future__ import annotations

import numpy as np
import roma
import torch
from torch import Tensor


def relative_rotations(R: Tensor, edges: Tensor) -> Tensor:
    """R: (V,3,3) world-to-camera; edges: (E,2) -> R_ij = R_j R_i^T, (E,3,3)."""
    return R[edges[:, 1]] @ R[edges[:, 0]].transpose(1, 2)


def rotation_angle_deg(Ra: Tensor, Rb: Tensor) -> Tensor:
    """Geodesic angle between rotations (..., 3, 3) -> (...,) degrees."""
    return torch.rad2deg(roma.rotmat_geodesic_distance(Ra, Rb))


def spectral_rotations(num_views: int, edges: Tensor, R_rel: Tensor, weights: Tensor | None = None) -> Tensor:
    """Chordal-L2 spectral solution: top-3 eigenvectors of the block measurement matrix.

    Args:
        num_views: V; edges: (E,2) long; R_rel: (E,3,3) with R_j ~ R_ij R_i; weights: (E,) or None.
    Returns: (V,3,3) rotations with R[0] = I.
    """
    V = num_views
    w = torch.ones(len(edges), dtype=R_rel.dtype) if weights is None else weights.to(R_rel.dtype)
    i, j = edges[:, 0], edges[:, 1]
    blocks = torch.zeros(V, V, 3, 3, dtype=R_rel.dtype)
    # block (j, i) of Y Y^T with Y = stack of R_k is R_j R_i^T = R_ij
    blocks.index_put_((j, i), w[:, None, None] * R_rel, accumulate=True)
    blocks.index_put_((i, j), w[:, None, None] * R_rel.transpose(1, 2), accumulate=True)
    deg = torch.zeros(V, dtype=R_rel.dtype).index_add_(0, i, w).index_add_(0, j, w)
    k = torch.arange(V)
    blocks[k, k] += deg.clamp_min(1e-9)[:, None, None] * torch.eye(3, dtype=R_rel.dtype)
    G = blocks.permute(0, 2, 1, 3).reshape(3 * V, 3 * V)
    _, vecs = torch.linalg.eigh(G)
    Y = vecs[:, -3:].reshape(V, 3, 3)
    if torch.det(Y).sum() < 0:  # eigenvectors are defined up to sign: pick the proper-rotation branch
        Y = Y * torch.tensor([1.0, 1.0, -1.0], dtype=Y.dtype)
    R = roma.special_procrustes(Y * np.sqrt(V))
    return R @ R[0].T


def _edge_residuals(R: Tensor, edges: Tensor, R_rel: Tensor) -> Tensor:
    """Tangent residual log(R_ij (R_j R_i^T)^T) per edge, (E,3) radians."""
    return roma.rotmat_to_rotvec(R_rel @ relative_rotations(R, edges).transpose(1, 2))


def refine_rotations_irls(
    R: Tensor,
    edges: Tensor,
    R_rel: Tensor,
    weights: Tensor | None = None,
    iters: int = 30,
    sigma_deg: float = 5.0,
) -> tuple[Tensor, Tensor]:
    """Robust (Cauchy-weighted) Gauss-Newton on SO(3) with left updates R_i <- exp(w_i) R_i.

    First-order model per edge: w_j - R_j R_i^T w_i = log(R_ij (R_j R_i^T)^T). R[0] stays fixed.
    Returns: refined (V,3,3) and final per-edge angular residuals (E,) in degrees.
    """
    V, E = R.shape[0], edges.shape[0]
    w0 = torch.ones(E, dtype=R.dtype) if weights is None else weights.to(R.dtype)
    sigma = np.deg2rad(sigma_deg)
    i, j = edges[:, 0], edges[:, 1]
    for _ in range(iters):
        r = _edge_residuals(R, edges, R_rel)  # (E,3)
        ang = r.norm(dim=-1)
        w = w0 / (1 + (ang / sigma) ** 2)  # Cauchy IRLS weights
        A = torch.zeros(E, V, 3, 3, dtype=R.dtype)  # (edge, view, row, col), rows = residual dims
        e = torch.arange(E)
        A[e, j] += torch.eye(3, dtype=R.dtype)
        A[e, i] -= relative_rotations(R, edges)
        A = A.permute(0, 2, 1, 3).reshape(E, 3, 3 * V)
        sw = w.sqrt()[:, None, None]
        A = (sw * A).reshape(3 * E, 3 * V)[:, 3:]  # drop view 0: gauge
        b = (sw[..., 0] * r).reshape(3 * E)
        H = A.T @ A + 1e-9 * torch.eye(A.shape[1], dtype=R.dtype)
        delta = torch.linalg.solve(H, A.T @ b).reshape(V - 1, 3)
        R = torch.cat([R[:1], roma.rotvec_to_rotmat(delta) @ R[1:]])
        if float(delta.norm(dim=-1).max()) < 1e-10:
            break
    ang = torch.rad2deg(_edge_residuals(R, edges, R_rel).norm(dim=-1))
    return R, ang


def average_rotations(
    num_views: int,
    edges: Tensor,
    R_rel: Tensor,
    weights: Tensor | None = None,
    sigma_deg: float = 5.0,
) -> tuple[Tensor, Tensor]:
    """Spectral init + robust IRLS -> (V,3,3) world-to-camera rotations (R[0] = I), residuals (E,) deg."""
    edges = torch.as_tensor(edges, dtype=torch.long).reshape(-1, 2)
    R_rel = torch.as_tensor(R_rel, dtype=torch.float64)
    R = spectral_rotations(num_views, edges, R_rel, weights)
    return refine_rotations_irls(R, edges, R_rel, weights, sigma_deg=sigma_deg)


def chain_rotations(num_views: int, tree_edges: list[tuple[int, int]], R_rel: list[Tensor]) -> Tensor | None:
    """Global rotations from relative ones along a spanning tree (BFS from view 0); None if not spanning."""
    adj: dict[int, list[tuple[int, Tensor]]] = {v: [] for v in range(num_views)}
    for (i, j), Rij in zip(tree_edges, R_rel):
        adj[i].append((j, Rij))  # R_j = R_ij R_i
        adj[j].append((i, Rij.T))
    R: dict[int, Tensor] = {0: torch.eye(3, dtype=torch.float64)}
    stack = [0]
    while stack:
        i = stack.pop()
        for j, Rij in adj[i]:
            if j not in R:
                R[j] = Rij @ R[i]
                stack.append(j)
    if len(R) < num_views:
        return None
    return torch.stack([R[v] for v in range(num_views)])


def select_hypotheses(
    num_views: int,
    hyps: dict[tuple[int, int], list[tuple[Tensor, float]]],
    trials: int = 300,
    agree_deg: float = 5.0,
    seed: int = 0,
) -> tuple[Tensor, dict[tuple[int, int], int]]:
    """Pick one relative rotation per edge so that the view graph is as consistent as possible.

    Samples spanning trees (maximum spanning trees under random score perturbations, each edge
    taking a hypothesis at random, weighted by score), chains rotations along the tree, and scores
    the result by the summed scores of the edges with a hypothesis within `agree_deg` of it.
    Returns global rotations (V,3,3) (refined by robust averaging over the agreeing hypotheses)
    and the chosen hypothesis index per agreeing edge.

    Args: hyps: (i, j) -> list of (R_ij (3,3) float64, score) with R_j ~ R_ij R_i.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    rng = np.random.default_rng(seed)
    edges = [e for e in hyps if hyps[e]]
    best = (-1.0, None)
    total = sum(max(s for _, s in hyps[e]) for e in edges)
    since_best = 0
    for trial in range(trials):
        if best[0] >= total or since_best > 60:
            break  # every edge agrees, or no better tree for a while
        since_best += 1
        choice = {e: 0 if trial == 0 else _weighted_pick(rng, [s for _, s in hyps[e]]) for e in edges}
        w = np.array([hyps[e][choice[e]][1] for e in edges], float)
        noise = 0 if trial == 0 else rng.gumbel(size=len(w))
        cost = -(np.log(np.maximum(w, 1e-9)) + noise)
        cost = cost - cost.min() + 1.0  # positive weights for scipy (zeros mean "no edge")
        ij = np.array(edges).reshape(-1, 2)
        g = coo_matrix((cost, (ij[:, 0], ij[:, 1])), shape=(num_views, num_views))
        tree = minimum_spanning_tree(g).tocoo()
        tree_edges = [(int(a), int(b)) for a, b in zip(tree.row, tree.col)]
        rel = []
        for a, b in tree_edges:
            e = (a, b) if (a, b) in choice else (b, a)
            Rab = hyps[e][choice[e]][0]
            rel.append(Rab if e == (a, b) else Rab.T)
        R = chain_rotations(num_views, tree_edges, rel)
        if R is None:
            break  # the graph is not connected: no tree spans it
        score, _ = _agreement(R, hyps, agree_deg)
        if score > best[0]:
            best, since_best = (score, R), 0
    if best[1] is None:
        raise ValueError("view graph is not connected")
    _, picked = _agreement(best[1], hyps, agree_deg)
    e_idx = torch.tensor(list(picked), dtype=torch.long).reshape(-1, 2)
    R_rel = torch.stack([hyps[e][k][0] for e, k in picked.items()]).to(torch.float64)
    wts = torch.tensor([hyps[e][k][1] for e, k in picked.items()], dtype=torch.float64)
    R, _ = refine_rotations_irls(best[1], e_idx, R_rel, wts.sqrt(), sigma_deg=agree_deg)
    _, picked = _agreement(R, hyps, agree_deg)
    return R, picked


def _weighted_pick(rng, scores) -> int:
    p = np.asarray(scores, float)
    return int(rng.choice(len(p), p=p / p.sum()))


def _agreement(R: Tensor, hyps, agree_deg: float) -> tuple[float, dict[tuple[int, int], int]]:
    """Summed score of edges that have a hypothesis within agree_deg of R, and which one (best score)."""
    Rn = R.numpy() if isinstance(R, Tensor) else R
    cos_thr = np.cos(np.deg2rad(agree_deg))
    score, picked = 0.0, {}
    for (i, j), hs in hyps.items():
        if not hs:
            continue
        Rij = Rn[j] @ Rn[i].T
        best, best_k = -1.0, -1
        for k, (Rh, s) in enumerate(hs):
            Rh = Rh.numpy() if isinstance(Rh, Tensor) else Rh
            cos = (np.sum(Rh * Rij) - 1) / 2  # cos of the angle of Rh^T Rij
            if cos > cos_thr and s > best:
                best, best_k = s, k
        if best_k >= 0:
            score += best
            picked[(i, j)] = best_k
    return score, picked
