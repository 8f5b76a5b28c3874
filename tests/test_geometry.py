import math

import numpy as np
import pytest
import roma
import torch

from splat.geometry.align import apply_sim3_to_w2c, ate, umeyama
from splat.geometry.camera import camera_centers, project, scale_intrinsics, unproject
from splat.geometry.se3 import (
    invert_rigid,
    look_at_w2c,
    make_w2c,
    quat_wxyz_to_rotmat,
    rotation_angle_deg,
    rotmat_to_quat_wxyz,
    se3_exp,
)

D = torch.float64


def rand_rot(*batch):
    """Random rotations (*batch, 3, 3); (1, 3, 3) without arguments."""
    batch = batch or (1,)
    return roma.random_rotmat(batch, dtype=D)


def rand_K(W=640, H=480):
    f = 400 + 200 * torch.rand(2, dtype=D)
    return torch.tensor([[f[0], 0, W / 2], [0, f[1], H / 2], [0, 0, 1]], dtype=D)


def cameras_looking_at_origin(V, radius=4.0):
    eye = torch.nn.functional.normalize(torch.randn(V, 3, dtype=D), dim=-1) * radius
    return look_at_w2c(eye, torch.zeros(V, 3, dtype=D), torch.tensor([0.0, 0, 1], dtype=D))


# --- se3 -------------------------------------------------------------------------------------


def test_quat_rotmat_round_trip():
    q = torch.nn.functional.normalize(torch.randn(100, 4, dtype=D), dim=-1)
    R = quat_wxyz_to_rotmat(q)
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=D).expand(100, 3, 3), atol=1e-12)
    q2 = rotmat_to_quat_wxyz(R)
    assert (q2[:, 0] >= 0).all()
    assert torch.allclose(q2, q * torch.sign(q[:, :1]), atol=1e-10)
    assert torch.allclose(quat_wxyz_to_rotmat(q2), R, atol=1e-12)
    # wxyz order: a rotation about z by 90 degrees
    qz = torch.tensor([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)], dtype=D)
    Rz = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=D)
    assert torch.allclose(quat_wxyz_to_rotmat(qz), Rz, atol=1e-12)
    # unnormalised input is normalised first
    assert torch.allclose(quat_wxyz_to_rotmat(3 * qz), Rz, atol=1e-12)


def test_make_and_invert_rigid():
    R, t = rand_rot(7), torch.randn(7, 3, dtype=D)
    T = make_w2c(R, t)
    assert torch.equal(T[:, 3], torch.tensor([0, 0, 0, 1], dtype=D).expand(7, 4))
    Ti = invert_rigid(T)
    assert torch.allclose(Ti @ T, torch.eye(4, dtype=D).expand(7, 4, 4), atol=1e-12)
    assert torch.allclose(Ti, torch.linalg.inv(T), atol=1e-12)


def _expm_twist(xi):
    """Reference: matrix exponential of the 4x4 twist matrix."""
    M = torch.zeros(4, 4, dtype=D)
    w = xi[3:]
    M[:3, :3] = torch.tensor([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]], dtype=D)
    M[:3, 3] = xi[:3]
    return torch.linalg.matrix_exp(M)


@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-4, 0.3, 0.49, 0.51, 1.0, 3.0])
def test_se3_exp_matches_matrix_exponential(angle):
    for _ in range(5):
        rho = torch.randn(3, dtype=D)
        omega = torch.nn.functional.normalize(torch.randn(3, dtype=D), dim=0) * angle
        xi = torch.cat([rho, omega])
        T = se3_exp(xi)
        assert torch.allclose(T, _expm_twist(xi), atol=1e-12, rtol=0)
        assert torch.allclose(
            rotation_angle_deg(torch.eye(3, dtype=D), T[:3, :3]),
            torch.tensor(math.degrees(angle), dtype=D),
            atol=1e-9,
        )


def test_se3_exp_batched_gradients_finite_at_zero():
    xi = torch.zeros(4, 6, dtype=D, requires_grad=True)
    T = se3_exp(xi)
    assert torch.allclose(T, torch.eye(4, dtype=D).expand(4, 4, 4))
    (T * torch.randn_like(T)).sum().backward()
    assert torch.isfinite(xi.grad).all()
    # the gradient at zero of the translation column w.r.t. rho is the identity
    xi0 = torch.zeros(6, dtype=D)
    J = torch.autograd.functional.jacobian(lambda x: se3_exp(x)[:3, 3], xi0)
    assert torch.allclose(J[:, :3], torch.eye(3, dtype=D))
    assert torch.autograd.gradcheck(se3_exp, (0.3 * torch.randn(2, 6, dtype=D, requires_grad=True),))
    assert torch.autograd.gradcheck(se3_exp, (1e-3 * torch.randn(2, 6, dtype=D, requires_grad=True),))


