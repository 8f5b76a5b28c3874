"""Benchmark the compositing backends (torch reference, native cpu kernel, cuda) and the full render.

    python scripts/bench_raster.py [--backends torch,cpu,cuda] [--sizes 10000,100000,500000]
        [--res 256x192,512x384,1024x768] [--scenes realistic,random] [--reps 5]
        [--skip-torch-above 2e10] [--threads N] [--cpu-tile 64] [--quick]

For every scene, size and resolution it prints the median time (ms, after a warm-up) of the
compositing alone (forward, forward+backward) and of the full render (projection + SH +
compositing), a cpu-over-torch speed-up table from the same run, and the cpu path's profile split
(native projection+SH forward and backward, prep, sort, fill, composite forward, backward, reduce).

Scenes (camera at the origin looking down +z, focal 0.9 W):
- realistic: Gaussians on a floor, a back wall and three spheres 2.5-8 m away, flattened along a
  random axis, sizes shrinking with N (radii from a few px to tens of px), opacities 0.5-0.9.
- random: uniform in the frustum between 2 and 10 m, same sizes, opacities 0.05-0.95.
- run:RUN: the trained Gaussians of a finished `splat fit` run (RUN/splat.ply), seen from its first
  training camera (RUN/poses); --sizes does not apply (N is the run's count).
The header line gives the load average and a single-thread matmul speed, to judge how busy the
machine was (timings are wall clock). The torch reference is timed without warm-up, at most 3 runs.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import time
from functools import partial
from pathlib import Path

import torch

from splat.native import build
from splat.native.ops import CPU_TILE
from splat.render.project import project_gaussians
from splat.render.render import RenderSettings, gaussian_colors, render
from splat.types import Gaussians

SIZE = 0.7  # Gaussian size relative to sqrt(surface area / N)


def camera(W: int, H: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K (3,3) with focal 0.9 W and the principal point centred; identity w2c (4,4)."""
    f = 0.9 * W
    return torch.tensor([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1.0]]), torch.eye(4)


def surface_points(n: int, gen: torch.Generator) -> torch.Tensor:
    """n points spread evenly over a floor, a back wall and three spheres (about 150 m^2), (n, 3)."""
    u = torch.rand(n, 2, generator=gen)
    centres = torch.tensor([[-1.2, 0.3, 4.0], [0.9, 0.0, 5.0], [0.0, 0.6, 3.2]])
    radius = torch.tensor([0.8, 1.0, 0.5])
    areas = torch.cat([torch.tensor([55.0, 70.0]), 4 * math.pi * radius**2])
    part = torch.multinomial(areas, n, replacement=True, generator=gen)
    floor = torch.stack([(u[:, 0] - 0.5) * 10, torch.full((n,), 1.2), 2.5 + u[:, 1] * 5.5], -1)
    wall = torch.stack([(u[:, 0] - 0.5) * 10, (u[:, 1] - 0.5) * 7, torch.full((n,), 8.0)], -1)
    dirs = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1)
    k = part.clamp(2, 4) - 2
    spheres = centres[k] + radius[k, None] * dirs
    return torch.where((part == 0)[:, None], floor, torch.where((part == 1)[:, None], wall, spheres))


