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
    Rn, Rrel = R.detach().cpu().numpy().astype(np.float64), R_rel.detach().cpu().numpy().astype(np.float64)
    w0 = np.ones(E) if weights is None else weights.detach().cpu().numpy().astype(np.float64)
    sigma = np.deg2rad(sigma_deg)
    i, j = edges[:, 0].cpu().numpy(), edges[:, 1].cpu().numpy()
    eye = np.eye(3)
    for _ in range(iters):
        M = Rn[j] @ Rn[i].transpose(0, 2, 1)  # current relative rotations (E,3,3)
        r = _rotvec(Rrel @ M.transpose(0, 2, 1))  # (E,3)
        w = w0 / (1 + (np.linalg.norm(r, axis=1) / sigma) ** 2)  # Cauchy IRLS weights
        # normal equations of w_j - M w_i = r, block by block (numpy: tiny torch matmuls are slow on CPU)
        H = np.zeros((V, V, 3, 3))
        g = np.zeros((V, 3))
        np.add.at(H, (j, j), w[:, None, None] * eye)
        np.add.at(H, (i, i), w[:, None, None] * eye)
        np.add.at(H, (i, j), -w[:, None, None] * M.transpose(0, 2, 1))
        np.add.at(H, (j, i), -w[:, None, None] * M)
        np.add.at(g, j, w[:, None] * r)
        np.add.at(g, i, -w[:, None] * np.einsum("eba,eb->ea", M, r))
        H = H.transpose(0, 2, 1, 3).reshape(3 * V, 3 * V)[3:, 3:]  # drop view 0: gauge
        delta = np.linalg.solve(H + 1e-9 * np.eye(3 * V - 3), g.reshape(-1)[3:]).reshape(V - 1, 3)
        Rn = np.concatenate([Rn[:1], _rotmat(delta) @ Rn[1:]])
        if np.abs(delta).max() < 1e-8:
            break
    R = torch.from_numpy(Rn).to(R.dtype)
    ang = torch.rad2deg(_edge_residuals(R, edges, R_rel.to(R.dtype)).norm(dim=-1))
    return R, ang


def _rotvec(R: np.ndarray) -> np.ndarray:
    """(N,3,3) rotations -> (N,3) rotation vectors."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(R).as_rotvec()


def _rotmat(rv: np.ndarray) -> np.ndarray:
    """(N,3) rotation vectors -> (N,3,3) rotations."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(rv).as_matrix()


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