def test_se3_exp_float32_close_to_float64():
    xi = torch.randn(50, 6, dtype=D) * torch.logspace(-6, 0.5, 50, dtype=D)[:, None]
    assert torch.allclose(se3_exp(xi.float()).double(), se3_exp(xi), atol=2e-6)


def test_look_at_opencv_convention():
    eye = torch.tensor([0.0, 0, 5], dtype=D)
    w2c = look_at_w2c(eye, torch.zeros(3, dtype=D), torch.tensor([0.0, 1, 0], dtype=D))
    R = w2c[:3, :3]
    assert torch.allclose(R @ R.T, torch.eye(3, dtype=D), atol=1e-12) and torch.det(R) > 0
    assert torch.allclose(camera_centers(w2c[None])[0], eye, atol=1e-12)
    # target straight ahead at depth 5, world up appears towards -y (image up), world +x to the right
    pc = (w2c @ torch.tensor([[0.0, 0, 0, 1], [0, 1, 0, 1], [1, 0, 0, 1]], dtype=D).T).T[:, :3]
    assert torch.allclose(pc[0], torch.tensor([0.0, 0, 5], dtype=D), atol=1e-12)
    assert pc[1, 1] < 0 and pc[2, 0] > 0
    # degenerate: viewing along up still gives a valid rotation
    w2c = look_at_w2c(eye, torch.zeros(3, dtype=D), torch.tensor([0.0, 0, 1], dtype=D))
    R = w2c[:3, :3]
    assert torch.isfinite(R).all() and torch.allclose(R @ R.T, torch.eye(3, dtype=D), atol=1e-12)
    assert torch.allclose(R[2], torch.tensor([0.0, 0, -1], dtype=D))


def test_rotation_angle_deg():
    axis = torch.nn.functional.normalize(torch.randn(3, dtype=D), dim=0)
    R1 = rand_rot()[0]
    for deg in [1e-6, 0.01, 5.0, 90.0, 179.0]:
        R2 = R1 @ roma.rotvec_to_rotmat(axis * math.radians(deg))
        assert abs(float(rotation_angle_deg(R1, R2)) - deg) < 1e-8 * max(1, deg)


# --- camera ----------------------------------------------------------------------------------


def test_project_principal_point_and_unproject_round_trip():
    K = rand_K()
    w2c = make_w2c(rand_rot()[0], torch.randn(3, dtype=D))
    C = camera_centers(w2c[None])[0]
    # the point on the optical axis lands on the principal point (image centre under COLMAP pixels)
    axis_pt = C + 3.0 * w2c[2, :3]
    uv, depth = project(axis_pt[None], K, w2c)
    assert torch.allclose(uv[0], K[:2, 2], atol=1e-10) and torch.allclose(depth, torch.tensor([3.0], dtype=D))
    uv = torch.rand(200, 2, dtype=D) * torch.tensor([640.0, 480], dtype=D)
    depth = 0.5 + 10 * torch.rand(200, dtype=D)
    X = unproject(uv, depth, K, w2c)
    uv2, depth2 = project(X, K, w2c)
    assert torch.allclose(uv2, uv, atol=1e-9) and torch.allclose(depth2, depth, atol=1e-12)


def test_camera_centers_and_scale_intrinsics():
    w2c = cameras_looking_at_origin(5)
    assert torch.allclose(camera_centers(w2c), invert_rigid(w2c)[:, :3, 3], atol=1e-12)
    K = rand_K(640, 480)
    K2 = scale_intrinsics(K, 0.5, 0.25)
    assert torch.allclose(K2, torch.diag(torch.tensor([0.5, 0.25, 1], dtype=D)) @ K)
    assert torch.allclose(K2[:2, 2], torch.tensor([160.0, 60.0], dtype=D))  # still the image centre
    # a point projects to the same relative image position after resizing
    X = torch.randn(10, 3, dtype=D) * 0.5
    uv, _ = project(X, K, w2c[0])
    uv2, _ = project(X, K2, w2c[0])
    assert torch.allclose(uv2, uv * torch.tensor([0.5, 0.25], dtype=D), atol=1e-10)


# --- alignment -------------------------------------------------------------------------------


def rand_sim3():
    return float(0.2 + 3 * torch.rand(())), rand_rot()[0], 5 * torch.randn(3, dtype=D)


