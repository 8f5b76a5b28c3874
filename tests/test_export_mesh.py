"""TSDF mesh of rendered depths: a splat sphere gives a mesh on the sphere."""

import math

import numpy as np
import pytest
import torch

from splat.geometry.se3 import look_at_w2c
from splat.types import Cameras, Gaussians

try:
    import open3d  # noqa: F401
except ImportError as exc:  # not installed, or its libusb-1.0-0 system library is missing
    pytest.skip(f"open3d unavailable: {exc}", allow_module_level=True)


def sphere_gaussians(n: int, radius: float = 1.0) -> Gaussians:
    """Flat opaque Gaussians tangent to a sphere (Fibonacci points), random grey levels."""
    k = torch.arange(n, dtype=torch.float64) + 0.5
    phi = torch.acos(1 - 2 * k / n)
    theta = math.pi * (1 + 5**0.5) * k
    normal = torch.stack([phi.sin() * theta.cos(), phi.sin() * theta.sin(), phi.cos()], 1)
    z = torch.tensor([0.0, 0, 1], dtype=torch.float64).expand(n, 3)
    axis = torch.linalg.cross(z, normal)
    half = 0.5 * torch.atan2(axis.norm(dim=1), normal[:, 2])
    quats = torch.cat(
        [half.cos()[:, None], torch.nn.functional.normalize(axis + 1e-12, dim=1) * half.sin()[:, None]], 1
    )
    spacing = radius * math.sqrt(4 * math.pi / n)
    log_scales = torch.log(
        torch.tensor([0.8 * spacing, 0.8 * spacing, spacing / 20], dtype=torch.float64)
    ).expand(n, 3)
    rgb = 0.3 + 0.4 * torch.rand(n, 1, dtype=torch.float64).expand(n, 3)
    return Gaussians(
        radius * normal,
        log_scales.clone(),
        quats,
        torch.full((n,), 5.0, dtype=torch.float64),
        (rgb - 0.5) / 0.28209479177387814,
        torch.zeros(n, 0, 3, dtype=torch.float64),
    ).to(dtype=torch.float32)


def ring_cameras(views: int, width: int = 64, height: int = 48, dist: float = 3.0) -> Cameras:
    w2c = []
    for v in range(views):
        a = 2 * math.pi * v / views
        eye = torch.tensor([dist * math.cos(a), dist * math.sin(a), 0.8 * math.sin(3 * a)]).double()
        w2c.append(look_at_w2c(eye, torch.zeros(3).double(), torch.tensor([0.0, 0, 1])))
    K = torch.tensor(
        [[1.1 * width, 0, width / 2], [0, 1.1 * width, height / 2], [0, 0, 1]], dtype=torch.float64
    )
    return Cameras(K.expand(views, 3, 3).clone(), torch.stack(w2c), [width] * views, [height] * views)


def backproject(depth: np.ndarray, cam: Cameras) -> np.ndarray:
    """World points (P, 3) of the pixels with depth > 0 (pixel centres at +0.5)."""
    K, w2c = cam.K[0].numpy(), cam.w2c[0].numpy()
    v, u = np.nonzero(depth > 0)
    z = depth[v, u]
    p = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0] * z, (v + 0.5 - K[1, 2]) / K[1, 1] * z, z], 1)
    return (p - w2c[:3, 3]) @ w2c[:3, :3]


def test_tsdf_mesh_of_a_splat_sphere_lies_on_the_rendered_surface():
    from splat.export.mesh import fuse_tsdf, rendered_depths

    g, cams = sphere_gaussians(3000), ring_cameras(6)
    frames = rendered_depths(g, cams, backend="torch")
    colour, depth = frames[0]
    assert colour.dtype == np.uint8 and depth.shape == (48, 64) and depth.dtype == np.float32
    # The splats' expected depth lies about 0.02 outside the unit sphere (Gaussians 0.05 wide).
    rendered = np.linalg.norm(
        np.concatenate([backproject(d, cams[v]) for v, (_, d) in enumerate(frames)]), axis=1
    )
    assert abs(np.median(rendered) - 1.0) < 0.04
    mesh = fuse_tsdf(frames, cams, voxel=0.02)
    v = np.asarray(mesh.vertices)
    assert len(v) > 1000 and len(mesh.triangles) > 1000
    assert len(np.asarray(mesh.vertex_colors)) == len(v)
    r = np.linalg.norm(v, axis=1)
    # Measured: median |r - rendered median| 0.007 (a third of a voxel); |r - 1| 0.025 (0.04 at 90%).
    assert np.median(np.abs(r - np.median(rendered))) < 0.01, np.median(np.abs(r - np.median(rendered)))
    assert np.median(np.abs(r - 1)) < 0.04 and np.quantile(np.abs(r - 1), 0.9) < 0.06


def test_far_background_does_not_coarsen_the_default_voxel_and_floaters_are_dropped():
    # Trained scenes keep a few huge Gaussians far away (sky, distant walls): the default voxel must
    # follow what the cameras see (the rendered depth), not the extent of all centres.
    from splat.export.mesh import default_voxel, fuse_tsdf, rendered_depths, tsdf_mesh

    sphere, cams = sphere_gaussians(3000), ring_cameras(6)
    far = sphere_gaussians(20, radius=60.0)
    far.log_scales[:] = math.log(0.5)
    g = Gaussians.cat([sphere, far])
    frames = rendered_depths(g, cams, backend="torch")
    voxel = default_voxel(frames)
    assert 1.5 / 256 < voxel < 3.5 / 256  # the sphere is 2-3 units from the cameras
    mesh = tsdf_mesh(g, cams, backend="torch")
    assert len(mesh.vertices) > 1000
    labels, sizes, _ = mesh.cluster_connected_triangles()
    assert min(np.asarray(sizes)) >= 100
    assert len(fuse_tsdf(frames, cams, voxel, min_triangles=10**9).triangles) == 0
