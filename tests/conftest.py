"""Shared fixtures: random cameras and Gaussians, drawn fresh each run."""

import pytest
import roma
import torch

from splat.types import Cameras, Gaussians


def make_cameras(V: int, width: int = 64, height: int = 48, dtype=torch.float64) -> Cameras:
    """V random OpenCV cameras with distinct random intrinsics, named img_000.png..."""
    w2c = torch.eye(4, dtype=dtype).repeat(V, 1, 1)
    w2c[:, :3, :3] = roma.random_rotmat(V, dtype=dtype)
    w2c[:, :3, 3] = 3 * torch.randn(V, 3, dtype=dtype)
    K = torch.eye(3, dtype=dtype).repeat(V, 1, 1)
    K[:, 0, 0] = width * (0.8 + torch.rand(V, dtype=dtype))
    K[:, 1, 1] = K[:, 0, 0] * (1 + 0.01 * torch.randn(V, dtype=dtype))
    K[:, 0, 2] = width / 2 + torch.randn(V, dtype=dtype)
    K[:, 1, 2] = height / 2 + torch.randn(V, dtype=dtype)
    return Cameras(K, w2c, [width] * V, [height] * V, [f"img_{i:03d}.png" for i in range(V)])


def make_gaussians(N: int, degree: int = 1) -> Gaussians:
    K = (degree + 1) ** 2 - 1
    return Gaussians(
        torch.randn(N, 3),
        torch.randn(N, 3) - 3,
        torch.nn.functional.normalize(torch.randn(N, 4), dim=-1),
        torch.randn(N),
        torch.randn(N, 3),
        torch.randn(N, K, 3),
    )


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread is ~10x faster than two on a shared 2-core machine.
    Use as `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def random_cameras():
    return make_cameras


@pytest.fixture
def random_gaussians():
    return make_gaussians
