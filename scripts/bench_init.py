"""Initial Gaussians rendered into held-out views before any training (issue: dense initializers).

For each committed scene with ground-truth poses, the 12 Tanks & Temples training views are used to
build the initial set (EDGS with each budget rule, and the standard 3DGS start: pycolmap's sparse
points with nearest-neighbour scales), which is rendered into the 12 test views; prints PSNR at
step 0 and the initialisation time.

    python scripts/bench_init.py [--scenes garden,still_life,statues] [--budget 100000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from splat.eval.metrics import psnr
from splat.init.budget import prune_to_budget
from splat.init.colmap_points import triangulate_known_poses
from splat.init.edgs import EdgsConfig, edgs_init
from splat.init.sparse import sparse_init
from splat.io.datasets import load_scene, tnt_split
from splat.render import render


def heldout_psnr(gaussians, cameras, images, idx) -> float:
    values = []
    for i in idx:
        with torch.no_grad():
            out = render(gaussians, cameras[int(i)].to(dtype=torch.float32), background=torch.zeros(3))
        values.append(float(psnr(out.image.clamp(0, 1), torch.from_numpy(images[int(i)]))))
    return float(np.mean(values))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="garden,still_life,statues")
    ap.add_argument("--budget", type=int, default=100_000)
    ap.add_argument("--views", type=int, default=12)
    args = ap.parse_args()
    rows = []
    for name in args.scenes.split(","):
        scene = load_scene(Path("scenes") / name)
        train_idx, test_idx = tnt_split(len(scene.images.names), args.views)
        images, cams = scene.images.images, scene.cameras
        train_imgs = [images[i] for i in train_idx]
        t0 = time.perf_counter()
        g, conf, report = edgs_init(train_imgs, cams[list(train_idx)], EdgsConfig())
        t_edgs = time.perf_counter() - t0
        rows.append((name, "edgs (all)", len(g), t_edgs, heldout_psnr(g, cams, images, test_idx)))
        for rule in ["random", "confidence", "voxel"]:
            gb = prune_to_budget(g, args.budget, rule, conf)
            rows.append(
                (
                    name,
                    f"edgs {rule} {args.budget // 1000}k",
                    len(gb),
                    t_edgs,
                    heldout_psnr(gb, cams, images, test_idx),
                )
            )
        t0 = time.perf_counter()
        pts, cols = triangulate_known_poses(scene.root / "images", cams[list(train_idx)])
        gs = sparse_init(pts, cols)
        rows.append(
            (
                name,
                "3dgs sparse (pycolmap)",
                len(gs),
                time.perf_counter() - t0,
                heldout_psnr(gs, cams, images, test_idx),
            )
        )
        print(f"{name}: edgs report {report}", flush=True)
    print("\n| scene | initializer | Gaussians | init time (s) | held-out PSNR step 0 (dB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.2f} |")


if __name__ == "__main__":
    main()
