"""`splat eval RUN --gt SCENE`: score a finished run against a scene with ground-truth cameras."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from splat.errors import InputError
from splat.types import Cameras


def test_view_names(gt_names: list[str], train_names: list[str]) -> list[str]:
    """The Tanks & Temples test views for 24-frame scenes, otherwise every view not trained on."""
    from splat.io.datasets import tnt_split

    names = sorted(gt_names)
    if len(names) == 24:
        _, test_idx = tnt_split(24, 12)
        return [names[i] for i in test_idx if names[i] not in train_names]
    return [n for n in names if n not in train_names]


def gt_cameras_in_run_frame(run_cams: Cameras, gt_cams: Cameras) -> tuple[Cameras, dict]:
    """All ground-truth cameras mapped into the run's frame by the Sim(3) that aligns the training
    camera centres (gt -> run), and the ATE of the trained cameras (computed in the gt frame)."""
    from splat.geometry.align import apply_sim3_to_w2c, ate, umeyama

    common = [n for n in run_cams.names if n in gt_cams.names]
    if len(common) < 2:
        raise InputError("the run and the ground truth share fewer than 2 image names; check --gt")
    est = run_cams[[run_cams.index(n) for n in common]].centers.double()
    gt = gt_cams[[gt_cams.index(n) for n in common]].centers.double()
    s, R, t = umeyama(gt, est)
    mapped = Cameras(
        gt_cams.K.clone(),
        apply_sim3_to_w2c(gt_cams.w2c.double(), s, R, t),
        gt_cams.width,
        gt_cams.height,
        gt_cams.names,
    )
    report = ate(est, gt)
    return mapped, {k: report[k] for k in ("rmse", "rel")}


def evaluate_run(
    run_dir: str | Path,
    gt_dir: str | Path,
    refine_steps: int = 100,
    backend: str = "auto",
    test_names: list[str] | None = None,
) -> dict:
    """Score RUN against GT (COLMAP layout: images/ + sparse/0); writes RUN/eval.json and returns it.

    `test_names`: the views to score (default: `test_view_names`, the Tanks & Temples rule).
    """
    from splat.eval.metrics import lpips, psnr, ssim
    from splat.io.atomic import atomic_write_text
    from splat.io.colmap import write_model
    from splat.io.datasets import load_scene
    from splat.pipeline import load_run
    from splat.render import render
    from splat.train import refine_poses

    run = Path(run_dir)
    gaussians, run_cams = load_run(run)
    max_side = json.loads((run / "config.json").read_text()).get("max_side")
    scene = load_scene(Path(gt_dir), max_side=max_side)
    if scene.cameras is None:
        raise InputError(f"{gt_dir}: no ground-truth cameras (expected sparse/0 with a COLMAP model)")
    mapped, ate_report = gt_cameras_in_run_frame(run_cams, scene.cameras)
    names = test_names if test_names is not None else test_view_names(scene.images.names, run_cams.names)
    unknown = [n for n in names if n not in mapped.names]
    if unknown:
        raise InputError(f"{gt_dir}: test views {', '.join(unknown)} have no ground-truth camera")
    if not names:
        raise InputError(f"{gt_dir}: no held-out views to score (every image was used for training)")
    idx = [mapped.index(n) for n in names]
    images = [scene.images.images[scene.images.names.index(n)] for n in names]
    test_cams = refine_poses(gaussians, mapped[idx], images, steps=refine_steps, backend=backend)
    per_view = {}
    for i, name in enumerate(names):
        with torch.no_grad():
            out = render(gaussians, test_cams[i], backend=backend)
        img = out.image.clamp(0, 1).cpu()
        gt = torch.from_numpy(images[i])
        lp = lpips(img, gt)
        per_view[name] = {
            "psnr": float(psnr(img, gt)),
            "ssim": float(ssim(img, gt)),
            "lpips": None if lp is None else float(lp),
        }
    lp_values = [v["lpips"] for v in per_view.values()]
    result = {
        "psnr": float(np.mean([v["psnr"] for v in per_view.values()])),
        "ssim": float(np.mean([v["ssim"] for v in per_view.values()])),
        "lpips": None if None in lp_values else float(np.mean(lp_values)),
        "ate_rel": ate_report["rel"],
        "ate_rmse": ate_report["rmse"],
        "refine_steps": refine_steps,
        "per_view": per_view,
    }
    write_model(run / "eval_cameras", test_cams.to(device="cpu"))  # the refined test poses, for reuse
    atomic_write_text(run / "eval.json", json.dumps(result, indent=2) + "\n")
    return result
