"""The native CPU compositing kernel against its twins: composite_torch and a dense brute force.

Images must agree within 1e-5 (max abs); gradients within 1e-4 in relative norm per tensor:
||g_cpu - g_ref|| / (||g_ref|| + 1e-12). Inputs are drawn fresh on every run.
"""

import math

import pytest
import torch

from splat.native import build
from splat.render.composite_torch import composite_torch

if not build.available():
    pytest.skip(f"native kernel unavailable: {build.status()}", allow_module_level=True)
from splat.native.ops import composite_cpu  # noqa: E402

IMAGE_TOL = 1e-5
GRAD_TOL = 1e-4


def screen_gaussians(N, W, H, size=(0.5, 12.0), opaque=0.2, culled=0.1, max_ratio=6.0):
    """Random compositor inputs: overlapping anisotropic Gaussians, some opaque, some culled, depth ties."""
    means2d = torch.stack([torch.rand(N) * (W + 20) - 10, torch.rand(N) * (H + 20) - 10], -1)
    sig_major = size[0] + torch.rand(N) * (size[1] - size[0])
    sig_minor = sig_major / (1 + torch.rand(N) * (max_ratio - 1))
    theta = torch.rand(N) * math.pi
    c, s = torch.cos(theta), torch.sin(theta)
    cov = torch.stack(
        [
            sig_major**2 * c * c + sig_minor**2 * s * s,
            (sig_major**2 - sig_minor**2) * c * s,
            sig_major**2 * s * s + sig_minor**2 * c * c,
        ],
        -1,
    )
    det = cov[:, 0] * cov[:, 2] - cov[:, 1] ** 2
    conics = torch.stack([cov[:, 2] / det, -cov[:, 1] / det, cov[:, 0] / det], -1)
    radii = torch.ceil(3 * sig_major).to(torch.int32)
    radii[torch.rand(N) < culled] = 0
    colors = torch.rand(N, 3)
    opacities = torch.rand(N)
    solid = torch.rand(N) < opaque
    opacities[solid] = 0.97 + 0.03 * torch.rand(int(solid.sum()))
    depths = torch.rand(N) * 5 + 1
    depths[: N // 5] = depths[N // 5 : 2 * (N // 5)]  # equal depths: ties broken by index
    return [means2d, conics, colors, opacities, depths, radii]


def brute_composite(means2d, conics, colors, opacities, depths, radii, W, H, bg, tile_size=16):
    """Dense per-pixel compositing written straight from docs/RASTER_CONTRACT.md (differentiable)."""
    T_ = tile_size
    tiles_x, tiles_y = math.ceil(W / T_), math.ceil(H / T_)
    m, r = means2d.detach(), radii.float()
    x0 = torch.floor((m[:, 0] - r) / T_).clamp(0, tiles_x)
    x1 = (torch.floor((m[:, 0] + r) / T_) + 1).clamp(0, tiles_x)
    y0 = torch.floor((m[:, 1] - r) / T_).clamp(0, tiles_y)
    y1 = (torch.floor((m[:, 1] + r) / T_) + 1).clamp(0, tiles_y)
    py, px = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    tx, ty = px // T_, py // T_
    C, D = torch.zeros(H, W, 3), torch.zeros(H, W)
    Tr = torch.ones(H, W)
    done = torch.zeros(H, W, dtype=torch.bool)
    for i in sorted(range(len(radii)), key=lambda i: (float(depths[i].detach()), i)):
        if radii[i] <= 0:
            continue
        cover = (tx >= x0[i]) & (tx < x1[i]) & (ty >= y0[i]) & (ty < y1[i])
        dx = means2d[i, 0] - (px.float() + 0.5)
        dy = means2d[i, 1] - (py.float() + 0.5)
        a, b, c = conics[i]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = (opacities[i] * torch.exp(-sigma.clamp_min(0))).clamp_max(0.99)
        active = cover & ~done & (sigma >= 0) & (alpha >= 1 / 255)
        next_T = Tr * (1 - alpha)
        stop = active & (next_T.detach() < 1e-4)
        done = done | stop
        use = active & ~stop
        w = torch.where(use, Tr * alpha, 0.0)
        C = C + w[..., None] * colors[i]
        D = D + w * depths[i]
        Tr = torch.where(use, next_T, Tr)
    return C + Tr[..., None] * bg, 1 - Tr, D


def run_with_grads(fn, inputs, W, H, bg, out_grads, **kw):
    """Outputs of fn and the gradients of sum(out * out_grads) w.r.t. the float inputs and bg."""
    leaves = [x.detach().clone().requires_grad_() for x in inputs[:5]]
    bg = bg.detach().clone().requires_grad_()
    outs = fn(*leaves, inputs[5], W, H, bg, **kw)
    torch.autograd.backward(list(outs), out_grads)
    return [o.detach() for o in outs], [x.grad for x in leaves] + [bg.grad]


def assert_parity(got, want, grads_got=None, grads_want=None):
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == torch.float32
        assert torch.isfinite(g).all()
        assert float((g - w).abs().max()) <= IMAGE_TOL
    names = ["means2d", "conics", "colors", "opacities", "depths", "background"]
    for name, g, w in zip(names, grads_got or [], grads_want or []):
        rel = float((g - w).norm() / (w.norm() + 1e-12))
        assert rel <= GRAD_TOL, f"{name}: relative gradient error {rel:.2e}"


def out_grads(W, H):
    return [torch.randn(H, W, 3), torch.randn(H, W), torch.randn(H, W)]


@pytest.mark.parametrize(
    ("W", "H", "N", "tile_size"),
    [(128, 96, 400, 16), (64, 48, 200, 8), (75, 53, 250, 12), (150, 101, 500, 64), (97, 70, 300, 32)],
)
def test_matches_torch_reference(W, H, N, tile_size):
    inputs, bg, og = screen_gaussians(N, W, H), torch.rand(3), out_grads(W, H)
    got, g_got = run_with_grads(composite_cpu, inputs, W, H, bg, og, tile_size=tile_size)
    want, g_want = run_with_grads(composite_torch, inputs, W, H, bg, og, tile_size=tile_size)
    assert_parity(got, want, g_got, g_want)


@pytest.mark.parametrize("tile_size", [16, 64])
def test_matches_dense_brute_force(tile_size):
    W, H = 45, 37  # not multiples of the tile size
    inputs, bg, og = screen_gaussians(120, W, H), torch.rand(3), out_grads(W, H)
    got, g_got = run_with_grads(composite_cpu, inputs, W, H, bg, og, tile_size=tile_size)
    want, g_want = run_with_grads(brute_composite, inputs, W, H, bg, og, tile_size=tile_size)
    assert_parity(got, want, g_got, g_want)


@pytest.mark.parametrize("tile_size", [16, 64])
def test_elongated_and_degenerate_conics_are_not_culled_wrongly(tile_size):
    W, H = 64, 48
    inputs = screen_gaussians(150, W, H, size=(1.0, 20.0), max_ratio=60.0)
    conics = inputs[1]
    conics[:10, 1] = 2 * torch.sqrt(conics[:10, 0] * conics[:10, 2])  # not positive definite
    conics[10:20, 0] = -conics[10:20, 0]
    bg, og = torch.rand(3), out_grads(W, H)
    got, g_got = run_with_grads(composite_cpu, inputs, W, H, bg, og, tile_size=tile_size)
    want, g_want = run_with_grads(brute_composite, inputs, W, H, bg, og, tile_size=tile_size)
    assert_parity(got, want, g_got, g_want)


def test_every_pixel_written():
    W, H = 80, 60
    inputs = screen_gaussians(30, W, H, size=(0.5, 4.0))
    bg = torch.rand(3)
    for _ in range(3):  # leave NaN garbage in freed memory the outputs may reuse
        del_me = torch.full((H * W * 8,), float("nan"))
        del del_me
        image, alpha, depth = composite_cpu(*inputs, W, H, bg, tile_size=16)
        assert torch.isfinite(image).all() and torch.isfinite(alpha).all() and torch.isfinite(depth).all()
    want = composite_torch(*inputs, W, H, bg, tile_size=16)
    assert_parity((image, alpha, depth), want)
    empty = alpha == 0
    assert empty.sum() > W * H // 4
    assert (image[empty] == bg).all() and (depth[empty] == 0).all()


def test_empty_scene_and_all_culled():
    W, H = 40, 30
    bg = torch.rand(3)
    empty = [torch.zeros(0, 2), torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0)]
    image, alpha, depth = composite_cpu(*empty, torch.zeros(0, dtype=torch.int32), W, H, bg)
    assert (image == bg).all() and (alpha == 0).all() and (depth == 0).all()
    inputs = screen_gaussians(50, W, H)
    inputs[5] = torch.zeros(50, dtype=torch.int32)
    (image, alpha, depth), grads = run_with_grads(composite_cpu, inputs, W, H, bg, out_grads(W, H))
    assert (image == bg).all() and (alpha == 0).all() and (depth == 0).all()
    assert all((g == 0).all() for g in grads[:5])


