"""The pure-PyTorch reference renderer: compositing semantics, projection, SH and gradients."""

import math

import numpy as np
import pytest
import torch
from scipy.special import lpmv

from splat.render.composite_torch import bin_gaussians, composite_torch
from splat.render.project import project_gaussians
from splat.render.render import RenderSettings, render
from splat.render.sh import SH_C0, eval_sh
from splat.types import Gaussians


def brute_composite(means2d, conics, colors, opacities, depths, radii, W, H, bg, tile_size=16):
    """Dense per-pixel compositing, written straight from docs/RASTER_CONTRACT.md (no tiling tricks)."""
    T_ = tile_size
    tiles_x, tiles_y = math.ceil(W / T_), math.ceil(H / T_)
    m, r = means2d.detach().float(), radii.float()
    x0 = torch.floor((m[:, 0] - r) / T_).clamp(0, tiles_x)
    x1 = (torch.floor((m[:, 0] + r) / T_) + 1).clamp(0, tiles_x)
    y0 = torch.floor((m[:, 1] - r) / T_).clamp(0, tiles_y)
    y1 = (torch.floor((m[:, 1] + r) / T_) + 1).clamp(0, tiles_y)
    py, px = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    tx, ty = px // T_, py // T_
    dt = means2d.dtype
    C = torch.zeros(H, W, 3, dtype=dt)
    D = torch.zeros(H, W, dtype=dt)
    Tr = torch.ones(H, W, dtype=dt)
    done = torch.zeros(H, W, dtype=torch.bool)
    order = sorted(range(len(radii)), key=lambda i: (float(depths[i]), i))
    for i in order:
        if radii[i] <= 0:
            continue
        cover = (tx >= x0[i]) & (tx < x1[i]) & (ty >= y0[i]) & (ty < y1[i])
        dx = means2d[i, 0] - (px.to(dt) + 0.5)
        dy = means2d[i, 1] - (py.to(dt) + 0.5)
        a, b, c = conics[i]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = (opacities[i] * torch.exp(-sigma)).clamp_max(0.99)
        active = cover & ~done & (sigma >= 0) & (alpha >= 1 / 255)
        next_T = Tr * (1 - alpha)
        stop = active & (next_T < 1e-4)
        done = done | stop
        use = active & ~stop
        w = torch.where(use, Tr * alpha, 0.0)
        C = C + w[..., None] * colors[i]
        D = D + w * depths[i]
        Tr = torch.where(use, next_T, Tr)
    return C + Tr[..., None] * bg, 1 - Tr, D


def random_screen_gaussians(N, W, H, dtype=torch.float32, opacity_max=1.0, size=(0.5, 8.0)):
    """Random screen-space inputs to the compositor, some culled, some straddling the border."""
    means2d = torch.stack([torch.rand(N) * (W + 20) - 10, torch.rand(N) * (H + 20) - 10], -1)
    sig = size[0] + torch.rand(N, 2) * (size[1] - size[0])
    rho = torch.rand(N) * 1.6 - 0.8
    cov = torch.stack([sig[:, 0] ** 2, rho * sig[:, 0] * sig[:, 1], sig[:, 1] ** 2], -1)
    det = cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2
    conics = torch.stack([cov[:, 2] / det, -cov[:, 1] / det, cov[:, 0] / det], -1)
    radii = torch.ceil(3 * sig.amax(-1)).to(torch.int32)
    radii[torch.rand(N) < 0.1] = 0
    colors = torch.rand(N, 3)
    opacities = torch.rand(N) * opacity_max
    depths = torch.rand(N) * 5 + 1
    depths[: N // 4] = depths[N // 4 : 2 * (N // 4)]  # equal depths: ties broken by index
    return [
        t.to(dtype) if t.is_floating_point() else t
        for t in (means2d, conics, colors, opacities, depths, radii)
    ]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("tile_size", [16, 8])
def test_composite_matches_brute_force(dtype, tile_size):
    W, H = 45, 37  # not multiples of the tile size
    inputs = random_screen_gaussians(120, W, H, dtype)
    bg = torch.rand(3, dtype=dtype)
    got = composite_torch(*inputs, W, H, bg, tile_size=tile_size, chunk_budget=64)
    want = brute_composite(*inputs, W, H, bg, tile_size=tile_size)
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == dtype
        torch.testing.assert_close(g, w, atol=tol, rtol=tol)


def test_saturated_pixels_terminate_like_brute_force():
    W, H = 32, 32
    means2d, conics, colors, _, depths, radii = random_screen_gaussians(
        300, W, H, torch.float64, size=(6, 12)
    )
    opacities = 0.9 + 0.1 * torch.rand(300, dtype=torch.float64)  # some hit the 0.99 clamp
    radii[:] = 40
    bg = torch.rand(3, dtype=torch.float64)
    got = composite_torch(means2d, conics, colors, opacities, depths, radii, W, H, bg)
    want = brute_composite(means2d, conics, colors, opacities, depths, radii, W, H, bg)
    assert (got[1] > 1 - 1e-3).float().mean() > 0.9  # most pixels saturate and stop early
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-10, rtol=1e-10)
    # Termination is exact: T_final stays >= 1e-4 (the stopping Gaussian is not composited).
    assert float((1 - got[1]).min()) >= 1e-4 - 1e-12


