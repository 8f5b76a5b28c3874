"""Bundle adjustment: lowers the reprojection error of a perturbed synthetic problem and recovers
the shared focal; the scale gauge helper normalises the camera spread."""

import numpy as np
import roma
import torch

from splat.geometry.se3 import look_at_w2c
from splat.poses.bundle import Observations, bundle_adjust, normalize_scale, project


def _problem(V=5, P=400, f=450.0):
    dt = torch.float64
    pts = torch.randn(P, 3, dtype=dt)
    ang = torch.linspace(0, 1.2, V, dtype=dt) + float(np.random.rand())
    w2c = []
    for a in ang:
        eye = torch.stack([4 * torch.sin(a), 0.5 * torch.randn((), dtype=dt), -4 * torch.cos(a)])
        w2c.append(look_at_w2c(eye, torch.zeros(3, dtype=dt), torch.tensor([0, 1.0, 0], dtype=dt)))
    w2c = torch.stack(w2c).to(dt)
    pp = torch.tensor([[256.0, 192.0]], dtype=dt).repeat(V, 1)
    obs = Observations(
        torch.arange(V).repeat_interleave(P), torch.arange(P).repeat(V), torch.zeros(V * P, 2, dtype=dt)
    )
    obs.uv = project(w2c, torch.tensor(f, dtype=dt), pp, pts, obs)[0] + 0.3 * torch.randn(V * P, 2, dtype=dt)
    return w2c, pp, pts, obs.subset(_in_view(w2c, pts, obs))


def _in_view(w2c, pts, obs, size=(512, 384), near=0.5):
    """(M,) observations a camera could make: in front of it and inside its image (a random point next to
    the camera plane projects thousands of pixels away, and with a radial term to nowhere)."""
    Xc = (w2c[obs.cam, :3, :3] @ pts[obs.pt, :, None])[..., 0] + w2c[obs.cam, :3, 3]
    inside = (obs.uv >= 0).all(-1) & (obs.uv[:, 0] < size[0]) & (obs.uv[:, 1] < size[1])
    return (Xc[:, 2] > near) & inside


def test_bundle_adjustment_recovers_focal_and_poses():
    f_true = 400 + 100 * float(np.random.rand())
    w2c, pp, pts, obs = _problem(f=f_true)
    V = len(w2c)
    noisy = w2c.clone()
    noisy[1:, :3, :3] = (
        roma.rotvec_to_rotmat(0.03 * torch.randn(V - 1, 3, dtype=torch.float64)) @ w2c[1:, :3, :3]
    )
    noisy[1:, :3, 3] += 0.1 * torch.randn(V - 1, 3, dtype=torch.float64)
    pts0 = pts + 0.05 * torch.randn_like(pts)
    f0 = f_true * 0.85
    before = (project(noisy, torch.tensor(f0, dtype=torch.float64), pp, pts0, obs)[0] - obs.uv).norm(dim=-1)
    res = bundle_adjust(noisy, f0, pp, pts0, obs)
    assert float(res.residuals.median()) < 0.5 < float(before.median())
    assert abs(res.focal / f_true - 1) < 0.01
    # poses agree with the truth up to a similarity: compare after normalising both
    a, _ = normalize_scale(res.w2c, res.points)
    b, _ = normalize_scale(w2c, pts)
    centres = lambda T: -(T[:, :3, :3].transpose(1, 2) @ T[:, :3, 3:])[..., 0]  # noqa: E731
    assert float((centres(a) - centres(b)).norm(dim=-1).max()) < 0.01
    assert float(roma.rotmat_geodesic_distance(a[:, :3, :3], b[:, :3, :3]).max()) < np.deg2rad(0.3)


def test_normalize_scale_gauge():
    w2c, _, pts, _ = _problem()
    w2c_n, pts_n = normalize_scale(w2c, pts, ref=2)
    c = -(w2c_n[:, :3, :3].transpose(1, 2) @ w2c_n[:, :3, 3:])[..., 0]
    assert torch.allclose(w2c_n[2], torch.eye(4, dtype=w2c.dtype), atol=1e-9)
    assert abs(float((c - c.mean(0)).norm(dim=-1).mean()) - 1) < 1e-9


def test_radial_bundle_adjustment_recovers_focal_and_k1():
    """Observations of a SIMPLE_RADIAL camera (k1 < 0: barrel, as compact-camera photos): with k1 free the
    focal and k1 come back from a 3 % focal error; the pinhole model is left with larger residuals."""
    dt = torch.float64
    f_true, k1_true = 450.0, -0.2 - 0.1 * float(np.random.rand())
    w2c, pp, pts, obs = _problem(f=f_true)
    obs.uv = project(w2c, torch.tensor(f_true, dtype=dt), pp, pts, obs, k1_true)[0]
    obs.uv = obs.uv + 0.3 * torch.randn_like(obs.uv)
    obs = obs.subset(_in_view(w2c, pts, obs))  # the distorted pixels must be in the image too
    radial = bundle_adjust(w2c, 1.03 * f_true, pp, pts, obs, radial=True)
    pinhole = bundle_adjust(w2c, 1.03 * f_true, pp, pts, obs)
    assert abs(radial.focal / f_true - 1) < 0.005 and abs(radial.k1 - k1_true) < 0.01
    assert (
        float(radial.residuals.median()) < 0.5
        and radial.residuals.median() < 0.8 * pinhole.residuals.median()
    )
    assert pinhole.k1 == 0.0