def test_huge_and_tiny_gaussians():
    W, H = 96, 64
    huge = screen_gaussians(20, W, H, size=(60.0, 200.0))
    tiny = screen_gaussians(200, W, H, size=(0.05, 0.4))
    inputs = [torch.cat([a, b]) for a, b in zip(huge, tiny)]
    inputs[5][:20] = 1000  # covers every tile
    inputs[3][:20] *= 0.3  # translucent so the tiny ones show through
    bg, og = torch.rand(3), out_grads(W, H)
    got, g_got = run_with_grads(composite_cpu, inputs, W, H, bg, og, tile_size=16)
    want, g_want = run_with_grads(composite_torch, inputs, W, H, bg, og, tile_size=16)
    assert_parity(got, want, g_got, g_want)
    assert (got[1] > 0).all()


@pytest.mark.parametrize("tile_size", [16, 64])
def test_saturated_pixels_terminate_early(tile_size):
    W, H = 48, 40
    inputs = screen_gaussians(300, W, H, size=(6.0, 14.0))
    inputs[3] = 0.9 + 0.1 * torch.rand(300)  # some hit the 0.99 clamp
    inputs[5][:] = 40
    bg, og = torch.rand(3), out_grads(W, H)
    got, g_got = run_with_grads(composite_cpu, inputs, W, H, bg, og, tile_size=tile_size)
    want, g_want = run_with_grads(brute_composite, inputs, W, H, bg, og, tile_size=tile_size)
    assert_parity(got, want, g_got, g_want)
    assert (got[1] > 1 - 1e-3).float().mean() > 0.9
    assert float((1 - got[1]).min()) >= 1e-4 - 1e-7  # the stopping Gaussian is not composited


