"""Benchmark the training stage on a committed scene.

    python scripts/bench_train.py [--scene scenes/garden] [--gaussians 50000] [--views 6]
                                  [--steps 10] [--psnr-steps 100] [--backend auto] [--device cpu]
                                  [--json out.json]

Prints three measurements (one process, nothing else should run meanwhile):
1. Training throughput: steps/s of the full loop (render, loss, backward, sparse Adam, pruning) at
   the scene's size (512x384), starting from N Gaussians unprojected from random pixels.
2. Optimizer time per step, sparse (visible rows only, plain and with visibility rescaling) vs dense
   Adam, on the visible masks of the real views and the sh_rest storage dtypes.
3. sh_rest storage float32 vs bfloat16 vs float16: bytes held for sh_rest (parameter, grad, Adam
   moments) and training-view PSNR after --psnr-steps steps (same seed, same views); and float32
   with dense Adam, for the sparse update's effect on the result.
The init is a cheap stand-in for EDGS (random pixels at the depth where the optical axes meet),
good enough for timing; it is not what `splat fit` produces.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from splat.init.sparse import sparse_init
from splat.io.datasets import load_scene
from splat.render import render
from splat.train import GaussianAdam, TrainConfig, train
from splat.train.data import image_tensors
from splat.train.trainer import initial_params
from splat.types import Cameras, Gaussians


def axes_meeting_point(cameras: Cameras) -> torch.Tensor:
    """(3,) least-squares point closest to every camera's optical axis."""
    c2w = cameras.c2w.double()
    centres, dirs = c2w[:, :3, 3], c2w[:, :3, 2]
    A = torch.zeros(3, 3, dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.float64)
    for c, d in zip(centres, dirs):
        P = torch.eye(3, dtype=torch.float64) - torch.outer(d, d)
        A, b = A + P, b + P @ c
    return torch.linalg.solve(A, b)


def unprojected_init(cameras: Cameras, images: list[np.ndarray], n: int, seed: int = 0) -> Gaussians:
    """n Gaussians at random pixels of random views, depth 0.6-1.4x the distance to the scene centre."""
    rng = np.random.default_rng(seed)
    centre = axes_meeting_point(cameras)
    points, colors = [], []
    views = rng.integers(0, len(cameras), n)
    for v in range(len(cameras)):
        m = int((views == v).sum())
        h, w = images[v].shape[:2]
        x, y = rng.uniform(0, w, m), rng.uniform(0, h, m)
        K = cameras.K[v].double().numpy()
        rays = np.stack([(x - K[0, 2]) / K[0, 0], (y - K[1, 2]) / K[1, 1], np.ones(m)], -1)
        dist = float((cameras.centers[v].double() - centre).norm())
        cam_pts = rays * (dist * rng.uniform(0.6, 1.4, m))[:, None]
        c2w = cameras.c2w[v].double().numpy()
        points.append(cam_pts @ c2w[:3, :3].T + c2w[:3, 3])
        colors.append(images[v][y.astype(int), x.astype(int)])
    return sparse_init(np.concatenate(points), np.concatenate(colors), opacity=0.5, sh_degree=3)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_throughput(g, cams, images, args) -> dict:
    run = dict(backend=args.backend, device=args.device, sh_degree=3, seed=0)
    cfg = TrainConfig(steps=args.steps + 2, log_every=1, sh_degree_every=0, **run)
    result = train(g, cams, images, cfg, progress=False)
    times = [h["time"] for h in result.history]
    per_step = (times[-1] - times[1]) / (len(times) - 2)  # first two steps warm caches / build kernels
    return {"steps_per_s": 1 / per_step, "s_per_step": per_step, "gaussians": len(g)}


def visible_masks(g: Gaussians, cams: Cameras, args) -> list[torch.Tensor]:
    g = g.to(device=args.device)
    with torch.no_grad():
        return [
            render(g, cams[v].to(device=args.device), backend=args.backend).visible for v in range(len(cams))
        ]


def time_optimizer(
    params: dict,
    masks: list[torch.Tensor],
    sparse: bool,
    device: str,
    backend: str = "auto",
    rescale_cap: float = 0.0,
) -> float:
    """Milliseconds per GaussianAdam step over the masks (3 rounds after a warm-up step)."""
    lrs = dict.fromkeys(params, 1e-3)
    opt = GaussianAdam(params, lrs, sparse=sparse, backend=backend, rescale_cap=rescale_cap)
    for p in opt.params.values():
        p.grad = torch.randn_like(p) * 1e-3
    opt.step(masks[0])
    t0, reps = time.perf_counter(), 0
    for _ in range(3):
        for m in masks:
            opt.step(m)
            reps += 1
    if device != "cpu":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - t0) / reps


