"""Native projection + SH colour + opacity (cuda/project_cpu.cpp), wrapped for autograd.

Twin of `render.project_torch` (project.py::project_gaussians, render.py::gaussian_colors and the
sigmoid opacity): same formulas in float32. The backward is exact and hand-written; it gives
gradients to means, log_scales, quats, opacity_logits, sh_dc, sh_rest, the pose w2c and K
(only K's fx, fy, cx, cy are used, as in the reference). Pose and K gradients are summed over
fixed chunks of Gaussians in a fixed order: bit-identical results for any thread count.
"""

from __future__ import annotations

import torch
from torch import Tensor

from splat.render.native import load_native
from splat.types import Gaussians


def _f32(x: Tensor) -> Tensor:
    return x.detach().to(torch.float32).contiguous()


class ProjectCPU(torch.autograd.Function):
    """Outputs means2d (N,2), conics (N,3), colors (N,3), opacities (N,), depths (N,), radii (N,) int32."""

    @staticmethod
    def forward(ctx, means, log_scales, quats, opacity_logits, sh_dc, sh_rest, w2c, K, frame, threads):
        inputs = [_f32(x) for x in (means, log_scales, quats, opacity_logits, sh_dc, sh_rest, w2c, K)]
        outs = load_native().project_forward(*inputs, *frame, threads)
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
        outs = load_native().project_backward(*inputs, *ctx.frame, *grads, ctx.threads)
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
