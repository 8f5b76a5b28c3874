"""Initial Gaussians rendered into held-out views before any training (issue: dense initializers).

For each committed scene with ground-truth poses, the 12 Tanks & Temples training views build the
initial set: EDGS (dense two-view triangulation into per-view depth maps, turned into Gaussians by
the point-map initializer with co-visibility filtering), pruned by each budget rule; the point-map
initializer on the same depth maps without co-visibility filtering; and the standard 3DGS start
(pycolmap's sparse points with nearest-neighbour scales). Each set is rendered (SH degree 0,
black background as the trainer uses) into the 12 test views; prints PSNR at step 0, the
initialisation wall time, its process CPU time (all threads; on an idle 2-core machine the wall
time lies between half of it and all of it) and the 1-minute load average when it finished.

    python scripts/bench_init.py [--scenes garden,still_life,statues] [--budget 100000]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from splat.eval.metrics import psnr
from splat.init.budget import prune_to_budget
from splat.init.colmap_points import triangulate_known_poses
from splat.init.edgs import EdgsConfig, edgs_depths
from splat.init.pointmap import pointmap_init
from splat.init.sparse import sparse_init
from splat.io.datasets import load_scene, tnt_split
from splat.render import render


def heldout_psnr(gaussians, cameras, images, idx, backend: str) -> float:
    """Mean PSNR (dB) of the renders of `gaussians` into the views idx."""
    values = []
    for i in idx:
        with torch.no_grad():
            out = render(
                gaussians,
                cameras[int(i)].to(dtype=torch.float32),
                sh_degree=0,
                background=torch.zeros(3),
                backend=backend,
            )
        values.append(float(psnr(out.image.clamp(0, 1), torch.from_numpy(images[int(i)]))))
    return float(np.mean(values))


class Clock:
    """Wall and process CPU seconds since creation, and the 1-minute load average when read."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> tuple[float, float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu, os.getloadavg()[0]


def bench_scene(name: str, args) -> list[tuple]:
    scene = load_scene(Path("scenes") / name)
    train_idx, test_idx = tnt_split(len(scene.images.names), args.views)
    images, cams = scene.images.images, scene.cameras
    train_imgs, train_cams = [images[i] for i in train_idx], cams[list(train_idx)]
    score = lambda g: heldout_psnr(g, cams, images, test_idx, args.backend)  # noqa: E731
    cfg = EdgsConfig()
    rows = []

    clock = Clock()
    depths, confs, report = edgs_depths(train_imgs, train_cams, cfg)
    g, conf, pm_report = pointmap_init(train_imgs, train_cams, depths, confs, cfg.pointmap)
    t_edgs = clock.read()
    report.update(pm_report)
    print(f"{name}: edgs report {report}", flush=True)
    rows.append((name, "edgs (all)", len(g), *t_edgs, score(g)))
    for rule in ["random", "confidence", "voxel"]:
        gb = prune_to_budget(g, args.budget, rule, conf)
        rows.append((name, f"edgs {rule} {args.budget // 1000}k", len(gb), *t_edgs, score(gb)))

    clock = Clock()
    no_covis = replace(cfg.pointmap, same_surface_tol=0.0, free_space_tol=1.0)
    gp, _, _ = pointmap_init(train_imgs, train_cams, depths, confs, no_covis)
    rows.append(
        (name, "edgs depths, pointmap without co-visibility filter", len(gp), *clock.read(), score(gp))
    )

    clock = Clock()
    pts, cols = triangulate_known_poses(scene.root / "images", train_cams)
    gs = sparse_init(pts, cols)
    rows.append((name, "3dgs sparse (pycolmap)", len(gs), *clock.read(), score(gs)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="garden,still_life,statues")
    ap.add_argument("--budget", type=int, default=100_000)
    ap.add_argument("--views", type=int, default=12)
    ap.add_argument("--backend", default="cpu", help="render backend for scoring (cpu, torch)")
    args = ap.parse_args()
    rows = [r for name in args.scenes.split(",") for r in bench_scene(name, args)]
    print(
        "\n| scene | initializer | Gaussians | init wall (s) | init CPU (s) | load 1 min | PSNR step 0 (dB) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.2f} |")


if __name__ == "__main__":
    main()