def bench_optimizer(g: Gaussians, masks: list[torch.Tensor], args) -> dict:
    """Sparse vs dense on the views' real masks, and sparse on random masks of 10% and 30% visible;
    float32 also through the PyTorch path (the fused native kernel's reference twin)."""
    out = {"visible_fraction": float(torch.stack([m.float().mean() for m in masks]).mean())}
    params = initial_params(g, TrainConfig(sh_degree=3), args.device)
    out["dense_float32_torch_ms"] = time_optimizer(params, masks, False, args.device, "torch")
    out["sparse_float32_torch_ms"] = time_optimizer(params, masks, True, args.device, "torch")
    for dtype in ("float32", "bfloat16"):
        params = initial_params(g, TrainConfig(sh_rest_dtype=dtype, sh_degree=3), args.device)
        out[f"dense_{dtype}_ms"] = time_optimizer(params, masks, False, args.device)
        out[f"sparse_{dtype}_ms"] = time_optimizer(params, masks, True, args.device)
        out[f"sparse_rescaled_{dtype}_ms"] = time_optimizer(params, masks, True, args.device, rescale_cap=4.0)
        for frac in (0.1, 0.3):
            few = [torch.rand(len(g), device=args.device) < frac for _ in range(len(masks))]
            out[f"sparse_{dtype}_{int(100 * frac)}pct_ms"] = time_optimizer(params, few, True, args.device)
    return out


def sh_rest_bytes(n: int, dtype: torch.dtype) -> int:
    """Parameter + grad in `dtype`, two float32 Adam moments, one int64 step per row."""
    elems = n * 15 * 3
    return elems * 2 * torch.finfo(dtype).bits // 8 + elems * 2 * 4 + n * 8


def bench_precision(g, cams, images, args) -> dict:
    """Train PSNR and sh_rest memory per storage dtype (sparse Adam), and float32 with dense Adam."""
    out = {}
    for dtype, sparse in (("float32", True), ("bfloat16", True), ("float16", True), ("float32", False)):
        run = dict(backend=args.backend, device=args.device, sh_degree=3, seed=0, sh_rest_dtype=dtype)
        cfg = TrainConfig(
            steps=args.psnr_steps, sh_degree_every=max(args.psnr_steps // 4, 1), sparse_adam=sparse, **run
        )
        t0 = time.perf_counter()
        result = train(g, cams, images, cfg, progress=False)
        out[dtype if sparse else f"{dtype} (dense Adam)"] = {
            "train_psnr": result.final_psnr,
            "sh_rest_mb": sh_rest_bytes(len(g), getattr(torch, dtype)) / 2**20,
            "seconds": time.perf_counter() - t0,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", default="scenes/garden")
    ap.add_argument("--gaussians", type=int, default=50_000)
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--psnr-steps", type=int, default=100)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    # On a shared, loaded 2-core machine --threads 1 ran the loop 4x faster than torch's default 2.
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    scene = load_scene(args.scene)
    pick = np.linspace(0, len(scene.images) - 1, args.views).round().astype(int).tolist()
    cams = scene.cameras[pick].to(dtype=torch.float32)
    images = [scene.images.images[i] for i in pick]
    g = unprojected_init(cams, images, args.gaussians)
    w, h = int(cams.width[0]), int(cams.height[0])
    print(f"scene {args.scene}: {len(cams)} views {w}x{h}, {len(g)} Gaussians")
    print(f"torch threads {torch.get_num_threads()}")

    report = {"scene": str(args.scene), "size": [w, h], "views": len(cams), "gaussians": len(g)}
    report["throughput"] = t = bench_throughput(g, cams, images, args)
    print(f"training: {t['steps_per_s']:.3f} steps/s ({t['s_per_step']:.3f} s/step)")
    masks = visible_masks(g, cams, args)
    report["optimizer"] = o = bench_optimizer(g, masks, args)
    print(f"optimizer step (visible {100 * o['visible_fraction']:.0f}% of Gaussians on average):")
    for d in ("float32", "bfloat16"):
        dense, sparse, rescaled = o[f"dense_{d}_ms"], o[f"sparse_{d}_ms"], o[f"sparse_rescaled_{d}_ms"]
        few, fewer = o[f"sparse_{d}_30pct_ms"], o[f"sparse_{d}_10pct_ms"]
        print(f"  sh_rest {d:8s}: dense {dense:.1f} ms, sparse {sparse:.1f} ms,", end="")
        print(f" sparse rescaled {rescaled:.1f} ms;", end="")
        print(f" sparse at 30% visible {few:.1f} ms, at 10% {fewer:.1f} ms")
    td, ts = o["dense_float32_torch_ms"], o["sparse_float32_torch_ms"]
    print(f"  sh_rest float32 through the PyTorch path: dense {td:.1f} ms, sparse {ts:.1f} ms", end="")
    print(f" (fused native kernel: {ts / o['sparse_float32_ms']:.1f}x faster sparse)")
    if args.psnr_steps:
        report["sh_rest_precision"] = prec = bench_precision(g, cams, image_tensors(images), args)
        print(f"sh_rest storage after {args.psnr_steps} steps (sparse Adam unless stated):")
        for dtype, r in prec.items():
            print(
                f"  {dtype:21s}: train PSNR {r['train_psnr']:.3f} dB, sh_rest {r['sh_rest_mb']:.1f} MiB,"
                f" {r['seconds']:.1f} s"
            )
    report["peak_rss_mb"] = peak_rss_mb()
    print(f"peak RSS {report['peak_rss_mb']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
