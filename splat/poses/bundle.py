"""Bundle adjustment in PyTorch: Levenberg-Marquardt with a Schur complement on the points.

Unknowns: per-view world-to-camera poses (left updates T <- exp(xi) T, xi = (omega, dt)),
3D points, and one focal length shared by all views (optimised as log f); principal points
stay at the given values. Residuals are pixel reprojection errors with a Huber loss.
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


def project(w2c: Tensor, focal: Tensor, pp: Tensor, points: Tensor, obs: Observations):
    """Pixel projections (M,2) and camera-frame points (M,3) of the observed points."""
    R, t = w2c[obs.cam, :3, :3], w2c[obs.cam, :3, 3]
    Xc = (R @ points[obs.pt][..., None])[..., 0] + t
    z = Xc[:, 2:].clamp_min(1e-9)
    return focal * Xc[:, :2] / z + pp[obs.cam], Xc


def _huber_weights(err: Tensor, delta: float) -> Tensor:
    return torch.where(err <= delta, torch.ones_like(err), delta / err.clamp_min(1e-12))


def _huber_cost(err: Tensor, delta: float) -> float:
    return float(torch.where(err <= delta, err**2, 2 * delta * err - delta**2).sum())


def _jacobians(w2c, focal, pp, points, obs):
    """Residuals (M,2) and Jacobians wrt (omega, dt, log f) (M,2,7) and the point (M,2,3)."""
    uv_hat, Xc = project(w2c, focal, pp, points, obs)
    x, y, z = Xc.unbind(-1)
    z = z.clamp_min(1e-9)
    zero = torch.zeros_like(z)
    Dp = (focal / z)[:, None, None] * torch.stack(
        [torch.stack([1 + zero, zero, -x / z], -1), torch.stack([zero, 1 + zero, -y / z], -1)], 1
    )  # (M,2,3)
    J_omega = -Dp @ _skew(Xc)  # d(exp(w) Xc)/dw = -[Xc]x
    J_f = (uv_hat - pp[obs.cam])[..., None]
    Jc = torch.cat([J_omega, Dp, J_f], -1)
    Jx = Dp @ w2c[obs.cam, :3, :3]
    return uv_hat - obs.uv, Jc, Jx, Xc[:, 2] > 1e-6


def _skew(v: Tensor) -> Tensor:
    z = torch.zeros_like(v[:, 0])
    return torch.stack(
        [
            torch.stack([z, -v[:, 2], v[:, 1]], -1),
            torch.stack([v[:, 2], z, -v[:, 0]], -1),
            torch.stack([-v[:, 1], v[:, 0], z], -1),
        ],
        1,
    )


def _obs_pairs(pt: Tensor) -> tuple[Tensor, Tensor]:
    """All ordered pairs (a, b) of observations that see the same point (including a == b)."""
    order = torch.argsort(pt, stable=True)
    sp = pt[order]
    M = len(pt)
    start = torch.searchsorted(sp, sp, right=False)
    end = torch.searchsorted(sp, sp, right=True)
    pos = torch.arange(M)
    a_list, b_list = [], []
    for k in range(int((end - start).max()) if M else 0):
        ok = pos + k < end
        a, b = order[pos[ok]], order[pos[ok] + k]
        a_list += [a, b] if k else [a]
        b_list += [b, a] if k else [b]
    return torch.cat(a_list), torch.cat(b_list)


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
    iters: int = 50,
    tol: float = 1e-10,
) -> BAResult:
    """Refine poses, points and the shared focal. Shapes: w2c (V,4,4), pp (V,2), points (P,3)."""
    dt = torch.float64
    w2c, pp, points = w2c.to(dt).clone(), pp.to(dt), points.to(dt).clone()
    f = torch.tensor(float(focal), dtype=dt)
    V, P = w2c.shape[0], points.shape[0]
    # global camera-parameter index of each of the 7 per-observation camera columns (-1 = fixed)
    cam_index = torch.arange(6 * V).reshape(V, 6)
    free = torch.ones(V, dtype=torch.bool)
    free[list(fixed)] = False
    if not optimize_poses:
        free[:] = False
    cam_index[~free] = -1
    n_pose = int(free.sum()) * 6
    cam_index[free] = torch.arange(n_pose).reshape(-1, 6)
    nc = n_pose + int(optimize_focal)
    f_index = torch.tensor([n_pose if optimize_focal else -1])
    col_index = torch.cat([cam_index[obs.cam], f_index.expand(len(obs), 1)], 1)  # (M,7)
    pa, pb = _obs_pairs(obs.pt)

    def cost_of(w2c_, f_, X_):
        r = project(w2c_, f_, pp, X_, obs)[0] - obs.uv
        return _huber_cost(r.norm(dim=-1), huber_px)

    lam, cost = 1e-3, cost_of(w2c, f, points)
    history = [cost]
    for _ in range(iters):
        r, Jc, Jx, front = _jacobians(w2c, f, pp, points, obs)
        sw = (_huber_weights(r.norm(dim=-1), huber_px) * front).sqrt()[:, None, None]
        r, Jc, Jx = sw[..., 0] * r, sw * Jc, sw * Jx
        valid = col_index >= 0
        A_obs = Jc.transpose(1, 2) @ Jc  # (M,7,7)
        B_obs = Jc.transpose(1, 2) @ Jx  # (M,7,3)
        g_c_obs = (Jc.transpose(1, 2) @ r[..., None])[..., 0]  # (M,7)
        C = torch.zeros(P, 3, 3, dtype=dt).index_add_(0, obs.pt, Jx.transpose(1, 2) @ Jx)
        g_x = torch.zeros(P, 3, dtype=dt).index_add_(0, obs.pt, (Jx.transpose(1, 2) @ r[..., None])[..., 0])
        A = _scatter_square(A_obs, col_index, col_index, valid, valid, nc)
        g_c = _scatter_vec(g_c_obs, col_index, valid, nc)
        improved = False
        for _attempt in range(8):
            Cd = C + lam * torch.diag_embed(torch.diagonal(C, dim1=1, dim2=2) + 1e-9)
            Cinv = torch.linalg.inv(Cd)
            Q = B_obs @ Cinv[obs.pt]  # (M,7,3)
            S = A + lam * torch.diag(torch.diagonal(A) + 1e-9)
            S = S - _scatter_square(Q[pa] @ B_obs[pb].transpose(1, 2), col_index[pa], col_index[pb],
                                    valid[pa], valid[pb], nc)
            rhs = -g_c + _scatter_vec((Q @ g_x[obs.pt][..., None])[..., 0], col_index, valid, nc)
            dc = torch.linalg.solve(S + 1e-12 * torch.eye(nc, dtype=dt), rhs) if nc else rhs
            dc_obs = torch.where(valid, torch.cat([dc, dc.new_zeros(1)])[col_index], 0.0)
            Bt_dc = torch.zeros(P, 3, dtype=dt).index_add_(
                0, obs.pt, (B_obs.transpose(1, 2) @ dc_obs[..., None])[..., 0]
            )
            dx = -(Cinv @ (g_x + Bt_dc)[..., None])[..., 0]
            w2c_n, f_n = _apply_pose_update(w2c, dc, free, n_pose), f
            if optimize_focal:
                f_n = f * torch.exp(dc[n_pose])
            X_n = points + dx
            cost_n = cost_of(w2c_n, f_n, X_n)
            if cost_n < cost:
                w2c, f, points, lam = w2c_n, f_n, X_n, max(lam / 10, 1e-9)
                improved = True
                break
            lam *= 10
        if not improved:
            break
        rel = (cost - cost_n) / max(cost, 1e-30)
        cost = cost_n
        history.append(cost)
        if rel < tol:
            break
    res = (project(w2c, f, pp, points, obs)[0] - obs.uv).norm(dim=-1)
    return BAResult(w2c, float(f), points, res, history)


def _scatter_square(blocks: Tensor, rows: Tensor, cols: Tensor, vr: Tensor, vc: Tensor, n: int) -> Tensor:
    """Sum (M,7,7) blocks into an (n,n) matrix at rows[m,a], cols[m,b], skipping fixed columns."""
    ok = vr[:, :, None] & vc[:, None, :]
    lin = (rows[:, :, None] * n + cols[:, None, :])[ok]
    return torch.zeros(n * n, dtype=blocks.dtype).index_add_(0, lin, blocks[ok]).reshape(n, n)


def _scatter_vec(v: Tensor, idx: Tensor, valid: Tensor, n: int) -> Tensor:
    return torch.zeros(n, dtype=v.dtype).index_add_(0, idx[valid], v[valid])


def _apply_pose_update(w2c: Tensor, dc: Tensor, free: Tensor, n_pose: int) -> Tensor:
    out = w2c.clone()
    if n_pose == 0:
        return out
    xi = dc[:n_pose].reshape(-1, 6)
    dR = roma.rotvec_to_rotmat(xi[:, :3])
    out[free, :3, :3] = dR @ w2c[free, :3, :3]
    out[free, :3, 3] = (dR @ w2c[free, :3, 3][..., None])[..., 0] + xi[:, 3:]
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
