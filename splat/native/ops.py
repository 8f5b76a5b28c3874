"""Autograd wrappers of the CPU kernels: compositing (composite_cpu) and projection + SH (project_cpu).

composite_cpu is the twin of `splat.render.composite_torch`; project_cpu the twin of
`splat.render.render.project_torch` (project.py::project_gaussians, render.py::gaussian_colors and the
sigmoid opacity): same formulas in float32. Both backwards are exact and hand-written. project_cpu
gives gradients to means, log_scales, quats, opacity_logits, sh_dc, sh_rest, the pose w2c and K
(only K's fx, fy, cx, cy are used, as in the reference); pose and K gradients are summed over fixed
chunks of Gaussians in a fixed order: bit-identical results for any thread count.
Semantics: docs/RASTER_CONTRACT.md.
"""

from __future__ import annotations

import torch
from torch import Tensor

from splat.native import build
from splat.types import Gaussians

CPU_TILE = 64  # composite_cpu's default tile edge: fastest at every size measured (docs/PERF.md, session 6)

# Seconds spent in each stage of the latest composite_cpu call (forward: prep, sort, fill, composite;
# backward: backward, reduce), for scripts/bench_raster.py.
LAST_PROFILE: dict[str, float] = {}


def _f32(x: Tensor) -> Tensor:
    return x.detach().to(torch.float32).contiguous()


class CompositeCPU(torch.autograd.Function):
    """Autograd wrapper of the kernel; outputs image (H,W,3), alpha (H,W), depth (H,W)."""

    @staticmethod
    def forward(
        ctx, means2d, conics, colors, opacities, depths, radii, width, height, background, tile_size, threads
    ):
        outs = build.load().composite_forward(
            _f32(means2d), _f32(conics), _f32(colors), _f32(opacities.reshape(-1)), _f32(depths.reshape(-1)),
            radii.detach().reshape(-1).to(torch.int32).contiguous(), int(width), int(height),
            _f32(background.reshape(-1)), int(tile_size), int(threads),
        )  # fmt: skip
        image, alpha, depth, *saved, timings = outs
        t = timings.tolist()
        LAST_PROFILE.clear()
        LAST_PROFILE.update(prep=t[0], sort=t[1], fill=t[2], forward=t[3])
        ctx.save_for_backward(background, *saved)
        ctx.frame = (int(width), int(height), int(tile_size), int(threads))
        ctx.like = [(x.shape, x.dtype) for x in (means2d, conics, colors, opacities, depths)]
        return image, alpha, depth

    @staticmethod
    def backward(ctx, g_image, g_alpha, g_depth):
        background, T_final, last, tile_offsets, gids, pos_of, goff, recs = ctx.saved_tensors
        width, height, tile_size, threads = ctx.frame

        def grad(g: Tensor | None, shape: tuple[int, ...]) -> Tensor:
            return torch.zeros(shape) if g is None else _f32(g)

        outs = build.load().composite_backward(
            grad(g_image, (height, width, 3)), grad(g_alpha, (height, width)), grad(g_depth, (height, width)),
            _f32(background.reshape(-1)), T_final, last, tile_offsets, gids, pos_of, goff, recs,
            width, height, tile_size, threads,
        )  # fmt: skip
        g_bg, timings = outs[5], outs[6]
        t = timings.tolist()
        LAST_PROFILE.update(backward=t[0], reduce=t[1])
        grads = [g.reshape(shape).to(dtype) for g, (shape, dtype) in zip(outs[:5], ctx.like)]
        g_bg = g_bg.to(background.dtype).reshape(background.shape) if ctx.needs_input_grad[8] else None
        return (*grads, None, None, None, g_bg, None, None)