def test_every_pixel_written_and_background_linear():
    W, H = 50, 35
    inputs = random_screen_gaussians(40, W, H, size=(0.5, 3.0))
    inputs[0][:, 0] *= 0.4  # footprints end before x = 34, so the last tile column stays empty
    b1, b2 = torch.rand(3), torch.rand(3)
    im1, a1, d1 = composite_torch(*inputs, W, H, b1)
    im2, a2, d2 = composite_torch(*inputs, W, H, b2)
    assert torch.isfinite(im1).all() and im1.shape == (H, W, 3)
    torch.testing.assert_close(a1, a2)
    torch.testing.assert_close(im1 - im2, (1 - a1)[..., None] * (b1 - b2), atol=1e-6, rtol=0)
    empty = a1 == 0
    assert empty[:, 48:].all()
    torch.testing.assert_close(im1[empty], b1.expand(int(empty.sum()), 3))
    assert (d1[empty] == 0).all()


def test_binning_follows_tile_rule_and_depth_order():
    W, H = 64, 48
    means2d, _, _, _, depths, radii = random_screen_gaussians(60, W, H)
    gids, counts = bin_gaussians(means2d, radii, depths, W, H, 16)
    assert counts.shape == (12,) and int(counts.sum()) == gids.numel()
    start = 0
    for tile, n in enumerate(counts.tolist()):
        ids = gids[start : start + n].tolist()
        start += n
        tx, ty = tile % 4, tile // 4
        keys = [(float(depths[i]), i) for i in ids]
        assert keys == sorted(keys)
        for i in range(60):
            mx, my, r = float(means2d[i, 0]), float(means2d[i, 1]), float(radii[i])
            x0, x1 = max(math.floor((mx - r) / 16), 0), min(math.floor((mx + r) / 16) + 1, 4)
            y0, y1 = max(math.floor((my - r) / 16), 0), min(math.floor((my + r) / 16) + 1, 3)
            assert (i in ids) == (r > 0 and x0 <= tx < x1 and y0 <= ty < y1)


def scene(N, degree=1, dtype=torch.float32, depth=4.0, spread=1.0, log_scale=(-3.0, -1.5)):
    """N random Gaussians in front of an identity camera looking down +z."""
    rest = (degree + 1) ** 2 - 1
    means = torch.randn(N, 3, dtype=dtype) * spread
    means[:, 2] = means[:, 2].abs() * 0.5 + depth
    lo, hi = log_scale
    return Gaussians(
        means,
        lo + (hi - lo) * torch.rand(N, 3, dtype=dtype),
        torch.randn(N, 4, dtype=dtype),
        torch.randn(N, dtype=dtype),
        0.5 * torch.randn(N, 3, dtype=dtype),
        0.2 * torch.randn(N, rest, 3, dtype=dtype),
    )


def pinhole(W, H, f, dtype=torch.float32):
    K = torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=dtype)
    return K, torch.eye(4, dtype=dtype)


def test_empty_scene_renders_background():
    K, w2c = pinhole(40, 30, 40.0)
    bg = torch.tensor([0.2, 0.5, 0.9])
    out = render(scene(0), (K, w2c, 40, 30), background=bg, backend="torch")
    assert out.image.shape == (30, 40, 3) and out.radii.shape == (0,)
    torch.testing.assert_close(out.image, bg.expand(30, 40, 3))
    assert (out.alpha == 0).all() and (out.depth == 0).all()


def test_gaussians_behind_camera_are_culled():
    g = scene(30)
    g.means[:15, 2] = -g.means[:15, 2]  # behind
    g.means[15:, 2] = 0.001  # in front of the camera but closer than the near plane
    K, w2c = pinhole(40, 30, 40.0)
    out = render(g, (K, w2c, 40, 30), background=torch.ones(3), backend="torch")
    assert (out.radii == 0).all() and not out.visible.any()
    assert (out.image == 1).all() and (out.alpha == 0).all()