def make_scene(kind: str, n: int, seed: int = 0, sh_degree: int = 3) -> Gaussians:
    """A 'realistic' (surfaces) or 'random' (frustum) scene of n Gaussians; see the module docstring."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "realistic":
        means = surface_points(n, gen)
        opacity = 0.5 + 0.4 * torch.rand(n, generator=gen)
    else:
        z = 2 + 8 * torch.rand(n, generator=gen)
        xy = (torch.rand(n, 2, generator=gen) - 0.5) * torch.tensor([1 / 0.9, 0.75 / 0.9]) * z[:, None]
        means = torch.cat([xy, z[:, None]], -1)
        opacity = 0.05 + 0.9 * torch.rand(n, generator=gen)
    base = math.log(SIZE * math.sqrt(150.0 / n))  # 1-sigma disks cover the ~150 m^2 of surface ~1.5 times
    log_scales = base + (torch.rand(n, 3, generator=gen) - 0.5) * 1.4
    log_scales[torch.arange(n), torch.randint(0, 3, (n,), generator=gen)] -= 1.5  # flat along one axis
    rest = (sh_degree + 1) ** 2 - 1
    return Gaussians(
        means,
        log_scales,
        torch.randn(n, 4, generator=gen),
        torch.logit(opacity),
        torch.randn(n, 3, generator=gen) * 0.6,
        torch.randn(n, rest, 3, generator=gen) * 0.1,
    )


def trained_scene(run: Path, view: int = 0) -> Gaussians:
    """A finished `splat fit` run's splat.ply moved into the frame of its training camera `view`, so
    the benchmark's identity camera sees what that camera saw (SH directions are not rotated: the
    colours change, the work does not)."""
    from splat.geometry.se3 import quat_wxyz_to_rotmat, rotmat_to_quat_wxyz
    from splat.io.colmap import read_model
    from splat.io.ply import read_ply
    from splat.run import RunFolder

    g = read_ply(RunFolder(run).splat)
    w2c = read_model(RunFolder(run).poses).cameras.w2c[view].float()
    R, t = w2c[:3, :3], w2c[:3, 3]
    g.means = g.means @ R.T + t
    g.quats = rotmat_to_quat_wxyz(R @ quat_wxyz_to_rotmat(torch.nn.functional.normalize(g.quats, dim=-1)))
    return g


def screen_inputs(g: Gaussians, W: int, H: int) -> list:
    """Projected compositor inputs [means2d, conics, colors, opacities, depths, radii] (no grad)."""
    K, w2c = camera(W, H)
    with torch.no_grad():
        p = project_gaussians(g.means, g.log_scales, g.quats, w2c, K, W, H)
        colors = gaussian_colors(g, w2c, g.sh_degree)
    return [p.means2d, p.conics, colors, g.opacities.detach(), p.depths, p.radii]


def median_ms(fn, warmup: int, reps: int, budget_s: float) -> float:
    """Median wall time of fn() in ms over up to `reps` runs after `warmup` (stops early past budget)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps and (len(times) < 1 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def composite_fn(backend: str, cpu_tile: int = CPU_TILE):
    if backend == "torch":
        from splat.render.composite_torch import composite_torch

        return composite_torch
    from splat.native.ops import composite_cpu

    return partial(composite_cpu, tile_size=cpu_tile)


def bench_composite(backend: str, inputs: list, W: int, H: int, args) -> tuple[float, float]:
    """(forward ms, forward+backward ms) of the compositing step alone."""
    fn = composite_fn(backend, args.cpu_tile)
    bg = torch.rand(3)
    grads = [torch.rand(H, W, 3), torch.rand(H, W), torch.rand(H, W) * 0.1]

    def fwd():
        with torch.no_grad():
            fn(*inputs, W, H, bg)

    def fwd_bwd():
        leaves = [x.detach().requires_grad_() for x in inputs[:5]]
        outs = fn(*leaves, inputs[5], W, H, bg)
        torch.autograd.backward(outs, grads)

    warm, reps = (0, 3) if backend == "torch" else (args.warmup, args.reps)
    return median_ms(fwd, warm, reps, args.budget), median_ms(fwd_bwd, warm, reps, args.budget)


def bench_render(backend: str, g: Gaussians, W: int, H: int, args) -> tuple[float, float]:
    """(forward ms, forward+backward ms) of render(): projection + SH + compositing."""
    device = "cuda" if backend == "cuda" else "cpu"
    g = g.to(device)
    K, w2c = (x.to(device) for x in camera(W, H))
    settings = RenderSettings(tile_size=args.cpu_tile if backend == "cpu" else None)

    def fwd():
        with torch.no_grad():
            render(g, (K, w2c, W, H), backend=backend, settings=settings)
        if device == "cuda":
            torch.cuda.synchronize()

    def fwd_bwd():
        leaves = g.map(lambda t: t.detach().requires_grad_())
        out = render(leaves, (K, w2c, W, H), backend=backend, settings=settings)
        (out.image.sum() + out.depth.mean()).backward()
        if device == "cuda":
            torch.cuda.synchronize()

    warm, reps = (0, 3) if backend == "torch" else (args.warmup, args.reps)
    return median_ms(fwd, warm, reps, args.budget), median_ms(fwd_bwd, warm, reps, args.budget)


def machine_gflops() -> float:
    """Single-thread float32 matmul speed (GFLOP/s, best of 5): how fast this CPU is right now."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = torch.rand(512, 512), torch.rand(512, 512)
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return 2 * 512**3 / best / 1e9


def cpu_profile(g: Gaussians, inputs: list, W: int, H: int, reps: int, tile: int) -> dict[str, float]:
    """Median ms per stage of the cpu path (native projection+SH forward and backward, then the
    compositing kernel's own wall-clock timers), and the minimum process CPU time of the compositing
    kernel's forward and backward on one thread ("cpu1 fwd", "cpu1 bwd": robust to other processes
    sharing the machine)."""
    from splat.native.ops import LAST_PROFILE, composite_cpu, project_cpu

    K, w2c = camera(W, H)
    rows: dict[str, list[float]] = {}
    for _ in range(reps):
        leaves = g.map(lambda t: t.detach().requires_grad_())
        t0 = time.perf_counter()
        outs = project_cpu(leaves, w2c, K, W, H, g.sh_degree)
        rows.setdefault("proj fwd", []).append(time.perf_counter() - t0)
        out_grads = [torch.ones_like(o) for o in outs[:5]]  # (first-touch page faults: not timed)
        t1 = time.perf_counter()
        torch.autograd.backward(outs[:5], out_grads)
        rows.setdefault("proj bwd", []).append(time.perf_counter() - t1)
        leaves = [x.detach().requires_grad_() for x in inputs[:5]]
        outs = composite_cpu(*leaves, inputs[5], W, H, torch.zeros(3), tile_size=tile)
        torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])
        for k, v in LAST_PROFILE.items():
            rows.setdefault(k, []).append(v)
    out = {k: 1000 * statistics.median(v) for k, v in rows.items()}
    fwd, bwd = [], []
    for _ in range(reps + 2):
        leaves = [x.detach().requires_grad_() for x in inputs[:5]]
        t0 = time.process_time()
        outs = composite_cpu(*leaves, inputs[5], W, H, torch.zeros(3), tile_size=tile, num_threads=1)
        t1 = time.process_time()
        torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])
        fwd.append(t1 - t0)
        bwd.append(time.process_time() - t1)
    out["cpu1 fwd"], out["cpu1 bwd"] = 1000 * min(fwd), 1000 * min(bwd)
    return out


def available_backends() -> list[str]:
    out = ["torch"]
    if build.available():
        out.append("cpu")
    if torch.cuda.is_available():
        out.append("cuda")
    return out


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default=None, help="comma list of torch,cpu,cuda (default: available)")
    ap.add_argument("--sizes", default="10000,100000,500000")
    ap.add_argument("--res", default="256x192,512x384,1024x768")
    ap.add_argument("--scenes", default="realistic,random")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--budget", type=float, default=20.0, help="stop repeating a timing after this many s")
    ap.add_argument("--skip-torch-above", type=float, default=2e10, help="skip torch when N*W*H exceeds this")
    ap.add_argument("--no-render", action="store_true", help="time the compositing only")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cpu-tile", type=int, default=CPU_TILE, help="cpu backend tile edge (default: its own)")
    ap.add_argument("--quick", action="store_true", help="only 100k Gaussians at 512x384")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.res = "100000", "512x384"
    return args


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends.split(",") if args.backends else available_backends()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    resolutions = [tuple(int(v) for v in r.split("x")) for r in args.res.split(",")]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}  commit {commit}  torch {torch.__version__}  "
          f"threads {torch.get_num_threads()}  load {os.getloadavg()[0]:.2f}  "
          f"matmul {machine_gflops():.0f} GFLOP/s/thread")  # fmt: skip
    print(f"# tiles: cpu {args.cpu_tile} px, torch 16 px")
    cols = "".join(f"{c:>10}" for c in ("comp fwd", "comp f+b", "rend fwd", "rend f+b"))
    header = f"{'scene':<10}{'N':>8} {'res':>9} {'backend':>7} {cols}"
    print(header + "   (ms, median)")
    speedups, profiles = [], []
    for kind in args.scenes.split(","):
        trained = trained_scene(Path(kind[4:])) if kind.startswith("run:") else None
        for n in sizes if trained is None else [len(trained)]:
            g = make_scene(kind, n) if trained is None else trained
            label = kind if trained is None else Path(kind[4:]).parent.name[:10]
            for W, H in resolutions:
                inputs = screen_inputs(g, W, H)
                results = {}
                for b in backends:
                    if b == "torch" and n * W * H > args.skip_torch_above:
                        continue
                    comp = bench_composite(b, inputs, W, H, args) if b != "cuda" else (math.nan, math.nan)
                    rend = (math.nan, math.nan) if args.no_render else bench_render(b, g, W, H, args)
                    results[b] = comp + rend
                    cells = "".join(f"{v:>10.1f}" for v in results[b])
                    print(f"{label:<10}{n:>8} {W:>4}x{H:<4} {b:>7} {cells}", flush=True)
                if "cpu" in results and "torch" in results:
                    speedups.append(
                        (label, n, W, H, [t / c for t, c in zip(results["torch"], results["cpu"])])
                    )
                if "cpu" in backends:
                    profiles.append((label, n, W, H, cpu_profile(g, inputs, W, H, 3, args.cpu_tile)))
    if speedups:
        print("\ncpu speed-up over torch (same run):")
        for kind, n, W, H, s in speedups:
            print(f"{kind:<10}{n:>8} {W:>4}x{H:<4} " + "".join(f"{v:>10.1f}x" for v in s))
    if profiles:
        print("\ncpu profile (ms; stages: wall-clock median of 3; cpu1: min CPU time on one thread):")
        for kind, n, W, H, p in profiles:
            print(f"{kind:<10}{n:>8} {W:>4}x{H:<4} " + "  ".join(f"{k} {v:.1f}" for k, v in p.items()))


if __name__ == "__main__":
    main()
