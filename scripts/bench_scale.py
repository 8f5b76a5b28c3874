"""How do the stages scale with the number of views? Pose-free fits of denser and denser POV-Ray orbits.

    python scripts/bench_scale.py [--scene garden] [--sizes 24 48 96 192 384] [--steps N]

For each size N the committed scene's orbit (scripts/render_scenes.py: same arc, same camera path) is rendered
with N views into --cache (reused when its images are all there; POV-Ray takes ~5 s a view on one core;
the committed renders at the scene's own count).
Every 8th view is held out; the others go through `splat fit` pose-free, in a subprocess of its own (its peak
memory is its own), and `splat eval` scores the held-out views against the exact cameras. Prints one row per
size: views registered of trained, ATE, held-out PSNR, seconds and peak RSS after each stage
(metrics.json), and at the end the growth exponent of each stage's time in the number of views (the slope of
log time against log views between the smallest and the largest size).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import render_scenes  # noqa: E402

STAGES = ("load", "poses", "init", "train")


def orbit_scene(scene: str, views: int, cache: Path) -> Path:
    """The scene rendered with `views` views (Tanks & Temples layout), from the cache when complete."""
    base = render_scenes.SCENES[scene]
    if views == base.orbit.views:
        return REPO / "scenes" / scene  # the committed renders
    sized = dataclasses.replace(base, orbit=dataclasses.replace(base.orbit, views=views))
    root = cache / f"{views}views"
    folder = root / scene
    if len(list((folder / "images").glob("frame_*.jpg"))) != views or not (folder / "sparse" / "0").exists():
        render_scenes.render_scene(sized, root, threads=os.cpu_count() or 1)
    return folder


def run_size(folder: Path, views: int, out: Path, steps: int | None) -> dict:
    names = sorted(p.name for p in (folder / "images").glob("frame_*.jpg"))
    train = [n for k, n in enumerate(names) if k % 8 != 4]
    run = out / f"{views}views"
    cmd = [sys.executable, "-m", "splat", "fit", str(folder / "images"), "--out", str(run), "--force"]
    cmd += ["--views", ",".join(train)] + (["--steps", str(steps)] if steps else [])
    t0 = time.perf_counter()
    fit = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if fit.returncode != 0:
        return {"views": views, "error": (fit.stderr.strip().splitlines() or ["?"])[-1], "wall": wall}
    metrics = json.loads((run / "metrics.json").read_text())
    ev = subprocess.run(
        [sys.executable, "-m", "splat", "eval", str(run), "--gt", str(folder)], capture_output=True, text=True
    )
    scores = json.loads((run / "eval.json").read_text()) if ev.returncode == 0 else {}
    from splat.io.colmap import read_model

    registered = len(read_model(run / "cameras").cameras)
    return {
        "views": views,
        "trained": len(train),
        "registered": registered,
        "verdict": metrics.get("cameras_verdict"),
        "ate_rel": scores.get("ate_rel"),
        "psnr": scores.get("psnr"),
        "flagged": scores.get("views_flagged"),
        "seconds": metrics["seconds"],
        "peaks": metrics["memory"]["peak_after_gb"],
        "estimate": metrics["memory"]["estimated_peak_gb"],
        "wall": wall,
        "eval_error": None if ev.returncode == 0 else (ev.stderr.strip().splitlines() or ["?"])[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", default="garden", choices=sorted(render_scenes.SCENES))
    ap.add_argument("--sizes", nargs="*", type=int, default=[24, 48, 96, 192, 384])
    ap.add_argument("--steps", type=int, help="training steps (default: splat fit's)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/splat_scale"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_scale"))
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    print(f"{args.scene}, sizes {args.sizes}, load {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for views in args.sizes:
        folder = orbit_scene(args.scene, views, args.cache / args.scene)
        row = run_size(folder, views, args.out, args.steps)
        rows.append(row)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
        if "error" in row:
            print(f"{views:4d} views: refused after {row['wall']:.0f} s: {row['error']}", flush=True)
            continue
        s, p = row["seconds"], row["peaks"]
        ate = "-" if row["ate_rel"] is None else f"{100 * row['ate_rel']:.2f}%"
        psnr = "-" if row["psnr"] is None else f"{row['psnr']:.2f}"
        print(
            f"{views:4d} views: registered {row['registered']}/{row['trained']} ({row['verdict']}), "
            f"ATE {ate}, "
            f"PSNR {psnr}; s "
            + " ".join(f"{k} {s.get(k, 0):.0f}" for k in STAGES)
            + f" total {sum(s.values()):.0f}; peak GB after "
            + " ".join(f"{k} {p.get(k, 0):.2f}" for k in STAGES)
            + f" (estimated {row['estimate']:.2f})",
            flush=True,
        )
    ok = [r for r in rows if "error" not in r]
    if len(ok) >= 2:
        a, b = ok[0], ok[-1]
        slopes = {
            k: math.log(max(b["seconds"][k], 1e-3) / max(a["seconds"][k], 1e-3))
            / math.log(b["views"] / a["views"])
            for k in (*STAGES, "export")
            if k in a["seconds"] and k in b["seconds"]
        }
        print("growth exponent of time in views: " + ", ".join(f"{k} {v:.2f}" for k, v in slopes.items()))


if __name__ == "__main__":
    main()
