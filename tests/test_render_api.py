"""The render() API: camera forms, outputs, backends, SH degree, 2D-mean gradients."""

import importlib

import pytest
import torch

from splat.errors import SplatError
from splat.render.render import RenderOutput, RenderSettings, render
from splat.types import Cameras, Gaussians

render_module = importlib.import_module("splat.render.render")  # the package attribute is the function


def scene(N, degree=2, dtype=torch.float32):
    rest = (degree + 1) ** 2 - 1
    means = torch.randn(N, 3, dtype=dtype) * 0.8
    means[:, 2] = 4 + means[:, 2].abs()
    return Gaussians(
        means,
        torch.rand(N, 3, dtype=dtype) - 3.5,
        torch.randn(N, 4, dtype=dtype),
        torch.randn(N, dtype=dtype),
        torch.randn(N, 3, dtype=dtype),
        0.3 * torch.randn(N, rest, 3, dtype=dtype),
    )


def camera(W=48, H=32, dtype=torch.float32) -> Cameras:
    K = torch.tensor([[40.0, 0, W / 2 + 0.3], [0, 41.0, H / 2 - 0.2], [0, 0, 1]], dtype=dtype)
    w2c = torch.eye(4, dtype=dtype)
    w2c[:3, 3] = 0.1 * torch.randn(3, dtype=dtype)
    return Cameras(K[None], w2c[None], [W], [H], ["a.png"])


def test_outputs_shapes_and_camera_forms():
    g, cam = scene(40), camera()
    out = render(g, cam, backend="torch", background=[0.1, 0.2, 0.3])
    assert isinstance(out, RenderOutput) and out.backend == "torch"
    assert out.image.shape == (32, 48, 3) and out.alpha.shape == (32, 48) and out.depth.shape == (32, 48)
    assert out.radii.shape == (40,) and out.radii.dtype == torch.int32
    assert torch.equal(out.visible, out.radii > 0) and out.means2d.shape == (40, 2)
    same = render(
        g, (cam.K[0], cam.w2c[0], 48, 32), backend="torch", background=torch.tensor([0.1, 0.2, 0.3])
    )
    torch.testing.assert_close(same.image, out.image, rtol=0, atol=0)
    nd = out.normalized_depth()
    hit = out.alpha > 0.5
    assert hit.any() and (nd[hit] > 3).all() and (nd[out.alpha == 0] == 0).all()


def test_means2d_gradient_is_retained():
    g = scene(30)
    g.means.requires_grad_()
    out = render(g, camera(), backend="torch")
    (out.image * torch.rand_like(out.image)).sum().backward()
    grad = out.means2d_grad
    assert grad is not None and grad.shape == (30, 2)
    assert (grad[~out.visible] == 0).all() and grad[out.visible].abs().sum() > 0
    assert g.means.grad is not None


def test_pose_gradient_flows_through_cameras():
    g, cam = scene(30), camera()
    w2c = cam.w2c.clone().requires_grad_()
    out = render(g, Cameras(cam.K, w2c, cam.width, cam.height), backend="torch")
    out.image.mean().backward()
    assert w2c.grad is not None and w2c.grad[0, :3].abs().sum() > 0


def test_sh_degree_selects_bands():
    g, cam = scene(25, degree=3), camera()
    full = render(g, cam, backend="torch").image
    g2 = Gaussians(g.means, g.log_scales, g.quats, g.opacity_logits, g.sh_dc, g.sh_rest.clone())
    g2.sh_rest[:, 3:] += 1.0  # bands 2 and 3 changed
    low = render(g, cam, sh_degree=1, backend="torch").image
    torch.testing.assert_close(render(g2, cam, sh_degree=1, backend="torch").image, low)
    assert not torch.allclose(render(g2, cam, backend="torch").image, full)
    with pytest.raises(ValueError, match="sh_degree"):
        render(scene(5, degree=1), cam, sh_degree=2, backend="torch")


def test_settings_change_the_render():
    g, cam = scene(40), camera()
    base = render(g, cam, backend="torch")
    aa = render(g, cam, backend="torch", settings=RenderSettings(antialias=True))
    assert (aa.alpha <= base.alpha + 1e-6).all() and not torch.allclose(aa.alpha, base.alpha)
    far = render(g, cam, backend="torch", settings=RenderSettings(far=1.0))
    assert not far.visible.any()


def test_bad_arguments_raise_clear_errors():
    g, cam = scene(5), camera()
    with pytest.raises(ValueError, match="backend"):
        render(g, cam, backend="vulkan")
    with pytest.raises(ValueError, match="one view"):
        render(g, Cameras.cat([cam, camera()]), backend="torch")


def test_cuda_backend_refuses_cpu_tensors():
    with pytest.raises(SplatError, match="CUDA tensors"):
        render(scene(5), camera(), backend="cuda")


def test_cpu_backend_plugs_in_or_explains(monkeypatch):
    g, cam = scene(30), camera()
    try:
        render_module.native_backend()
    except SplatError as e:
        assert "backend='torch'" in str(e)
        with pytest.raises(SplatError, match="native CPU rasterizer"):
            render(g, cam, backend="cpu")
        assert render(g, cam).backend == "torch"  # auto falls back
    else:
        bg = torch.rand(3)
        ref = render(g, cam, backend="torch", background=bg)
        out = render(g, cam, backend="cpu", background=bg)
        assert out.backend == "cpu"
        for a, b in [(out.image, ref.image), (out.alpha, ref.alpha), (out.depth, ref.depth)]:
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    # The auto backend stays on the reference for float64 inputs.
    assert render(scene(5, dtype=torch.float64), camera(dtype=torch.float64)).backend == "torch"


def test_auto_uses_native_kernel_when_present(monkeypatch):
    calls = []

    def fake(*args, **kwargs):
        calls.append(args[6:8])
        return render_module.composite_torch(*args, **kwargs)

    monkeypatch.setattr(render_module.native_build, "available", lambda: True)
    monkeypatch.setattr(render_module, "native_backend", lambda: (render_module.project_torch, fake))
    out = render(scene(10), camera())
    assert out.backend == "cpu" and calls == [(48, 32)]