def test_offscreen_gaussians_are_culled():
    g = scene(10, log_scale=(-4, -3.5))
    g.means[:, 0] = 50.0  # far to the right of the frustum
    K, w2c = pinhole(40, 30, 40.0)
    assert (project_gaussians(g.means, g.log_scales, g.quats, w2c, K, 40, 30).radii == 0).all()


def test_huge_and_tiny_gaussians_stay_finite():
    g = scene(20)
    g.log_scales[:10] = 3.0  # metres-wide at 4 m: covers the whole image
    g.log_scales[10:] = -14.0  # sub-pixel
    tensors = [t.requires_grad_() for t in g.tensors().values()]
    K, w2c = pinhole(48, 32, 40.0)
    out = render(g, (K, w2c, 48, 32), backend="torch")
    assert (out.radii[:10] > 48).all() and (out.radii[10:] <= 2).all()
    (out.image.sum() + out.depth.sum()).backward()
    assert torch.isfinite(out.image).all() and (out.alpha > 0.5).all()
    assert all(torch.isfinite(t.grad).all() for t in tensors)


def test_single_gaussian_peak_is_analytic():
    W = H = 33  # pixel 16 has its centre at 16.5 = cx, on the optical axis
    f, z, s, opacity = 30.0, 3.0, 0.05, 0.7
    K = torch.tensor([[f, 0, 16.5], [0, f, 16.5], [0, 0, 1]], dtype=torch.float64)
    color = torch.tensor([0.8, 0.3, 0.1], dtype=torch.float64)
    g = Gaussians(
        torch.tensor([[0.0, 0.0, z]], dtype=torch.float64),
        torch.full((1, 3), math.log(s), dtype=torch.float64),
        torch.tensor([[0.3, -0.5, 0.2, 0.7]], dtype=torch.float64),  # rotation is irrelevant (isotropic)
        torch.logit(torch.tensor([opacity], dtype=torch.float64)),
        ((color - 0.5) / SH_C0)[None],
        torch.zeros(1, 0, 3, dtype=torch.float64),
    )
    bg = torch.tensor([0.1, 0.2, 0.9], dtype=torch.float64)
    out = render(g, (K, torch.eye(4, dtype=torch.float64), W, H), background=bg, backend="torch")
    torch.testing.assert_close(out.image[16, 16], opacity * color + (1 - opacity) * bg)
    torch.testing.assert_close(out.alpha[16, 16], torch.tensor(opacity, dtype=torch.float64))
    torch.testing.assert_close(out.normalized_depth()[16, 16], torch.tensor(z, dtype=torch.float64))
    var2d = (f * s / z) ** 2 + 0.3  # EWA footprint plus the 0.3 px low-pass
    for dy, dx in [(0, 1), (1, 0), (-2, 0), (1, -1)]:
        expect = opacity * math.exp(-0.5 * (dx * dx + dy * dy) / var2d)
        assert abs(float(out.alpha[16 + dy, 16 + dx]) - expect) < 1e-12


def test_projection_cov2d_is_jacobian_sandwich():
    g = scene(6, dtype=torch.float64, spread=0.5)
    W, H = 64, 48
    K, w2c = pinhole(W, H, 50.0, torch.float64)
    w2c[:3, 3] = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    proj = project_gaussians(g.means, g.log_scales, g.quats, w2c, K, W, H, eps2d=0.0)
    q = torch.nn.functional.normalize(g.quats, dim=-1)
    for i in range(6):

        def to_pixel(x):
            p = w2c[:3, :3] @ x + w2c[:3, 3]
            return (K @ p)[:2] / p[2]

        J = torch.autograd.functional.jacobian(to_pixel, g.means[i])
        w, x, y, z = q[i]
        Rq = torch.stack(
            [
                torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
                torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]),
                torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]),
            ]
        )
        S = torch.diag(g.log_scales[i].exp())
        cov = Rq @ S @ S @ Rq.T
        torch.testing.assert_close(proj.cov2d[i], J @ cov @ J.T)
        torch.testing.assert_close(proj.means2d[i], to_pixel(g.means[i]))
        lam = torch.linalg.eigvalsh(proj.cov2d[i]).max()
        assert int(proj.radii[i]) == math.ceil(3 * math.sqrt(float(lam)))