class _HypothesisTable:
    """All hypotheses of all edges as flat arrays: edge id (H,), views i, j (H,), R_ij (H,3,3), score (H,)."""

    def __init__(self, hyps: dict[tuple[int, int], list[tuple[Tensor, float]]]):
        self.edges = [e for e in hyps if hyps[e]]
        rows = [(k, e, h) for k, e in enumerate(self.edges) for h in hyps[e]]
        self.edge = np.array([k for k, _, _ in rows], np.int64)
        self.i = np.array([e[0] for _, e, _ in rows], np.int64)
        self.j = np.array([e[1] for _, e, _ in rows], np.int64)
        self.R = np.stack([np.asarray(h[0], np.float64) for _, _, h in rows]) if rows else np.zeros((0, 3, 3))
        self.score = np.array([float(h[1]) for _, _, h in rows])
        self.start = np.flatnonzero(np.r_[True, np.diff(self.edge) != 0]) if rows else np.zeros(0, np.int64)
        self.rank = np.arange(len(rows)) - self.start[self.edge] if rows else np.zeros(0, np.int64)

    def pick_random(self, rng, first: bool) -> np.ndarray:
        """Row index of one hypothesis per edge: the first (best) one, or one drawn with p ~ score."""
        key = (
            -self.rank.astype(float)
            if first
            else np.log(np.maximum(self.score, 1e-9)) + rng.gumbel(size=len(self.score))
        )
        return self._argmax_per_edge(key, np.ones(len(key), bool))

    def _argmax_per_edge(self, key: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Row of the largest key per edge among valid rows, -1 for edges without one."""
        key = np.where(valid, key, -np.inf)
        order = np.lexsort((-key, self.edge))  # by edge, then key descending
        best = order[np.r_[True, np.diff(self.edge[order]) != 0]]
        return np.where(valid[best], best, -1)

    def agreement(self, R: np.ndarray, agree_deg: float) -> tuple[float, np.ndarray]:
        """Summed score of edges with a hypothesis within agree_deg of R (V,3,3), and the chosen row per
        edge (best score among the agreeing ones, -1 where none agrees)."""
        Rij = R[self.j] @ R[self.i].transpose(0, 2, 1)
        cos = (np.einsum("hab,hab->h", self.R, Rij) - 1) / 2
        best = self._argmax_per_edge(self.score, cos > np.cos(np.deg2rad(agree_deg)))
        return float(self.score[best[best >= 0]].sum()), best

    def improve(self, R: np.ndarray, agree_deg: float, sweeps: int = 3) -> tuple[float, np.ndarray]:
        """Coordinate ascent on the agreement score: each view in turn takes the rotation implied by
        the hypothesis of one of its edges (and its neighbour's rotation) that scores best.
        Fixes trees with a few wrong edges without sampling new ones. Returns (score, R (V,3,3))."""
        R = R.copy()
        cos_thr = np.cos(np.deg2rad(agree_deg))
        for _ in range(sweeps):
            changed = False
            for v in range(len(R)):
                rows = np.flatnonzero((self.i == v) | (self.j == v))
                if len(rows) == 0:
                    continue
                a = self.i[rows] == v
                # R_j = R_ij R_i: as i, R_v = R_ij^T R_j; as j, R_v = R_ij R_i
                other = np.where(a, self.j[rows], self.i[rows])
                Rh = self.R[rows]
                cands = np.where(a[:, None, None], Rh.transpose(0, 2, 1) @ R[other], Rh @ R[other])
                cands = np.concatenate([R[v][None], cands])  # candidate 0: keep the current rotation
                # relative rotation each row would see for each candidate: (C, rows, 3, 3)
                rel = np.where(
                    a[None, :, None, None],
                    R[other][None] @ cands[:, None].transpose(0, 1, 3, 2),
                    cands[:, None] @ R[other][None].transpose(0, 1, 3, 2),
                )
                cos = (np.einsum("rab,crab->cr", Rh, rel) - 1) / 2
                val = np.where(cos > cos_thr, self.score[rows][None], 0.0)
                starts = np.flatnonzero(np.r_[True, np.diff(self.edge[rows]) != 0])
                gain = np.maximum.reduceat(val, starts, axis=1).sum(1)
                k = int(np.argmax(gain))
                if gain[k] > gain[0] + 1e-9:
                    R[v], changed = cands[k], True
            if not changed:
                break
        return self.agreement(R, agree_deg)[0], R


def select_hypotheses(
    num_views: int,
    hyps: dict[tuple[int, int], list[tuple[Tensor, float]]],
    trials: int = 300,
    agree_deg: float = 5.0,
    seed: int = 0,
    patience: int = 20,
) -> tuple[Tensor, dict[tuple[int, int], int]]:
    """Pick one relative rotation per edge so that the view graph is as consistent as possible.

    Samples spanning trees (maximum spanning trees under random score perturbations, each edge
    taking a hypothesis at random, weighted by score), chains rotations along the tree, and scores
    the result by the summed scores of the edges with a hypothesis within `agree_deg` of it, after
    a coordinate ascent that lets single views switch to another hypothesis of their edges.
    Stops when every edge agrees or after `patience` trials without a better tree.
    Returns global rotations (V,3,3) (refined by robust averaging over the agreeing hypotheses)
    and the chosen hypothesis index per agreeing edge.

    Args: hyps: (i, j) -> list of (R_ij (3,3) float64, score) with R_j ~ R_ij R_i.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import minimum_spanning_tree

    rng = np.random.default_rng(seed)
    table = _HypothesisTable(hyps)
    if not table.edges:
        raise ValueError("view graph is not connected")
    ij = np.array(table.edges).reshape(-1, 2)
    total = float(np.maximum.reduceat(table.score, table.start).sum())
    best, since_best = (-1.0, None), 0
    for trial in range(trials):
        if best[0] >= total or since_best > patience:
            break  # every edge agrees, or no better tree for a while
        since_best += 1
        choice = table.pick_random(rng, first=trial == 0)  # (E,) rows
        w = table.score[choice]
        noise = 0 if trial == 0 else rng.gumbel(size=len(w))
        cost = -(np.log(np.maximum(w, 1e-9)) + noise)
        cost = cost - cost.min() + 1.0  # positive weights for scipy (zeros mean "no edge")
        g = coo_matrix((cost, (ij[:, 0], ij[:, 1])), shape=(num_views, num_views))
        tree = minimum_spanning_tree(g).tocoo()
        edge_of = {(int(a), int(b)): k for k, (a, b) in enumerate(ij.tolist())}
        tree_edges, rel = [], []
        for a, b in zip(tree.row.tolist(), tree.col.tolist()):
            k = edge_of.get((a, b), edge_of.get((b, a)))
            Rab = torch.from_numpy(table.R[choice[k]])
            tree_edges.append((a, b))
            rel.append(Rab if table.edges[k] == (a, b) else Rab.T)
        R = chain_rotations(num_views, tree_edges, rel)
        if R is None:
            break  # the graph is not connected: no tree spans it
        score, R = table.improve(R.numpy(), agree_deg)
        if score > best[0]:
            best, since_best = (score, torch.from_numpy(R @ R[0].T)), 0
    if best[1] is None:
        raise ValueError("view graph is not connected")
    _, rows = table.agreement(best[1].numpy(), agree_deg)
    rows = rows[rows >= 0]
    e_idx = torch.from_numpy(np.stack([table.i[rows], table.j[rows]], 1))
    R_rel = torch.from_numpy(table.R[rows])
    wts = torch.from_numpy(table.score[rows]).sqrt()
    R, _ = refine_rotations_irls(best[1], e_idx, R_rel, wts, sigma_deg=agree_deg)
    _, rows = table.agreement(R.numpy(), agree_deg)
    picked = {table.edges[k]: int(table.rank[r]) for k, r in enumerate(rows) if r >= 0}
    return R, picked
