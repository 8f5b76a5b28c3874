"""Pose-estimation benchmark on the committed POV-Ray scenes (Tanks & Temples split).

For every scene under scenes/ with a ground-truth model (sparse/0) and for 3, 6 and 12 training
views (splat.io.datasets.tnt_split), runs our sparse-view solver and pycolmap on the same images
and prints: registered views, ATE (Sim(3)-aligned camera centres) relative to the camera spread,
focal error, runtime. The machine load is printed too: runtimes on a shared box are noisy.

    python scripts/bench_poses.py                       # everything
    python scripts/bench_poses.py --scenes statues --views 3 6 --methods sparse
    python scripts/bench_poses.py --known-focal         # give the true focal (isolates poses)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from splat.geometry.align import ate  # noqa: E402
from splat.io.colmap import read_model  # noqa: E402
from splat.io.datasets import _fit_cameras, load_scene, tnt_split  # noqa: E402
from splat.io.images import load_image_folder  # noqa: E402


def load_gt_scene(folder: Path):
    """(images, cameras) of a scene; `<name>_gt/sparse/0` holds the model of `<name>/` (the demo)."""
    if folder.name.endswith("_gt") and (folder.parent / folder.name[:-3]).is_dir():
        images = load_image_folder(folder.parent / folder.name[:-3])
        return images, _fit_cameras(read_model(folder / "sparse" / "0"), images)
    scene = load_scene(folder)
    return scene.images, scene.cameras


def run_method(method: str, images, focal):
    """(K, w2c, registered, wall seconds, CPU seconds of this process, stage timings)."""
    t0, c0 = time.perf_counter(), time.process_time()
    if method == "sparse":
        from splat.poses.sparse_view import solve_sparse_views

        r = solve_sparse_views(images, focal, log=lambda *a, **k: None)
    else:
        from splat.poses.colmap_sfm import colmap_poses

        r = colmap_poses(images, focal=focal)
    stages = dict(r.diagnostics.get("times", {}))
    stages.update({f"cpu_{k}": v for k, v in r.diagnostics.get("cpu_times", {}).items()})
    return r.K, r.w2c, r.registered, time.perf_counter() - t0, time.process_time() - c0, stages


def evaluate(K, w2c, reg, gt) -> dict:
    n = int(reg.sum())
    out = {"registered": n, "views": len(reg)}
    if n >= 3:
        c = -np.einsum("vji,vj->vi", w2c[:, :3, :3], w2c[:, :3, 3])
        a = ate(torch.from_numpy(c[reg]), gt.centers[torch.from_numpy(reg)])
        out["ate_rel"] = a["rel"]
    else:
        out["ate_rel"] = float("nan")
    if n:
        f_gt = float(gt.K[0, 0, 0])
        out["focal_err_pct"] = 100 * (float(K[reg][0, 0, 0]) / f_gt - 1)
    else:
        out["focal_err_pct"] = float("nan")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="*", help="scene folder names (default: all with sparse/0)")
    ap.add_argument("--views", nargs="*", type=int, default=[3, 6, 12])
    ap.add_argument("--methods", nargs="*", default=["sparse", "colmap"])
    ap.add_argument("--known-focal", action="store_true", help="give both methods the true focal")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()

    os.environ.setdefault("GLOG_minloglevel", "2")  # quiet COLMAP
    scenes = sorted(p.parent.parent.name for p in (ROOT / "scenes").glob("*/sparse/0"))
    scenes = [s for s in scenes if s != "demo_gt"] + (["demo_gt"] if "demo_gt" in scenes else [])
    if args.scenes:
        scenes = [s for s in scenes if s in args.scenes]
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    header = (
        f"{'scene':<11} {'views':>5} {'method':<7} {'registered':>10} {'ATE/spread':>10} {'focal err':>9} "
        f"{'wall':>7} {'cpu':>7} {'load':>5}  stages (wall s)"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for name in scenes:
        scene_images, scene_cameras = load_gt_scene(ROOT / "scenes" / name)
        n_frames = len(scene_images)
        for n in args.views:
            if n == n_frames:  # e.g. the 12-image demo: all of it
                train = np.arange(n_frames)
            else:
                try:
                    train, _ = tnt_split(n_frames, n)
                except ValueError:
                    continue
            images = [scene_images.images[k] for k in train]
            gt = scene_cameras[list(train)]
            focal = float(gt.K[0, 0, 0]) if args.known_focal else None
            for method in args.methods:
                try:
                    K, w2c, reg, secs, cpu, stages = run_method(method, images, focal)
                    row = evaluate(K, w2c, reg, gt)
                except Exception as e:  # noqa: BLE001 - a failure is a row of the table
                    row = {
                        "registered": 0,
                        "views": n,
                        "ate_rel": float("nan"),
                        "focal_err_pct": float("nan"),
                        "error": str(e),
                    }
                    secs, cpu, stages = float("nan"), float("nan"), {}
                row.update(
                    scene=name,
                    n=n,
                    method=method,
                    seconds=secs,
                    cpu_seconds=cpu,
                    stages=stages,
                    load=os.getloadavg()[0],
                )
                rows.append(row)
                st = " ".join(f"{k}={v:.1f}" for k, v in stages.items())
                print(
                    f"{name:<11} {n:>5} {method:<7} {row['registered']:>5}/{n:<4} "
                    f"{100 * row['ate_rel']:>9.2f}% "
                    f"{row['focal_err_pct']:>8.2f}% {secs:>6.1f}s {cpu:>6.1f}s {row['load']:>5.1f}  {st}",
                    flush=True,
                )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