def test_umeyama_recovers_sim3_and_rigid():
    src = torch.randn(30, 3, dtype=D)
    s, R, t = rand_sim3()
    dst = s * src @ R.T + t
    s2, R2, t2 = umeyama(src, dst)
    assert abs(s2 - s) < 1e-10 and torch.allclose(R2, R, atol=1e-10) and torch.allclose(t2, t, atol=1e-9)
    s3, R3, t3 = umeyama(src, src @ R.T + t, with_scale=False)
    assert s3 == 1.0 and torch.allclose(R3, R, atol=1e-10) and torch.allclose(t3, t, atol=1e-9)
    # float32 and numpy inputs give float64 results
    s4, R4, _ = umeyama(src.float().numpy(), dst.float())
    assert R4.dtype == D and abs(s4 - s) < 1e-4


def test_umeyama_never_returns_a_reflection():
    src = torch.randn(20, 3, dtype=D)
    dst = src * torch.tensor([1.0, 1, -1], dtype=D)  # a mirror image: best orthogonal map is a reflection
    _, R, _ = umeyama(src, dst)
    assert torch.allclose(torch.det(R), torch.tensor(1.0, dtype=D), atol=1e-12)
    assert torch.allclose(R @ R.T, torch.eye(3, dtype=D), atol=1e-12)


def test_ate_zero_for_sim3_copy():
    gt = torch.cumsum(torch.randn(15, 3, dtype=D), 0)
    s, R, t = rand_sim3()
    est = (gt - t) @ R / s  # est = inverse Sim(3) of gt
    out = ate(est, gt)
    assert out["rmse"] < 1e-9 and out["rel"] < 1e-9 and out["per_view"].shape == (15,)
    assert abs(out["s"] - s) < 1e-9 and torch.allclose(out["R"], R, atol=1e-9)


def test_ate_hand_computed_without_alignment():
    gt = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2]], dtype=D)
    est = gt.clone()
    est[3] += torch.tensor([0.0, 0.3, 0.4], dtype=D)  # one centre off by 0.5
    out = ate(est, gt, align="none")
    assert abs(out["rmse"] - math.sqrt(0.25 / 4)) < 1e-12
    # spread: mean (0.5,0.5,0.5); squared distances 0.75, 2.75, 2.75, 2.75 -> RMS 1.5
    assert abs(out["rel"] - 0.25 / 1.5) < 1e-12
    assert torch.allclose(out["per_view"], torch.tensor([0, 0, 0, 0.5], dtype=D))


def _brute_force_sim3_rmse(est, gt):
    """Minimise the Sim(3) residual over (log s, rotvec, t) with scipy, in float64."""
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    e, g = est.numpy(), gt.numpy()

    def resid(p):
        return (np.exp(p[0]) * Rotation.from_rotvec(p[1:4]).apply(e) + p[4:] - g).ravel()

    best = min(
        (
            least_squares(
                resid, np.r_[0, Rotation.random().as_rotvec(), 0, 0, 0], xtol=1e-15, ftol=1e-15, gtol=1e-15
            )
            for _ in range(5)
        ),
        key=lambda r: r.cost,
    )
    return math.sqrt(2 * best.cost / len(e))


def test_ate_sim3_matches_brute_force_least_squares():
    gt = (
        torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2]], dtype=D)
        + torch.randn(4, 3, dtype=D) * 0.1
    )
    s, R, t = rand_sim3()
    est = (gt - t) @ R / s
    est[1] += 0.2 * torch.randn(3, dtype=D)
    out = ate(est, gt)
    assert out["rmse"] > 1e-3
    assert abs(out["rmse"] - _brute_force_sim3_rmse(est, gt)) < 1e-7
    # alignment can only help: Sim(3) <= SE(3) <= none
    assert out["rmse"] <= ate(est, gt, align="se3")["rmse"] + 1e-12


def test_apply_sim3_to_w2c_maps_centres_and_points_consistently():
    w2c = cameras_looking_at_origin(6)
    s, R, t = rand_sim3()
    new = apply_sim3_to_w2c(w2c, s, R, t)
    C = camera_centers(w2c)
    assert torch.allclose(camera_centers(new), s * C @ R.T + t, atol=1e-10)
    Rn = new[:, :3, :3]
    assert torch.allclose(Rn @ Rn.transpose(1, 2), torch.eye(3, dtype=D).expand(6, 3, 3), atol=1e-12)
    # a scene point moved by the same Sim(3) projects to the same pixel at s times the depth
    K, X = rand_K(), torch.randn(20, 3, dtype=D) * 0.5
    for v in range(6):
        uv, d = project(X, K, w2c[v])
        uv2, d2 = project(s * X @ R.T + t, K, new[v])
        assert torch.allclose(uv2, uv, atol=1e-8) and torch.allclose(d2, s * d, atol=1e-10)
    # ATE of the aligned cameras against the mapped ones is zero
    assert ate(camera_centers(new), s * C @ R.T + t, align="none")["rmse"] < 1e-10
