"""Size of every export format and PSNR after a decode round trip; prints a table.

    python scripts/bench_compress.py RUN                  # a finished `splat fit` run folder
    python scripts/bench_compress.py RUN --scene SCENE_DIR --held-out --scale 1   # its held-out views
    python scripts/bench_compress.py --ply X.ply --cameras MODEL_DIR [--scene SCENE_DIR]
    python scripts/bench_compress.py --synthetic 100000   # a surface-like synthetic scene (default)

PSNR "vs orig" compares renders of the decoded Gaussians with renders of the original ones from
the same cameras (the measure of what a format loses); "vs GT" compares with the scene's images
when a scene with matching image names is given. Renders are downscaled by --scale for speed.
The quantized container can be measured under several settings with --variants.

Measured on the 2-core dev machine (defaults; PSNR vs orig / vs GT in dB), 2026-11-29:
- garden, 12-view pose-free fit (79.2k Gaussians), its 12 held-out views at 512x384
  (`python scripts/bench_compress.py RUN --scene scenes/garden --held-out --scale 1`):
  ply 248 B/G, 23.96 vs GT; ply-compressed 4.0x 43.1 / 23.90; splat 7.8x 36.1 / 23.67;
  spz 15.3x 37.5 / 23.77; quantized 11.2x 45.9 / 23.93; quantized[vq] 12.3x 45.3 / 23.94;
  quantized[importance] 14.3x 29.8 / 22.96 (codebooks weighted to the large Gaussians).
  statues: quantized 11.6x, 25.48 -> 25.46; still_life: quantized 10.1x, 26.57 -> 26.51.
- synthetic, 100k Gaussians, SH 3 with strong view dependence: spz 10.3x 37.4;
  quantized 10.4x 40.9; quantized[vq] 12.9x 39.3.
2026-12-06, garden 12-view fit (79.2k Gaussians; original 24.57 vs GT), same command (B/G, dB):
  spz (v4) 16.5 B/G 37.33 / 24.38 (v3 16.7); sog 14.5 B/G 43.39 / 24.52 (encode 16 s);
  glb 240 B/G 141 / 24.57 (float32); quantized 23.2 B/G 43.88 / 24.52.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import roma
import torch

from splat.compress.compressed_ply import read_compressed_ply, write_compressed_ply
from splat.compress.dotsplat import read_splat, write_splat
from splat.compress.gltf import read_glb, write_glb
from splat.compress.quantize import QuantizeConfig, read_quantized, write_quantized
from splat.compress.sog import read_sog, write_sog
from splat.compress.spz import read_spz, write_spz
from splat.eval.metrics import psnr
from splat.geometry.se3 import look_at_w2c
from splat.io.ply import read_ply, write_ply
from splat.render import render
from splat.render.sh import rgb_to_sh
from splat.types import Cameras, Gaussians

VARIANTS = {
    "default": {},
    "hq": {"sh_bits": (4, 3, 3), "sh_tolerance": 0.003, "scale_bits": 9, "position_bits": 20},
    "vq": {"sh_mode": "vq"},  # vector-quantized SH: smallest, lossier
    "pos16": {"position_bits": 16},
    "importance": {"weighting": "importance"},  # codebooks weighted by opacity x area
    "no-outliers": {"outliers": 0.0, "position_tail": 0.0},
}


def synthetic_scene(n: int, sh_degree: int = 3, seed: int = 0) -> Gaussians:
    """Gaussians with trained-scene statistics: flat Gaussians on a textured ground, a sphere and a
    box, a few large far 'sky' Gaussians; bimodal opacity; small, band-decaying, RGB-correlated SH."""
    gen = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.rand(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    nrm = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    n_sky, n_sphere = n // 30, n // 3
    n_ground = n - n_sky - n_sphere
    ground = torch.stack([8 * rnd(n_ground) - 4, torch.zeros(n_ground), 8 * rnd(n_ground) - 4], 1)
    normal_g = torch.tensor([0.0, 1, 0], dtype=torch.float64).expand(n_ground, 3)
    d = torch.nn.functional.normalize(nrm(n_sphere, 3), dim=1)
    sphere = torch.tensor([0.0, 0.8, 0]) + 0.8 * d
    sky = 25 * torch.nn.functional.normalize(
        nrm(n_sky, 3) * torch.tensor([1.0, 0.3, 1]) + torch.tensor([0, 0.4, 0]), dim=1
    )
    means = torch.cat([ground, sphere, sky])
    normals = torch.cat([normal_g, d, -torch.nn.functional.normalize(sky, dim=1)])
    # Rotation taking z to the normal, then a random spin about it; scales flat along z.
    z = torch.tensor([0.0, 0, 1], dtype=torch.float64).expand(n, 3)
    axis = torch.linalg.cross(z, normals)
    angle = torch.atan2(axis.norm(dim=1), (z * normals).sum(1))
    R_align = roma.rotvec_to_rotmat(torch.nn.functional.normalize(axis + 1e-12, dim=1) * angle[:, None])
    R = R_align @ roma.rotvec_to_rotmat(z * (2 * math.pi * rnd(n, 1)))
    quats = roma.quat_xyzw_to_wxyz(roma.rotmat_to_unitquat(R))
    size = torch.cat([torch.full((n - n_sky,), math.log(0.02)), torch.full((n_sky,), math.log(1.5))])
    log_scales = size[:, None] + 0.4 * nrm(n, 3)
    log_scales[:, 2] -= 2.0
    opaque = rnd(n) < 0.75
    opacity_logits = torch.where(opaque, 3 + 1.5 * nrm(n), -1 + 1.5 * nrm(n))
    u, v = means[:, 0] * 3, means[:, 2] * 3 + means[:, 1] * 2
    checker = ((u.floor() + v.floor()) % 2)[:, None]
    rgb = 0.25 + 0.4 * checker * torch.tensor([0.9, 0.6, 0.3]) + 0.2 * torch.sin(means + 0.5 * nrm(1, 3))
    rgb = (rgb + 0.03 * nrm(n, 3)).clamp(0.02, 0.98)
    K = (sh_degree + 1) ** 2 - 1
    band = torch.tensor([int(math.isqrt(k + 1)) for k in range(K)]).double()
    shared = nrm(n, K, 1) * (0.12 / band)[None, :, None]
    sh_rest = shared * (1 + 0.2 * nrm(n, 1, 3)) + 0.02 * nrm(n, K, 3)
    return Gaussians(means, log_scales, quats, opacity_logits, rgb_to_sh(rgb), sh_rest).to(
        dtype=torch.float32
    )


def synthetic_cameras(views: int, width: int = 256, height: int = 192) -> Cameras:
    """Cameras around the synthetic scene, at a slightly varying radius and height."""
    w2c, K = [], []
    for k in range(views):
        a = 2 * math.pi * (k + 0.3) / views
        eye = torch.tensor([3.6 * math.cos(a), 1.2 + 0.3 * math.sin(3 * a), 3.6 * math.sin(a)]).double()
        w2c.append(look_at_w2c(eye, torch.tensor([0.0, 0.5, 0]).double(), torch.tensor([0.0, 1, 0])))
        K.append(torch.tensor([[0.9 * width, 0, width / 2], [0, 0.9 * width, height / 2], [0, 0, 1]]))
    return Cameras(torch.stack(K).double(), torch.stack(w2c), [width] * views, [height] * views)


def downscale(cameras: Cameras, scale: float) -> Cameras:
    K = cameras.K.clone()
    K[:, :2] *= scale
    w, h = (cameras.width * scale).round().long(), (cameras.height * scale).round().long()
    return Cameras(K, cameras.w2c.clone(), w, h, list(cameras.names))


def render_all(g: Gaussians, cameras: Cameras, backend: str) -> list[torch.Tensor]:
    cams = cameras.to(dtype=torch.float32)
    with torch.no_grad():
        return [render(g, cams[v], backend=backend).image.clamp(0, 1) for v in range(len(cams))]


def formats(variants: list[str]) -> list[tuple[str, str, object, object]]:
    """(label, file suffix, writer, reader) for every format measured."""
    rows = [
        ("ply", ".ply", write_ply, read_ply),
        ("ply-compressed", ".compressed.ply", write_compressed_ply, read_compressed_ply),
        ("splat", ".splat", write_splat, read_splat),
        ("spz", ".spz", write_spz, read_spz),  # version 4
        ("spz[v3]", ".spz", lambda p, g: write_spz(p, g, version=3), read_spz),
        ("sog", ".sog", write_sog, read_sog),
        ("glb", ".glb", write_glb, read_glb),
    ]
    for name in variants:
        cfg = dataclasses.replace(QuantizeConfig(), **VARIANTS[name])
        rows.append(
            (f"quantized[{name}]", ".splatq", lambda p, g, c=cfg: write_quantized(p, g, c), read_quantized)
        )
    return rows


def load_gt(scene: Path, cameras: Cameras, scale: float) -> list[torch.Tensor] | None:
    from splat.io.images import load_image_folder

    images = load_image_folder(scene / "images")
    found = {n: im for n, im in zip(images.names, images.images)}
    if not all(n in found for n in cameras.names):
        return None
    out = []
    for name, w, h in zip(cameras.names, cameras.width.tolist(), cameras.height.tolist()):
        im = torch.from_numpy(np.asarray(found[name])).float()
        im = im / 255 if im.max() > 1 else im
        im = torch.nn.functional.interpolate(im.permute(2, 0, 1)[None], size=(h, w), mode="area")
        out.append(im[0].permute(1, 2, 0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", nargs="?", help="a finished run folder (splat.ply + cameras/)")
    ap.add_argument("--ply"), ap.add_argument("--cameras"), ap.add_argument("--scene")
    ap.add_argument("--synthetic", type=int, default=100_000, help="Gaussians in the synthetic scene")
    ap.add_argument("--sh-degree", type=int, default=3)
    ap.add_argument("--views", type=int, default=4, help="cameras rendered for PSNR")
    ap.add_argument("--scale", type=float, default=0.5, help="render size relative to the cameras")
    ap.add_argument("--variants", default="default", help=f"comma list from {', '.join(VARIANTS)}")
    ap.add_argument("--backend", default="auto")
    ap.add_argument(
        "--held-out",
        action="store_true",
        help="with RUN and --scene: score the held-out test views (splat eval)",
    )
    args = ap.parse_args()
    if args.held_out and not (args.run and args.scene):
        ap.error("--held-out needs a RUN folder and --scene")

    gt = None
    if args.run or args.ply:
        from splat.io.colmap import read_model
        from splat.run import RunFolder, load_run

        if args.run:
            g, cameras = load_run(args.run)
        else:
            g, cameras = read_ply(args.ply), read_model(args.cameras).cameras
        if args.held_out:  # the run's test views at their refined poses (`splat eval` writes them)
            run = RunFolder(args.run)
            if not run.eval_cameras.is_dir():
                from splat.eval.evaluate import evaluate_run

                evaluate_run(run.root, args.scene)
            cameras = read_model(run.eval_cameras).cameras
            args.views = len(cameras)
        pick = np.linspace(0, len(cameras) - 1, min(args.views, len(cameras))).round().astype(int)
        cameras = downscale(cameras[pick.tolist()], args.scale)
        if args.scene:
            gt = load_gt(Path(args.scene), cameras, 1.0)
        source = args.run or args.ply
    else:
        g = synthetic_scene(args.synthetic, args.sh_degree)
        cameras = downscale(synthetic_cameras(args.views), args.scale * 2)
        source = f"synthetic scene, SH degree {args.sh_degree}"
    source = f"{source}, {len(g)} Gaussians"
    t0 = time.perf_counter()
    reference = render_all(g, cameras, args.backend)
    size = f"{int(cameras.width[0])}x{int(cameras.height[0])}"
    print(f"{source}: {len(cameras)} views at {size} (render {time.perf_counter() - t0:.1f} s)", flush=True)
    header = f"{'format':<22}{'bytes':>12}{'B/Gauss':>9}{'vs ply':>8}{'PSNR vs orig':>14}{'PSNR vs GT':>12}"
    header += f"{'enc s':>7}"
    print(header + "\n" + "-" * len(header), flush=True)
    ply_size = None
    gt_ref = None if gt is None else float(psnr(torch.stack(reference), torch.stack(gt)).mean())
    with tempfile.TemporaryDirectory() as tmp:
        for label, suffix, writer, reader in formats(args.variants.split(",")):
            path = Path(tmp) / f"out{suffix}"
            t = time.perf_counter()
            writer(path, g)
            enc = time.perf_counter() - t
            size = path.stat().st_size
            ply_size = ply_size or size
            decoded = reader(path)
            images = render_all(decoded, cameras, args.backend)
            p = psnr(torch.stack(images), torch.stack(reference))
            p_orig = "lossless" if bool(torch.isinf(p).all()) else f"{float(p[torch.isfinite(p)].mean()):.2f}"
            p_gt = "n/a" if gt is None else f"{float(psnr(torch.stack(images), torch.stack(gt)).mean()):.2f}"
            ratio = f"{ply_size / size:.1f}x"
            row = f"{label:<22}{size:>12,}{size / len(g):>9.2f}{ratio:>8}{p_orig:>14}{p_gt:>12}{enc:>7.1f}"
            print(row, flush=True)
    if gt_ref is not None:
        print(f"(original Gaussians vs GT: {gt_ref:.2f} dB)")


if __name__ == "__main__":
    sys.exit(main())
