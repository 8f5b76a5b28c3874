"""Held-out quality of the training variants of issue #18, one row per scene, view count and variant.

    python scripts/bench_sharp.py [--scenes garden demo] [--views 6 12] [--variants base appearance]
                                  [--sceaux | --only-sceaux] [--quality default] [--out DIR]

Variants (FitConfig / TrainConfig fields, nothing else changes between rows):
    base        the defaults before this session's changes: no far field (--far-field 0)
    appearance  a per-photo affine colour map learned with the scene (`--appearance`)
    appearance-slow  the same at a fifth of its learning rate
    depth, depth-strong  the depth term against the EDGS depth maps, weight 0.2 / 1.0 (`--depth-weight`)
    sh1         spherical harmonics up to degree 1 instead of 3
    far         8000 far-field Gaussians for the sky and the distant background (today's default)
    needles     the anisotropy penalty (axis ratio above 10, weight 0.1); far-needles: both
    antialias   the anti-aliased rasterizer (`--antialias`)

Committed scenes: the `splat batch` protocol (Tanks & Temples split, pose-free fit, `splat eval` of the
held-out views); the pose stage is deterministic, so every variant of a scene trains on the same cameras.

../shared/data/sceaux-castle (real photos, --sceaux): the reference is prepared once into OUT/sceaux-ref:
the 11 photos at 512 px, undistorted with the radial term the pose verification measures on them, and
pycolmap's poses of all 11 (focal from their EXIF) as images/ + sparse/0. Each variant trains on 6 of them
with those poses (`--poses given:`) and is scored on the other 5 (`splat eval`, which aligns each test view
again). Prints held-out PSNR (plain and with the per-view colour fit), SSIM, training seconds, and each
variant's difference from `base`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SCEAUX = ROOT.parent / "shared" / "data" / "sceaux-castle"
SCEAUX_TRAIN = (0, 2, 4, 6, 8, 10)  # every other photo; 1, 3, 5, 7, 9 held out
VARIANTS = {  # FitConfig overrides ("train": TrainConfig fields)
    "base": {},
    "appearance": {"train": {"appearance": True}},
    "appearance-slow": {"train": {"appearance": True, "lrs": {"appearance": 2e-4}}},  # a fifth of its rate
    "antialias": {"train": {"antialias": True}},
    "depth": {"train": {"depth_weight": 0.2}},  # the rendered depth held to the EDGS depth maps
    "depth-strong": {"train": {"depth_weight": 1.0}},
    "sh1": {"train": {"sh_degree": 1}},  # less view-dependent colour to overfit few views with
    "far": {"far_field": 8000},  # a far shell for the sky and the distant background
    "needles": {"train": {"anisotropy_weight": 0.1}},  # no Gaussian longer than 10x its width
    "far-needles": {"far_field": 8000, "train": {"anisotropy_weight": 0.1}},
}


def committed_rows(scenes, sizes, variants, quality, out: Path) -> list[dict]:
    from splat.batch import run_batch

    rows = []
    for variant in variants:
        records = run_batch(
            ROOT / "scenes",
            out / variant,
            sizes,
            fit={"quality": quality, "far_field": 0, **VARIANTS[variant]},
            scenes=scenes,
            progress=False,
            say=lambda line: None,
        )
        for r in records:
            row = {"scene": r["scene"], "views": r["n_views"], "variant": variant, "status": r["status"]}
            if r["status"] == "ok":
                row |= {k: r.get(k) for k in ("psnr", "psnr_colour_fit", "ssim")}
                row["train_s"] = r["fit_seconds"]["train"]
            rows.append(row)
    return rows


def sceaux_reference(out: Path) -> Path:
    """OUT/sceaux-ref (images/ + sparse/0): the photos undistorted, pycolmap poses of all 11."""
    from PIL import Image

    from splat.geometry.lens import undistort_image, undistorted_focal
    from splat.io.colmap import write_model
    from splat.io.images import load_image_folder
    from splat.pipeline import FitConfig, choose_focal
    from splat.poses import estimate_poses

    ref = out / "sceaux-ref"
    if (ref / "sparse" / "0" / "images.txt").exists():
        return ref
    ims = load_image_folder(SCEAUX / "images", 512)
    focal, _ = choose_focal(FitConfig(), ims.focal_priors)
    first = estimate_poses(ims.images, ims.names, method="colmap", focal=focal, progress=False,
                           accept_unverified=True, log=lambda *a, **k: None)  # fmt: skip
    lens = first.verification.distortion
    images, f = ims.images, focal
    if lens is not None and lens.status == "distorted":
        H, W = images[0].shape[:2]
        c = np.array([W / 2, H / 2])
        f_lens = lens.focal_px * (1 + lens.focal_change)  # the focal of the radial model
        f = undistorted_focal(f_lens, c, (W, H), lens.k1)
        images = [undistort_image(im, f_lens, c, lens.k1, f) for im in images]
        print(f"sceaux: undistorted (k1 {lens.k1:.3f}, {lens.corner_px:.0f} px at the corners), f {f:.1f} px")
    (ref / "images").mkdir(parents=True, exist_ok=True)
    for im, name in zip(images, ims.names):
        Image.fromarray((np.clip(im, 0, 1) * 255 + 0.5).astype(np.uint8)).save(
            ref / "images" / (Path(name).stem + ".png")
        )
    names = [Path(n).stem + ".png" for n in ims.names]
    result = estimate_poses(images, names, method="colmap", focal=f, progress=False, log=lambda *a, **k: None)
    print(f"sceaux reference: pycolmap, {len(names)} views, verdict {result.verification.verdict}")
    write_model(ref / "sparse" / "0", result.cameras)
    return ref


def sceaux_rows(variants, quality, out: Path) -> list[dict]:
    from splat.config import FitConfig
    from splat.eval.evaluate import evaluate_run
    from splat.pipeline import fit

    ref = sceaux_reference(out)
    names = sorted(p.name for p in (ref / "images").iterdir())
    train = [names[k] for k in SCEAUX_TRAIN]
    rows = []
    for variant in variants:
        run = out / "sceaux" / variant
        cfg = FitConfig(
            poses=f"given:{ref / 'sparse' / '0'}",
            views=train,
            quality=quality,
            **{"far_field": 0, **VARIANTS[variant]},
        )
        if (run / "metrics.json").exists():  # a finished run of an earlier call: its own figures
            metrics = json.loads((run / "metrics.json").read_text())
        else:
            metrics = fit(ref / "images", run, cfg, resume=(run / "checkpoints").exists(), progress=False)
        e = evaluate_run(run, ref, test_names=[n for n in names if n not in train])
        rows.append({"scene": "sceaux", "views": len(train), "variant": variant, "status": "ok",
                     "psnr": e["psnr"], "psnr_colour_fit": e.get("psnr_colour_fit"), "ssim": e["ssim"],
                     "train_s": metrics["seconds"]["train"]})  # fmt: skip
    return rows


def print_table(rows: list[dict]) -> None:
    base = {(r["scene"], r["views"]): r for r in rows if r["variant"] == "base" and r["status"] == "ok"}
    print(f"\n{'scene':<11} {'views':>5} {'variant':<11} {'PSNR':>6} {'fitted':>6} {'SSIM':>6} {'train s':>7}"
          f" {'dPSNR':>6} {'dfit':>6} {'time x':>6}")  # fmt: skip
    for r in rows:
        head = f"{r['scene']:<11} {r['views']:>5} {r['variant']:<11}"
        if r["status"] != "ok":
            print(f"{head} {r['status']}")
            continue
        b = base.get((r["scene"], r["views"]))
        cf = r["psnr_colour_fit"] if r["psnr_colour_fit"] is not None else float("nan")
        line = f"{head} {r['psnr']:6.2f} {cf:6.2f} {r['ssim']:6.3f} {r['train_s']:7.1f}"
        if b is not None and r is not b:
            bcf = b["psnr_colour_fit"] if b["psnr_colour_fit"] is not None else float("nan")
            line += f" {r['psnr'] - b['psnr']:+6.2f} {cf - bcf:+6.2f} {r['train_s'] / b['train_s']:6.2f}"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="*", default=["garden", "statues", "still_life", "tablecloth"])
    ap.add_argument("--views", nargs="*", type=int, default=[3, 6, 12])
    ap.add_argument("--variants", nargs="*", default=["base", "appearance"], choices=list(VARIANTS))
    ap.add_argument("--sceaux", action="store_true", help="also the sceaux-castle rows")
    ap.add_argument("--only-sceaux", action="store_true", help="only the sceaux-castle rows")
    ap.add_argument("--quality", default="default", choices=["preview", "default", "high"])
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_sharp"))
    args = ap.parse_args()
    variants = ["base"] + [v for v in args.variants if v != "base"]
    print(f"variants {variants}, --quality {args.quality}; load {os.getloadavg()[0]:.1f}")
    rows = []
    if args.sceaux or args.only_sceaux:
        if SCEAUX.is_dir():
            rows += sceaux_rows(variants, args.quality, args.out)
        else:
            print(f"{SCEAUX} not found: no sceaux rows")
    if not args.only_sceaux:
        rows += committed_rows(args.scenes, args.views, variants, args.quality, args.out)
    print_table(rows)


if __name__ == "__main__":
    main()
