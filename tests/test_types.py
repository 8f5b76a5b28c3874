"""The data model: subsetting, concatenation, device/dtype moves and validation."""

import pytest
import roma
import torch

from splat.errors import SplatError, ValidationError
from splat.types import Cameras, Gaussians


def random_cameras(V: int, dtype=torch.float64) -> Cameras:
    R = roma.random_rotmat(V, dtype=dtype)
    w2c = torch.eye(4, dtype=dtype).repeat(V, 1, 1)
    w2c[:, :3, :3] = R
    w2c[:, :3, 3] = torch.randn(V, 3, dtype=dtype)
    K = torch.eye(3, dtype=dtype).repeat(V, 1, 1)
    K[:, 0, 0] = K[:, 1, 1] = 300 + 100 * torch.rand(V, dtype=dtype)
    K[:, 0, 2], K[:, 1, 2] = 256, 192
    return Cameras(K, w2c, [512] * V, [384] * V, [f"img_{i}.jpg" for i in range(V)])


def random_gaussians(N: int, degree: int = 1) -> Gaussians:
    K = (degree + 1) ** 2 - 1
    return Gaussians(
        torch.randn(N, 3),
        torch.randn(N, 3) - 3,
        torch.nn.functional.normalize(torch.randn(N, 4), dim=-1),
        torch.randn(N),
        torch.randn(N, 3),
        torch.randn(N, K, 3),
    )


def test_camera_centres_match_inverse_pose():
    cams = random_cameras(5).validate()
    assert torch.allclose(cams.centers, cams.c2w[:, :3, 3], atol=1e-12)


def test_camera_subsetting_keeps_names_and_sizes():
    cams = random_cameras(6)
    sub = cams[[4, 1]]
    assert sub.names == ["img_4.jpg", "img_1.jpg"]
    assert torch.equal(sub.w2c, cams.w2c[[4, 1]])
    assert len(cams[2]) == 1 and cams[-1].names == ["img_5.jpg"]
    assert cams[torch.tensor([True, False] * 3)].names == ["img_0.jpg", "img_2.jpg", "img_4.jpg"]
    both = Cameras.cat([cams[:2], cams[2:]])
    assert torch.equal(both.K, cams.K) and both.names == cams.names
    assert cams.index("img_3.jpg") == 3
    assert cams.to(dtype=torch.float32).K.dtype == torch.float32


def test_camera_validation_errors_name_the_problem():
    cams = random_cameras(3)
    cams.w2c[1, 0, 0] = float("nan")
    with pytest.raises(ValidationError, match="non-finite"):
        cams.validate()
    cams = random_cameras(3)
    cams.w2c[0, :3, :3] *= 2
    with pytest.raises(ValidationError, match="orthonormal"):
        cams.validate()
    cams = random_cameras(3)
    cams.names[2] = cams.names[0]
    with pytest.raises(ValidationError, match="unique"):
        cams.validate()


def test_gaussians_subset_concat_and_moves():
    g = random_gaussians(10, degree=2).validate()
    assert g.sh_degree == 2
    mask = torch.rand(10) > 0.5
    sub = g[mask]
    assert len(sub) == int(mask.sum()) and torch.equal(sub.means, g.means[mask])
    assert len(g[3]) == 1
    joined = Gaussians.cat([g[:4], g[4:]])
    assert all(torch.equal(a, b) for a, b in zip(joined.tensors().values(), g.tensors().values()))
    assert g.to(dtype=torch.float64).sh_rest.dtype == torch.float64
    assert g.with_sh_degree(3).sh_rest.shape == (10, 15, 3)
    assert torch.equal(g.with_sh_degree(3).sh_rest[:, :8], g.sh_rest)
    assert g.with_sh_degree(0).sh_rest.shape == (10, 0, 3)
    assert len(Gaussians.empty(sh_degree=3).validate()) == 0


def test_gaussians_validation():
    g = random_gaussians(8)
    g.opacity_logits[5] = float("inf")
    with pytest.raises(ValidationError, match="opacity_logits has non-finite values in 1 rows"):
        g.validate()
    g = random_gaussians(8)
    g.quats[2] *= 3
    with pytest.raises(ValidationError, match="unit length"):
        g.validate()
    g = random_gaussians(8)
    g.log_scales = g.log_scales[:, :2]
    with pytest.raises(ValidationError, match="log_scales"):
        g.validate()


def test_from_points_round_trips_colour_and_scale():
    pts, rgb, s = torch.randn(20, 3), torch.rand(20, 3), torch.rand(20) + 0.01
    g = Gaussians.from_points(pts, rgb, s, opacity=0.3).validate()
    from splat.render.sh import sh_to_rgb

    assert torch.allclose(sh_to_rgb(g.sh_dc), rgb, atol=1e-6)
    assert torch.allclose(g.scales, s[:, None].expand(20, 3), atol=1e-6)
    assert torch.allclose(g.opacities, torch.full((20,), 0.3), atol=1e-6)


def test_validation_error_is_a_splat_error_and_a_value_error():
    from splat.train import TrainingDiverged

    assert issubclass(ValidationError, SplatError) and issubclass(ValidationError, ValueError)
    assert issubclass(TrainingDiverged, SplatError)