def test_antialias_compensation():
    g = scene(20)
    K, w2c = pinhole(40, 30, 40.0)
    p = project_gaussians(g.means, g.log_scales, g.quats, w2c, K, 40, 30, antialias=True)
    det = p.cov2d[:, 0, 0] * p.cov2d[:, 1, 1] - p.cov2d[:, 0, 1] ** 2
    c = p.cov2d - 0.3 * torch.eye(2)
    det0 = c[:, 0, 0] * c[:, 1, 1] - c[:, 0, 1] ** 2
    torch.testing.assert_close(p.opacity_compensation, (det0 / det).sqrt())
    assert (p.opacity_compensation <= 1).all() and (p.opacity_compensation > 0).all()


def real_sh_direct(l, m, dirs):
    """Real SH with the Condon-Shortley phase (the 3DGS basis), from associated Legendre functions."""
    x, y, z = dirs.T.numpy()
    theta, phi = np.arccos(np.clip(z, -1, 1)), np.arctan2(y, x)
    am = abs(m)
    norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - am) / math.factorial(l + am))
    P = lpmv(am, l, np.cos(theta))
    if m == 0:
        return norm * P
    trig = np.cos(am * phi) if m > 0 else np.sin(am * phi)
    return math.sqrt(2) * norm * P * trig


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_eval_sh_matches_direct_formula(degree):
    N = 50
    dirs = torch.nn.functional.normalize(torch.randn(N, 3, dtype=torch.float64), dim=-1)
    sh = torch.randn(N, 16, 3, dtype=torch.float64)
    want = np.zeros((N, 3))
    k = 0
    for l in range(degree + 1):
        for m in range(-l, l + 1):
            want += real_sh_direct(l, m, dirs)[:, None] * sh[:, k].numpy()
            k += 1
    got = eval_sh(degree, sh, dirs)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-10)
    torch.testing.assert_close(eval_sh(degree, sh[:, 0], dirs, sh_rest=sh[:, 1:]), got)


def se3_exp(xi):
    """Twist (6,) -> 4x4 rigid transform via the matrix exponential (differentiable)."""
    w, v = xi[:3], xi[3:]
    A = torch.zeros(4, 4, dtype=xi.dtype)
    A[0, 1], A[0, 2], A[1, 2] = -w[2], w[1], -w[0]
    A[1, 0], A[2, 0], A[2, 1] = w[2], -w[1], w[0]
    A[:3, 3] = v
    return torch.linalg.matrix_exp(A)


def test_gradients_match_finite_differences():
    """gradcheck (float64) of image, alpha and depth w.r.t. every Gaussian field, the pose and K."""
    W = H = 16
    g = scene(4, degree=3, dtype=torch.float64, spread=0.3, log_scale=(-2.5, -1.8))
    g.opacity_logits.uniform_(-1.0, 1.0)  # away from the 0.99 clamp
    w2c0 = torch.eye(4, dtype=torch.float64)
    w2c0[:3, 3] = torch.tensor([0.05, -0.05, 0.2], dtype=torch.float64)
    kvec = torch.tensor([14.0, 15.0, 8.2, 7.9], dtype=torch.float64)
    xi = torch.zeros(6, dtype=torch.float64)
    bg = torch.tensor([0.3, 0.6, 0.1], dtype=torch.float64)

    def fn(means, log_scales, quats, logits, sh_dc, sh_rest, xi, kvec):
        gg = Gaussians(means, log_scales, quats, logits, sh_dc, sh_rest)
        K = torch.zeros(3, 3, dtype=torch.float64)
        K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[2, 2] = kvec[0], kvec[1], kvec[2], kvec[3], 1.0
        w2c = se3_exp(xi) @ w2c0
        out = render(gg, (K, w2c, W, H), background=bg, backend="torch")
        return out.image, out.alpha, out.depth

    inputs = [t.clone().requires_grad_() for t in (*g.tensors().values(), xi, kvec)]
    image = fn(*inputs)[0]
    assert (image - bg).abs().amax() > 0.1  # the Gaussians are in view
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_pose_and_intrinsics_receive_gradients():
    g = scene(30)
    K, w2c = pinhole(40, 30, 40.0)
    K.requires_grad_()
    w2c.requires_grad_()
    out = render(g, (K, w2c, 40, 30), backend="torch", settings=RenderSettings(antialias=True))
    (out.image * torch.rand_like(out.image)).sum().backward()
    assert w2c.grad[:3].abs().sum() > 0 and K.grad[:2].abs().sum() > 0
    assert torch.isfinite(w2c.grad).all() and torch.isfinite(K.grad).all()
