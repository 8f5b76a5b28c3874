"""Held-out PSNR against training schedule on one committed scene, from fixed poses and init.

    python scripts/bench_schedule.py RUN [--gt scenes/garden] [--configs steps=600 steps=1000,c2f=1 ...]

RUN is a finished `splat fit` run (its poses/, init.ply and training views are reused, so only the
training stage varies). Each config is comma-separated key=value: steps=N, c2f=1 (resolution
schedule ((0.3, 4), (0.6, 2)); c2f=2: ((0.5, 4), (0.8, 2)); c2f=3: ((0.25, 2),);
c2f=4: ((0.35, 4), (0.7, 2))), budget=N (prune the init to N Gaussians as `splat fit --budget`
does), seed=N (training seed; the run's by default), ssim=torch (the loss's SSIM in PyTorch ops
instead of the native kernel, for A/B runs), adam=dense (every row, not only the visible ones),
rescale=CAP (sparse Adam with visibility rescaling capped at CAP),
sh=bfloat16|float16 (storage of the SH rest coefficients). For each it trains, evaluates the held-out views
(`splat eval` protocol) and prints train seconds and PSNR/SSIM.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from splat.config import REFINE_STEPS
from splat.eval import metrics as metrics_module
from splat.eval.evaluate import evaluate_run
from splat.init.budget import prune_to_budget
from splat.io.ply import read_ply, write_ply
from splat.pipeline import FitConfig, fit
from splat.run import RunFolder

SCHEDULES = {
    "0": (),
    "1": ((0.3, 4), (0.6, 2)),
    "2": ((0.5, 4), (0.8, 2)),
    "3": ((0.25, 2),),
    "4": ((0.35, 4), (0.7, 2)),
}


def parse(spec: str) -> dict:
    out = {}
    for part in spec.split(","):
        k, v = part.split("=")
        if k == "steps":
            out["steps"] = int(v)
        elif k == "c2f":
            out["resolution_schedule"] = SCHEDULES[v]
        elif k in ("budget", "seed"):
            out[k] = int(v)
        elif k == "ssim" and v in ("torch", "native"):
            out["ssim"] = v
        elif k == "adam" and v in ("dense", "sparse"):
            out["sparse_adam"] = v == "sparse"
        elif k == "rescale":
            out["adam_rescale_cap"] = float(v)
        elif k == "sh" and v in ("float32", "bfloat16", "float16"):
            out["sh_rest_dtype"] = v
        else:
            raise SystemExit(f"unknown key {k!r} in {spec!r}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--gt", default="scenes/garden")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_schedule"))
    ap.add_argument("--refine-steps", type=int, help=f"alignment step cap per view (default {REFINE_STEPS})")
    ap.add_argument("--configs", nargs="+", default=["steps=1500", "steps=600", "steps=600,c2f=1"])
    args = ap.parse_args()
    src = RunFolder(args.run).read_config()
    native_ssim_default = metrics_module._native_ssim_applies
    rows = []
    for spec in args.configs:
        out = args.out / spec.replace("=", "").replace(",", "_")
        train = parse(spec)
        seed = train.pop("seed", src["seed"])
        use_torch = train.pop("ssim", "native") == "torch"
        metrics_module._native_ssim_applies = (lambda img, gt: False) if use_torch else native_ssim_default
        init = RunFolder(args.run).init
        if "budget" in train:  # prune the run's init the way `splat fit --budget` does
            out.mkdir(parents=True, exist_ok=True)
            pruned = prune_to_budget(read_ply(init), train.pop("budget"), "random", None, 0)
            init = out / "init_budget.ply"
            write_ply(init, pruned)
        cfg = FitConfig(
            max_side=src["max_side"],
            poses=f"given:{RunFolder(args.run).poses}",
            init=f"given:{init}",
            budget=None,
            views=src["views"],
            seed=seed,
            train=train,
        )
        t0 = time.perf_counter()
        metrics = fit(src["images_dir"], out, cfg, progress=False)
        fit_s = time.perf_counter() - t0
        metrics_module._native_ssim_applies = native_ssim_default
        ev = evaluate_run(out, args.gt, refine_steps=args.refine_steps)
        train_s = metrics["seconds"]["train"]
        rows.append(
            {
                "config": spec,
                "fit_s": fit_s,
                "train_s": train_s,
                "psnr": ev["psnr"],
                "ssim": ev["ssim"],
                "gaussians": metrics["gaussians_final"],
            }
        )
        print(
            f"{spec:24s} train {train_s:6.1f} s  test PSNR {ev['psnr']:.2f}  SSIM {ev['ssim']:.3f}",
            flush=True,
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