def composite_cpu(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    background: Tensor,
    tile_size: int = CPU_TILE,
    num_threads: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Alpha-composite screen-space Gaussians with the native kernel (docs/RASTER_CONTRACT.md).

    Args:
        means2d (N,2), conics (N,3), colors (N,3), opacities (N,), depths (N,): float tensors on CPU
            (computed in float32); radii (N,) int, 0 = culled; background (3,).
        tile_size: tile edge in pixels (1..64; default CPU_TILE). num_threads: default
            torch.get_num_threads().

    Returns:
        image (H, W, 3), alpha (H, W) = 1 - T_final, depth (H, W) alpha-weighted (not normalised),
        float32; differentiable w.r.t. means2d, conics, colors, opacities, depths, background.
    """
    if means2d.device.type != "cpu":
        raise ValueError(f"composite_cpu needs CPU tensors, got {means2d.device}")
    threads = torch.get_num_threads() if num_threads is None else int(num_threads)
    return CompositeCPU.apply(
        means2d, conics, colors, opacities, depths, radii, width, height, background, tile_size, threads
    )


class ProjectCPU(torch.autograd.Function):
    """Outputs means2d (N,2), conics (N,3), colors (N,3), opacities (N,), depths (N,), radii (N,) int32."""

    @staticmethod
    def forward(ctx, means, log_scales, quats, opacity_logits, sh_dc, sh_rest, w2c, K, frame, threads):
        inputs = [_f32(x) for x in (means, log_scales, quats, opacity_logits, sh_dc, sh_rest, w2c, K)]
        outs = build.load().project_forward(*inputs, *frame, threads)
        ctx.mark_non_differentiable(outs[5])
        ctx.save_for_backward(*inputs)
        ctx.frame, ctx.threads = frame, threads
        ctx.like = [
            (x.shape, x.dtype) for x in (means, log_scales, quats, opacity_logits, sh_dc, sh_rest, w2c, K)
        ]
        return tuple(outs)

    @staticmethod
    def backward(ctx, g_means2d, g_conics, g_colors, g_opacities, g_depths, _g_radii):
        inputs = ctx.saved_tensors
        n = inputs[0].shape[0]
        shapes = [(n, 2), (n, 3), (n, 3), (n,), (n,)]
        grads = [
            torch.zeros(s) if g is None else _f32(g).reshape(s)
            for g, s in zip((g_means2d, g_conics, g_colors, g_opacities, g_depths), shapes)
        ]
        outs = build.load().project_backward(*inputs, *ctx.frame, *grads, ctx.threads)
        result = [
            g.reshape(shape).to(dtype) if need else None
            for g, (shape, dtype), need in zip(outs, ctx.like, ctx.needs_input_grad)
        ]
        return (*result, None, None)


def project_cpu(
    gaussians: Gaussians,
    w2c: Tensor,
    K: Tensor,
    width: int,
    height: int,
    sh_degree: int,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
    antialias: bool = False,
    clamp_colors: bool = True,
    num_threads: int | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Screen-space Gaussians for one view, computed natively (CPU tensors; float32 maths).

    Args:
        gaussians: N Gaussians (any tensor may require grad). w2c (4,4), K (3,3): may require grad.
        sh_degree: SH bands used (<= the stored ones). near, far, eps2d, antialias, clamp_colors:
            as RenderSettings. num_threads: default torch.get_num_threads().

    Returns:
        means2d (N,2), conics (N,3), colors (N,3) (SH + 0.5, clamped >= 0 if clamp_colors),
        opacities (N,) (sigmoid, times the antialias compensation), depths (N,) camera z,
        radii (N,) int32 (0 = culled); all float32 and differentiable except radii.
    """
    if gaussians.means.device.type != "cpu":
        raise ValueError(f"project_cpu needs CPU tensors, got {gaussians.means.device}")
    threads = torch.get_num_threads() if num_threads is None else int(num_threads)
    frame = (int(width), int(height), float(near), float(far), float(eps2d), bool(antialias))
    frame += (int(sh_degree), bool(clamp_colors))
    g = gaussians
    return ProjectCPU.apply(
        g.means,
        g.log_scales,
        g.quats,
        g.opacity_logits.reshape(-1),
        g.sh_dc,
        g.sh_rest,
        w2c,
        K,
        frame,
        threads,
    )
