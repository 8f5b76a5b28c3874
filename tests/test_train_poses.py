"""Pose deltas: identity at zero, view 0 fixed in training, test-time refinement recovers a perturbation."""

import math
import os
from dataclasses import replace

import pytest
import torch

from splat.geometry.se3 import rotation_angle_deg, se3_exp
from splat.train import PoseDeltas, TrainConfig, refine_poses, train
from splat.train.synthetic import arc_cameras, fastest_cpu_backend, random_gaussians, render_views
from splat.types import Cameras

BACKEND = os.environ.get("SPLAT_TEST_TRAIN_BACKEND") or fastest_cpu_backend()


pytestmark = pytest.mark.usefixtures("one_thread")


def test_deltas_start_at_identity_and_camera_matches_apply():
    cams = arc_cameras(3).to(dtype=torch.float64)
    deltas = PoseDeltas.create(3, extent=2.0, focal=True, pivot=3 * torch.rand(3))
    assert torch.equal(deltas.apply(cams).w2c, cams.w2c) and torch.equal(deltas.apply(cams).K, cams.K)
    with torch.no_grad():
        deltas.twist.copy_(0.01 * torch.randn(3, 6))
        deltas.log_focal.copy_(0.05 * torch.randn(3))
    applied = deltas.apply(cams)
    assert torch.equal(applied.w2c[0], cams.w2c[0])  # view 0 is the gauge
    assert applied.w2c.dtype == torch.float64
    for v in range(3):
        one = deltas.camera(cams, v)
        torch.testing.assert_close(one.w2c[0].detach(), applied.w2c[v])
        torch.testing.assert_close(one.K[0].detach(), applied.K[v])
    f = deltas.log_focal.detach().double().exp()
    torch.testing.assert_close(applied.K[:, 0, 0], cams.K[:, 0, 0] * f)
    torch.testing.assert_close(applied.K[:, :2, 2], cams.K[:, :2, 2])  # principal point untouched
    rho = torch.cat([deltas.twist[1, :3] * 2.0, deltas.twist[1, 3:]]).detach().double()
    P = torch.eye(4, dtype=torch.float64)
    P[2, 3] = -deltas.pivot[1].double()  # moves the pivot to the origin
    torch.testing.assert_close(applied.w2c[1], torch.linalg.inv(P) @ se3_exp(rho) @ P @ cams.w2c[1])


def test_refine_poses_recovers_a_small_perturbation_with_gaussians_frozen():
    gen = torch.Generator().manual_seed(int(torch.randint(1 << 30, ())))
    cams = arc_cameras(2, 48, 36)
    gaussians = random_gaussians(300, generator=gen, log_scale=-2.8)
    images = render_views(gaussians, cams, BACKEND)
    axis = torch.nn.functional.normalize(torch.randn(3, generator=gen), dim=0)
    shift = 0.03 * torch.nn.functional.normalize(torch.randn(3, generator=gen), dim=0)
    w2c = cams.w2c.clone()
    w2c[1] = se3_exp(torch.cat([shift, math.radians(1.0) * axis])) @ w2c[1]
    perturbed = Cameras(cams.K, w2c, cams.width, cams.height, cams.names)
    before = {k: v.clone() for k, v in gaussians.tensors().items()}

    refined = refine_poses(gaussians, perturbed[[1]], images[1:], steps=60, lr=5e-3, backend=BACKEND)

    def errors(c: Cameras) -> tuple[float, float]:
        angle = rotation_angle_deg(c.w2c[0, :3, :3], cams.w2c[1, :3, :3]).item()
        return angle, (c.centers[0] - cams.centers[1]).norm().item()

    (a0, t0), (a1, t1) = errors(perturbed[[1]]), errors(refined)
    assert a1 < 0.5 * a0 and t1 < 0.5 * t0
    assert all(torch.equal(before[k], v) for k, v in gaussians.tensors().items())
    assert refined.names == [cams.names[1]] and torch.equal(refined.K, cams.K[[1]])


def test_training_with_pose_refine_keeps_view_0_fixed():
    gen = torch.Generator().manual_seed(int(torch.randint(1 << 30, ())))
    cams = arc_cameras(3, 32, 24)
    images = render_views(random_gaussians(100, generator=gen), cams, BACKEND)
    cfg = TrainConfig(steps=10, backend=BACKEND, sh_degree=1, pose_refine=True, lrs={"pose": 1e-3})
    cfg = replace(cfg, resolution_schedule=(), adam_rescale_cap=0.0, sh_degree_every=1000)
    result = train(random_gaussians(100, generator=gen), cams, images, cfg, progress=False)
    assert torch.equal(result.cameras.w2c[0], cams.w2c[0])
    assert not torch.equal(result.cameras.w2c[1:], cams.w2c[1:])
    result.cameras.validate()
