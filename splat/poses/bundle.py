"""Bundle adjustment in PyTorch: Levenberg-Marquardt with a Schur complement on the points.

Unknowns: per-view world-to-camera poses (left updates T <- exp(xi) T, xi = (omega, dt)),
3D points, one focal length shared by all views (optimised as log f) and, on request, one radial
distortion coefficient k1 (COLMAP's SIMPLE_RADIAL: u = f (1 + k1 r^2) x/z + cx, r^2 = (x^2 + y^2)/z^2);
principal points stay at the given values. Residuals are pixel reprojection errors with a Huber loss.
Gauge: the views in `fixed` keep their pose (view 0 by default); the overall scale is left to
the damping and is fixed afterwards by `normalize_scale` (mean camera-centre distance from their
centroid = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import roma
import torch
from torch import Tensor


@dataclass
class Observations:
    """M 2D observations of 3D points: view index (M,), point index (M,), pixel (M,2)."""

    cam: Tensor
    pt: Tensor
    uv: Tensor

    def __len__(self) -> int:
        return self.cam.shape[0]

    def subset(self, mask: Tensor) -> Observations:
        return Observations(self.cam[mask], self.pt[mask], self.uv[mask])


@dataclass
class BAResult:
    w2c: Tensor  # (V,4,4)
    focal: float
    points: Tensor  # (P,3)
    residuals: Tensor  # (M,) reprojection error norms in pixels
    cost_history: list[float]
    k1: float = 0.0


def _mv(A: Tensor, x: Tensor) -> Tensor:
    """Batched small matrix-vector product (..., m, n) x (..., n) -> (..., m)."""
    return (A @ x[..., None])[..., 0]


def _mm_t(A: Tensor, B: Tensor) -> Tensor:
    """Batched A^T B for small blocks (..., k, m), (..., k, n) -> (..., m, n)."""
    return A.transpose(-1, -2) @ B


def _rotate(w2c: Tensor, X: Tensor, cam: Tensor) -> Tensor:
    """R[cam] X + t[cam] for (M,3) points, one BLAS product per view (tiny batched ones are slow on CPU)."""
    out = torch.empty_like(X)
    for v in torch.unique(cam).tolist():
        sel = cam == v
        out[sel] = X[sel] @ w2c[v, :3, :3].T + w2c[v, :3, 3]
    return out


def project(w2c: Tensor, focal: Tensor, pp: Tensor, points: Tensor, obs: Observations, k1=0.0):
    """Pixel projections (M,2) and camera-frame points (M,3) of the observed points."""
    Xc = _rotate(w2c, points[obs.pt], obs.cam)
    xy = Xc[:, :2] / Xc[:, 2:].clamp_min(1e-9)
    return focal * (1 + k1 * xy.square().sum(-1, keepdim=True)) * xy + pp[obs.cam], Xc


def _huber_weights(err: Tensor, delta: float) -> Tensor:
    return torch.where(err <= delta, torch.ones_like(err), delta / err.clamp_min(1e-12))


def _huber_cost(err: Tensor, delta: float) -> float:
    return float(torch.where(err <= delta, err**2, 2 * delta * err - delta**2).sum())


def _jacobians(w2c, focal, pp, points, obs, k1=None):
    """Residuals (M,2), Jacobians wrt (omega, dt, log f[, k1]) (M,2,7|8) and the point (M,2,3), in-front
    mask. k1=None: the pinhole model (no k1 column)."""
    uv_hat, Xc = project(w2c, focal, pp, points, obs, 0.0 if k1 is None else k1)
    x, y, z = Xc.unbind(-1)
    z = z.clamp_min(1e-9)
    zero = torch.zeros_like(z)
    a = focal / z
    Dp = torch.stack([torch.stack([a, zero, -a * x / z], -1), torch.stack([zero, a, -a * y / z], -1)], 1)
    if k1 is not None:  # d(1 + k1 r^2) xy / dxy, left of the pinhole Jacobian
        xn, yn = x / z, y / z
        d = 1 + k1 * (xn * xn + yn * yn)
        M = torch.stack(
            [torch.stack([d + 2 * k1 * xn * xn, 2 * k1 * xn * yn], -1),
             torch.stack([2 * k1 * xn * yn, d + 2 * k1 * yn * yn], -1)], 1
        )  # fmt: skip
        Dp = M @ Dp
    # d(exp(w) Xc)/dw = -[Xc]x, so the rotation columns are Dp @ -[Xc]x = Xc x (rows of Dp)
    J_omega = torch.linalg.cross(Xc[:, None, :].expand(-1, 2, 3), Dp, dim=-1)
    J_f = (uv_hat - pp[obs.cam])[..., None]
    Jc = torch.cat([J_omega, Dp, J_f], -1)
    if k1 is not None:
        xn, yn = x / z, y / z
        J_k1 = focal * (xn * xn + yn * yn)[:, None] * torch.stack([xn, yn], -1)
        Jc = torch.cat([Jc, J_k1[..., None]], -1)
    Jx = (Dp[..., :, None] * w2c[obs.cam, None, :3, :3]).sum(-2)
    return uv_hat - obs.uv, Jc, Jx, Xc[:, 2] > 1e-6


class _ParamMap:
    """Maps the C per-view columns (omega, dt, log f[, k1]) to the free-parameter vector: 6 per view,
    then the shared ones (log f, k1)."""

    def __init__(self, V: int, free: Tensor, optimize_focal: bool, radial: bool = False):
        shared = [optimize_focal] + [True] * radial
        G = len(shared)
        full = torch.cat([torch.arange(6 * V).reshape(V, 6), (6 * V + torch.arange(G)).expand(V, G)], 1)
        keep = torch.cat([free.repeat_interleave(6), torch.tensor(shared)])
        self.V, self.C, self.full, self.N = V, 6 + G, full, 6 * V + G
        self.keep = keep
        self.n = int(keep.sum())

    def square(self, blocks: Tensor) -> Tensor:
        """(V,V,C,C) camera-pair blocks -> (n,n) matrix over free parameters."""
        V, N, C = self.V, self.N, self.C
        rows = self.full[:, None, :, None].expand(V, V, C, C)
        cols = self.full[None, :, None, :].expand(V, V, C, C)
        out = torch.zeros(N * N, dtype=blocks.dtype).index_add_(
            0, (rows * N + cols).reshape(-1), blocks.reshape(-1)
        )
        return out.reshape(N, N)[self.keep][:, self.keep]

    def vec(self, v: Tensor) -> Tensor:
        """(V,C) -> (n,)."""
        out = torch.zeros(self.N, dtype=v.dtype).index_add_(0, self.full.reshape(-1), v.reshape(-1))
        return out[self.keep]

    def expand(self, d: Tensor) -> Tensor:
        """(n,) -> (V,C) per-view columns (zeros where fixed)."""
        full = torch.zeros(self.N, dtype=d.dtype)
        full[self.keep] = d
        return full[self.full]


def torch_threads(n: int):
    """Context manager: run with n torch threads (small batched ops thrash with OpenMP on a busy box)."""
    import contextlib

    @contextlib.contextmanager
    def _ctx():
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(old)

    return _ctx()


def bundle_adjust(
    w2c: Tensor,
    focal: float,
    pp: Tensor,
    points: Tensor,
    obs: Observations,
    fixed: tuple[int, ...] = (0,),
    optimize_focal: bool = True,
    optimize_poses: bool = True,
    huber_px: float = 2.0,
    iters: int = 40,
    tol: float = 1e-6,
    radial: bool = False,
    k1: float = 0.0,
) -> BAResult:
    """Refine poses, points, the shared focal and (radial=True) a shared k1 from `k1`.
    Shapes: w2c (V,4,4), pp (V,2), points (P,3)."""
    with torch_threads(1):
        return _bundle_adjust(
            w2c, focal, pp, points, obs, fixed, optimize_focal, optimize_poses, huber_px, iters, tol,
            radial, k1,
        )  # fmt: skip


def _bundle_adjust(
    w2c, focal, pp, points, obs, fixed, optimize_focal, optimize_poses, huber_px, iters, tol, radial, k1
):
    dt = torch.float64
    w2c, pp, points = w2c.to(dt).clone(), pp.to(dt), points.to(dt).clone()
    f = torch.tensor(float(focal), dtype=dt)
    k = torch.tensor(float(k1), dtype=dt)
    V, P = w2c.shape[0], points.shape[0]
    free = torch.zeros(V, dtype=torch.bool) if not optimize_poses else torch.ones(V, dtype=torch.bool)
    free[list(fixed)] = False
    pmap = _ParamMap(V, free, optimize_focal, radial)
    nc = pmap.C

    def cost_of(w2c_, f_, X_, k_):
        return _huber_cost((project(w2c_, f_, pp, X_, obs, k_)[0] - obs.uv).norm(dim=-1), huber_px)

    lam, cost = 1e-4, cost_of(w2c, f, points, k)
    history = [cost]
    oa, ob = _observation_pairs(obs.pt, P)
    pair_cam = obs.cam[oa] * V + obs.cam[ob]
    for _ in range(iters):
        r, Jc, Jx, front = _jacobians(w2c, f, pp, points, obs, k if radial else None)
        sw = (_huber_weights(r.norm(dim=-1), huber_px) * front).sqrt()[:, None]
        r, Jc, Jx = sw * r, sw[..., None] * Jc, sw[..., None] * Jx
        B_obs = _mm_t(Jc, Jx)  # (M,C,3)
        A = torch.zeros(V, nc, nc, dtype=dt).index_add_(0, obs.cam, _mm_t(Jc, Jc))
        g_c = torch.zeros(V, nc, dtype=dt).index_add_(0, obs.cam, _mv(Jc.transpose(1, 2), r))
        C = torch.zeros(P, 3, 3, dtype=dt).index_add_(0, obs.pt, _mm_t(Jx, Jx))
        g_x = torch.zeros(P, 3, dtype=dt).index_add_(0, obs.pt, _mv(Jx.transpose(1, 2), r))
        A_full = torch.zeros(V * V, nc, nc, dtype=dt)
        A_full[torch.arange(V) * (V + 1)] = A
        A_n, g_n = pmap.square(A_full.reshape(V, V, nc, nc)), pmap.vec(g_c)
        for _attempt in range(10):
            Cinv = torch.linalg.inv(C + lam * torch.diag_embed(torch.diagonal(C, dim1=1, dim2=2) + 1e-9))
            Q = B_obs @ Cinv[obs.pt]  # (M,C,3): E C^-1 per observation
            # Schur complement: sum over points of E_p C_p^-1 E_p^T, one CxC block per pair of
            # observations of the same point (sparse: no (P, V) tensor)
            T = torch.zeros(V * V, nc, nc, dtype=dt).index_add_(
                0, pair_cam, Q[oa] @ B_obs[ob].transpose(1, 2)
            )
            S = A_n + lam * torch.diag(torch.diagonal(A_n) + 1e-9) - pmap.square(T.reshape(V, V, nc, nc))
            QG = torch.zeros(V, nc, dtype=dt).index_add_(0, obs.cam, _mv(Q, g_x[obs.pt]))
            dc = torch.linalg.solve(S, -g_n + pmap.vec(QG)) if pmap.n else g_n
            dc_obs = pmap.expand(dc)[obs.cam]  # (M,7)
            Bt_dc = torch.zeros(P, 3, dtype=dt).index_add_(0, obs.pt, _mv(B_obs.transpose(1, 2), dc_obs))
            dx = -_mv(Cinv, g_x + Bt_dc)
            dview = pmap.expand(dc)
            w2c_n = _apply_pose_update(w2c, dview[:, :6])
            f_n = f * torch.exp(dview[0, 6]) if optimize_focal else f
            k_n = k + dview[0, 7] if radial else k
            X_n = points + dx
            cost_n = cost_of(w2c_n, f_n, X_n, k_n)
            if cost_n < cost:
                break
            lam *= 10
        if not cost_n < cost:
            break
        w2c, f, points, k, lam = w2c_n, f_n, X_n, k_n, max(lam / 10, 1e-9)
        rel = (cost - cost_n) / max(cost, 1e-30)
        cost = cost_n
        history.append(cost)
        if rel < tol:
            break
    res = (project(w2c, f, pp, points, obs, k)[0] - obs.uv).norm(dim=-1)
    return BAResult(w2c, float(f), points, res, history, float(k))


def _observation_pairs(pt: Tensor, P: int) -> tuple[Tensor, Tensor]:
    """All ordered pairs (a, b) of observations of the same point (a == b included), (K,), (K,)."""
    order = torch.argsort(pt, stable=True)
    n = torch.bincount(pt, minlength=P)
    start = torch.cumsum(n, 0) - n  # first sorted position of each point
    reps = n[pt[order]]  # each observation pairs with every observation of its point
    oa = order.repeat_interleave(reps)
    first = torch.cumsum(reps, 0) - reps
    within = torch.arange(int(reps.sum())) - first.repeat_interleave(reps)
    ob = order[start[pt[oa]] + within]
    return oa, ob


def _apply_pose_update(w2c: Tensor, xi: Tensor) -> Tensor:
    """Left update T <- [exp(w) R, exp(w) t + dt] per view; xi (V,6) = (w, dt)."""
    out = w2c.clone()
    dR = roma.rotvec_to_rotmat(xi[:, :3])
    out[:, :3, :3] = dR @ w2c[:, :3, :3]
    out[:, :3, 3] = _mv(dR, w2c[:, :3, 3]) + xi[:, 3:]
    return out


def normalize_scale(w2c: Tensor, points: Tensor, ref: int = 0) -> tuple[Tensor, Tensor]:
    """Similarity gauge: view `ref` at the origin with identity rotation, and the mean distance of
    the camera centres from their centroid equal to 1. Returns new (w2c, points)."""
    T0 = w2c[ref]
    c2w0 = torch.linalg.inv(T0)
    w2c = w2c @ c2w0
    points = (T0[:3, :3] @ points.T).T + T0[:3, 3]
    centers = -(w2c[:, :3, :3].transpose(1, 2) @ w2c[:, :3, 3:])[..., 0]
    spread = (centers - centers.mean(0)).norm(dim=-1).mean() if len(w2c) > 1 else torch.tensor(1.0)
    s = 1.0 / float(spread.clamp_min(1e-12))
    w2c = w2c.clone()
    w2c[:, :3, 3] *= s
    return w2c, points * s
