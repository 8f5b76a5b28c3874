"""Our schedule against the 3DGS baseline on one committed scene, same poses, held-out PSNR over time.

    python scripts/bench_baseline.py [--scene scenes/garden] [--views 12] [--baseline-steps 7000]
                                     [--ours-steps 1000] [--every 250] [--json out.json]

Both methods train on the scene's Tanks & Temples training views with the ground-truth poses and
no pose refinement, so the 12 test views can be scored at their ground-truth poses directly:
- baseline: the original 3DGS recipe: sparse start (points triangulated from the training images
  with the known poses), classic adaptive density control (clone/split/prune, opacity reset),
  densifying until the midpoint, --baseline-steps steps;
- ours: the `splat fit` defaults (EDGS init pruned to the budget, no densification, sparse Adam,
  coarse-to-fine resolution), --ours-steps steps.
Every --every steps the test views are scored; the clock counts init + training steps only (not the
scoring). Prints both curves, then the time ours needs to reach the baseline's final PSNR, the
ratio to the baseline's time, and the Gaussian counts. One process; nothing else should run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from splat.eval.metrics import psnr
from splat.io.datasets import load_scene, tnt_split
from splat.pipeline import FitConfig, stage_init
from splat.render import render
from splat.train import TrainConfig, train
from splat.train.data import image_tensors, limit_side
from splat.train.trainer import params_to_gaussians


def scorer(cams, images, cfg: TrainConfig):
    """A callback scoring the test views every cfg.eval-like period, and the clock without scoring."""
    cams, targets = limit_side(cams, image_tensors(images, "cpu"), cfg.max_side)
    curve, clock = [], {"spent": 0.0, "last": time.perf_counter()}

    @torch.no_grad()
    def score(step: int, params, n: int) -> None:
        clock["spent"] += time.perf_counter() - clock["last"]
        g = params_to_gaussians(params)
        values = [float(psnr(render(g, cams[v], backend=cfg.backend).image.clamp(0, 1), targets[v]))
                  for v in range(len(cams))]  # fmt: skip
        curve.append(
            {"step": step, "seconds": clock["spent"], "psnr": sum(values) / len(values), "gaussians": n}
        )
        print(
            f"  step {step:5d}  {clock['spent']:7.1f} s  test PSNR {curve[-1]['psnr']:.2f}  N {n}", flush=True
        )
        clock["last"] = time.perf_counter()

    return curve, clock, score


def run(name: str, scene, train_idx, test_idx, fit_cfg: FitConfig, every: int, out: Path) -> list[dict]:
    images = [scene.images.images[i] for i in train_idx]
    cams = scene.cameras[train_idx.tolist()]
    tcfg = fit_cfg.train_config(torch.device("cpu"))
    curve, clock, score = scorer(
        scene.cameras[test_idx.tolist()], [scene.images.images[i] for i in test_idx], tcfg
    )
    print(f"{name}: init {fit_cfg.init}, {tcfg.steps} steps, strategy {tcfg.strategy}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    clock["last"] = time.perf_counter()
    init = stage_init(out, images, cams, fit_cfg, resume=False)
    clock["spent"] += time.perf_counter() - clock["last"]
    clock["last"] = time.perf_counter()
    print(f"  init {clock['spent']:.1f} s, {len(init)} Gaussians", flush=True)
    score(0, {k: v for k, v in init.tensors().items()}, len(init))

    def callback(report) -> None:
        if report.step % every == 0 or report.step == tcfg.steps:
            score(report.step, report.params, report.n_gaussians)

    train(init, cams, images, tcfg, callbacks=[callback], progress=False)
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", default="scenes/garden")
    ap.add_argument("--views", type=int, default=12)
    ap.add_argument("--baseline-steps", type=int, default=7000)
    ap.add_argument("--ours-steps", type=int, default=None, help="default: the splat fit default")
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_baseline"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    scene = load_scene(args.scene)
    train_idx, test_idx = tnt_split(len(scene.images.images), args.views)
    poses = f"given:{scene.root / 'sparse' / '0'}"
    ours_train = {"pose_refine": False}
    if args.ours_steps:
        ours_train["steps"] = args.ours_steps
    ours = FitConfig(poses=poses, init="edgs", train=ours_train)
    half = args.baseline_steps // 2
    adc = {"refine_stop": half, "reset_every": 3000}
    baseline_train = {"steps": args.baseline_steps, "pose_refine": False, "resolution_schedule": (),
                      "strategy": "adc", "strategy_options": adc, "sh_degree_every": 1000}  # fmt: skip
    baseline = FitConfig(poses=poses, init="sparse", budget=None, train=baseline_train)
    curves = {
        "ours": run("ours", scene, train_idx, test_idx, ours, args.every, args.out / "ours"),
        "baseline": run("baseline", scene, train_idx, test_idx, baseline, args.every, args.out / "baseline"),
    }
    target = curves["baseline"][-1]
    reach = next((p for p in curves["ours"] if p["psnr"] >= target["psnr"]), None)
    t = target
    print(f"baseline final: {t['psnr']:.2f} dB after {t['seconds']:.1f} s, {t['gaussians']} Gaussians")
    best = max(curves["ours"], key=lambda p: p["psnr"])
    print(f"ours final: {curves['ours'][-1]['psnr']:.2f} dB after {curves['ours'][-1]['seconds']:.1f} s, "
          f"{curves['ours'][-1]['gaussians']} Gaussians (best {best['psnr']:.2f} dB)")  # fmt: skip
    if reach:
        r = reach
        print(f"ours reaches the baseline's final PSNR at step {r['step']} after {r['seconds']:.1f} s: "
              f"{t['seconds'] / r['seconds']:.1f}x less time")  # fmt: skip
    else:
        print("ours does not reach the baseline's final PSNR within its schedule")
    if args.json:
        args.json.write_text(json.dumps({"scene": args.scene, "views": args.views, **curves}, indent=1))


if __name__ == "__main__":
    main()
