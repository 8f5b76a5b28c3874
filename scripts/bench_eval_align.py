"""Test-view alignment benchmark (issue #20 item 3): does `splat eval` still score a run whose focal
is 4 % off the ground truth's as it scores the run itself?

Fits (or reuses) one run on 12 Tanks & Temples training views of a committed scene with the default
`splat fit` settings, then scores its 12 test views four ways:

- gt focal:       `evaluate_run(start_focal="gt")`: Sim(3) start, focal from the ground truth
- run focal +4 %: a copy of the run whose cameras' fx, fy are scaled by 1.04 (its Gaussians still
                  want the true focal); every test view starts at that focal and must find the true one
- old refine:     what `splat eval` did before: 100 steps of `refine_poses` (pose only, gt focal)
- old, focal +4 %: the same 100 steps started at the focal * 1.04 (pose only: the focal stays wrong)

    python scripts/bench_eval_align.py                        # garden, fit into /tmp/bench_eval_align
    python scripts/bench_eval_align.py --run /tmp/ea/garden12 # reuse a finished 12-view run
    python scripts/bench_eval_align.py --scene scenes/tablecloth --out /tmp/bea_tablecloth
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from splat.eval.evaluate import evaluate_run, gt_cameras_in_run_frame, test_view_names  # noqa: E402
from splat.io.colmap import read_model, write_model  # noqa: E402
from splat.run import RunFolder  # noqa: E402
from splat.types import Cameras  # noqa: E402

FOCAL_SCALE = 1.04


def fit_or_reuse(scene: Path, run: Path) -> Path:
    from splat.io.datasets import tnt_split
    from splat.pipeline import FitConfig, fit

    if RunFolder(run).splat.exists():
        print(f"reusing the run in {run}")
        return run
    names = sorted(p.name for p in (scene / "images").iterdir())
    train = [names[i] for i in tnt_split(len(names), 12)[0]]
    print(f"fitting {scene} on {len(train)} views into {run} (default settings)")
    fit(scene / "images", run, FitConfig(views=train), progress=False)
    return run


def copy_run(run: Path, dest: Path, focal_scale: float = 1.0) -> Path:
    """The run's outputs in `dest` (fresh), its cameras' fx, fy scaled by `focal_scale`."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    src, dst = RunFolder(run), RunFolder(dest)
    for path in ("splat", "config", "metrics"):
        shutil.copy(getattr(src, path), getattr(dst, path))
    cams = read_model(src.cameras).cameras
    K = cams.K.clone()
    K[:, :2, :2] *= focal_scale
    write_model(dst.cameras, Cameras(K, cams.w2c, cams.width, cams.height, cams.names))
    return dest


def old_refine(run: Path, scene_dir: Path, focal_scale: float = 1.0, steps: int = 100) -> dict:
    """The evaluation before the alignment: Sim(3) start, `steps` of refine_poses, every view averaged."""
    from splat.eval.metrics import psnr, ssim
    from splat.io.datasets import load_scene
    from splat.render import render
    from splat.run import load_run
    from splat.train import refine_poses

    gaussians, run_cams = load_run(run)
    max_side = RunFolder(run).read_config().get("max_side")
    scene = load_scene(scene_dir, max_side=max_side)
    mapped, _ = gt_cameras_in_run_frame(run_cams, scene.cameras)
    names = test_view_names(scene.images.names, run_cams.names)
    start = mapped[[mapped.index(n) for n in names]]
    K = start.K.clone()
    K[:, :2, :2] *= focal_scale
    start = Cameras(K, start.w2c, start.width, start.height, start.names)
    images = [scene.images.images[scene.images.names.index(n)] for n in names]
    cams = refine_poses(gaussians, start, images, steps=steps)
    values = []
    for i in range(len(names)):
        with torch.no_grad():
            image = render(gaussians, cams[i]).image.clamp(0, 1)
        gt = torch.from_numpy(images[i])
        values.append((float(psnr(image, gt)), float(ssim(image, gt))))
    return {"psnr": float(np.mean([v[0] for v in values])), "ssim": float(np.mean([v[1] for v in values])),
            "views_scored": len(names), "views_flagged": None, "focal_ratio": 1.0}  # fmt: skip


def summary(r: dict) -> dict:
    ratios = [v["align"]["focal_ratio"] for v in r["per_view"].values()]
    return {**r, "focal_ratio": float(np.median(ratios))}


def _fmt(value, digits: int, sign: str = "") -> str:
    return "n/a" if value is None else f"{value:{sign}.{digits}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", default=str(ROOT / "scenes" / "garden"))
    ap.add_argument("--out", default="/tmp/bench_eval_align", help="work folder (the fit goes in OUT/run)")
    ap.add_argument("--run", help="a finished run on 12 TnT views of --scene to reuse (default OUT/run)")
    ap.add_argument("--old-steps", type=int, default=100, help="refine_poses steps of the old evaluation")
    args = ap.parse_args()
    scene, out = Path(args.scene), Path(args.out)
    run = fit_or_reuse(scene, Path(args.run) if args.run else out / "run")

    ways = {
        "gt focal": lambda: summary(evaluate_run(copy_run(run, out / "gt"), scene, start_focal="gt")),
        f"run focal +{100 * (FOCAL_SCALE - 1):.0f} %": lambda: summary(
            evaluate_run(copy_run(run, out / "off", FOCAL_SCALE), scene, start_focal="run")
        ),
        f"old refine {args.old_steps} steps": lambda: old_refine(run, scene, 1.0, args.old_steps),
        f"old refine, focal +{100 * (FOCAL_SCALE - 1):.0f} %": lambda: old_refine(
            run, scene, FOCAL_SCALE, args.old_steps
        ),
    }
    rows = {}
    for name, evaluate in ways.items():
        t0 = time.perf_counter()
        rows[name] = {**evaluate(), "seconds": time.perf_counter() - t0}
        r = rows[name]
        print(
            f"  {name}: PSNR {_fmt(r['psnr'], 2)} dB, SSIM {_fmt(r['ssim'], 3)} ({r['seconds']:.0f} s)",
            flush=True,
        )

    base = rows["gt focal"]
    print(f"\n{scene.name}, run {run}: 12 test views")
    print("| evaluation | PSNR | SSIM | views scored / flagged | focal / start | dPSNR vs gt focal | s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        flagged = "n/a (never flags)" if r["views_flagged"] is None else r["views_flagged"]
        diff = None if None in (r["psnr"], base["psnr"]) else r["psnr"] - base["psnr"]
        print(f"| {name} | {_fmt(r['psnr'], 2)} | {_fmt(r['ssim'], 3)} | {r['views_scored']} / {flagged} | "
              f"{r['focal_ratio']:.4f} | {_fmt(diff, 2, '+')} | {r['seconds']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