def test_non_finite_means_are_not_drawn():
    W, H = 40, 32
    inputs = screen_gaussians(60, W, H)
    inputs[0][:5] = float("nan")
    inputs[0][5:8, 0] = float("inf")
    bg = torch.rand(3)
    got = composite_cpu(*inputs, W, H, bg, tile_size=16)
    want = composite_torch(*inputs, W, H, bg, tile_size=16)
    assert_parity(got, want)


def test_bit_identical_across_runs_and_thread_counts():
    W, H = 128, 96
    inputs, bg, og = screen_gaussians(500, W, H), torch.rand(3), out_grads(W, H)
    runs = [run_with_grads(composite_cpu, inputs, W, H, bg, og, num_threads=t) for t in (2, 2, 1, 3)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        runs.append(run_with_grads(composite_cpu, inputs, W, H, bg, og))
    finally:
        torch.set_num_threads(threads)
    first = runs[0][0] + runs[0][1]
    for outs, grads in runs[1:]:
        for a, b in zip(first, outs + grads):
            assert torch.equal(a, b)


def test_float64_inputs_give_float64_grads():
    W, H = 32, 24
    inputs = [x.double() if x.is_floating_point() else x for x in screen_gaussians(40, W, H)]
    _, grads = run_with_grads(
        composite_cpu, inputs, W, H, torch.rand(3, dtype=torch.float64), out_grads(W, H)
    )
    assert all(g.dtype == torch.float64 for g in grads)


def test_render_cpu_matches_torch_backend():
    from splat.render.render import RenderSettings, render
    from splat.types import Gaussians

    same_tiles = RenderSettings(tile_size=16)  # the backends' own defaults differ (cpu 64, torch 16)
    N, W, H = 300, 64, 48
    means = torch.randn(N, 3) * 0.6
    means[:, 2] = means[:, 2].abs() + 3.0
    g = Gaussians(
        means,
        -3.5 + torch.rand(N, 3),
        torch.randn(N, 4),
        torch.randn(N),
        torch.randn(N, 3) * 0.5,
        torch.randn(N, 3, 3) * 0.2,
    )
    K = torch.tensor([[60.0, 0, W / 2], [0, 60.0, H / 2], [0, 0, 1]])
    w2c = torch.eye(4)
    w2c[:3, 3] = torch.randn(3) * 0.05
    bg = torch.rand(3)
    og = torch.randn(H, W, 3)
    results = []
    for backend in ("cpu", "torch"):
        leaves = g.map(lambda t: t.detach().clone().requires_grad_())
        pose = w2c.clone().requires_grad_()
        out = render(leaves, (K, pose, W, H), background=bg, backend=backend, settings=same_tiles)
        ((out.image * og).sum() + out.depth.mean()).backward()
        grads = {k: t.grad for k, t in leaves.tensors().items()} | {"w2c": pose.grad}
        results.append((out.image.detach(), grads))
    (img_cpu, g_cpu), (img_ref, g_ref) = results
    # The cpu backend projects natively too: float rounding there moves pixels by up to ~1e-5.
    assert float((img_cpu - img_ref).abs().max()) <= 10 * IMAGE_TOL
    for name in g_ref:
        rel = float((g_cpu[name] - g_ref[name]).norm() / (g_ref[name].norm() + 1e-12))
        assert rel <= GRAD_TOL, f"{name}: relative gradient error {rel:.2e}"


def test_build_uses_a_content_addressed_copy_of_the_sources(tmp_path):
    src = build._cached_sources(tmp_path / "key")
    for name in build.SOURCES:
        assert (src / name).read_bytes() == (build.SOURCE_DIR / name).read_bytes(), name
    stamp = (src / build.SOURCES[0]).stat().st_mtime_ns
    assert build._cached_sources(tmp_path / "key") == src  # made once, then reused as it is
    assert (src / build.SOURCES[0]).stat().st_mtime_ns == stamp
    assert not list((tmp_path / "key").glob("src.tmp*"))
